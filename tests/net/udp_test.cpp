// UdpSocket and DatagramStream over 127.0.0.1: round trips (bound and connected), many datagrams through
// the multishot receive (whole, in order, with their sender, with each feature off and a ring run dry),
// GSO sends arriving as separate datagrams, GRO receives cut apart again, truncation reported, receives
// ended by a timeout, a stop and a close, and frames destroyed with their receive in the kernel.
#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>
#include <tuple>
#include <string>
#include <vector>

#include "corio/net/udp_socket.hpp"
#include "corio/runtime/event.hpp"
#include "corio/runtime/nop.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"

namespace corio::net {
namespace {

using namespace std::chrono_literals;

UdpSocket bound(const UdpOptions& options = {}) {
  auto s = UdpSocket::bind(Address::loopback_v4(0), options);
  if (!s) throw std::runtime_error(s.error().message());
  return std::move(*s);
}

// Datagram `i` of a test's sequence: its index, then a pattern, `size` bytes in all.
std::string numbered(std::uint32_t i, std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t k = 0; k < size; ++k) s[k] = static_cast<char>('a' + (std::size_t{i} * 7 + k) % 26);
  if (size >= 4) std::memcpy(s.data(), &i, 4);
  return s;
}

std::uint32_t index_of(std::span<const char> d) {
  std::uint32_t i = ~0U;
  if (d.size() >= 4) std::memcpy(&i, d.data(), 4);
  return i;
}

BufferPool& pool() { return Reactor::current()->backend().buffers(); }

TEST(Udp, SendToAndRecvFromRoundTrip) {
  Runtime rt({.reactors = 1});
  struct Seen {
    std::string got, back;
    bool sender_right = false, reply_sender_right = false;
  };
  Seen s = rt.run([]() -> task<Seen> {
    UdpSocket server = bound(), client = bound();
    Seen out;
    auto sent = co_await client.send_to(server.local_address(), std::string_view("hello"));
    if (!sent || *sent != 5) throw std::runtime_error("send_to failed");
    char buf[64];
    auto r = co_await server.recv_from(buf).timeout(2s);
    if (!r) throw std::runtime_error(r.error().message());
    out.got.assign(r->bytes.data(), r->bytes.size());
    out.sender_right = r->from == client.local_address();
    (void)co_await server.send_to(r->from, std::string_view("world"));
    auto back = co_await client.recv_from(buf).timeout(2s);
    if (!back) throw std::runtime_error(back.error().message());
    out.back.assign(back->bytes.data(), back->bytes.size());
    out.reply_sender_right = back->from == server.local_address();
    co_return out;
  }());
  EXPECT_EQ(s.got, "hello");
  EXPECT_EQ(s.back, "world");
  EXPECT_TRUE(s.sender_right);
  EXPECT_TRUE(s.reply_sender_right);
}

TEST(Udp, ConnectedSocketSendsToItsPeer) {
  Runtime rt({.reactors = 1});
  auto [got, sender_right, empty_ok] = rt.run([]() -> task<std::tuple<std::string, bool, bool>> {
    UdpSocket server = bound();
    auto client = UdpSocket::connect(server.local_address());
    if (!client) throw std::runtime_error(client.error().message());
    (void)co_await client->send(std::string_view("ping"));
    (void)co_await client->send(std::string_view());  // an empty datagram is a datagram
    char buf[16];
    auto r = co_await server.recv_from(buf).timeout(2s);
    auto e = co_await server.recv_from(buf).timeout(2s);
    if (!r || !e) throw std::runtime_error("no datagram");
    co_return std::tuple{std::string(r->bytes.data(), r->bytes.size()), r->from == client->local_address(),
                         e->bytes.empty() && e->datagrams().size() == 1};
  }());
  EXPECT_EQ(got, "ping");
  EXPECT_TRUE(sender_right);
  EXPECT_TRUE(empty_ok);
}

TEST(Udp, BindErrorsNameTheAddress) {
  UdpSocket first = bound();
  auto second = UdpSocket::bind(first.local_address());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, EADDRINUSE);
  EXPECT_EQ(second.error().message(), "bind " + first.local_address().to_string() + ": Address already in use");
}

struct Stream {
  std::size_t received = 0;
  bool in_order = true, whole = true, senders_right = true, multishot = false, kernel_ring = false;
  std::uint32_t lent_after = 99, ran_dry = 0;
  std::string error;
};

// `n` datagrams of varied sizes from two senders (alternating) to one DatagramStream, at most `window`
// unread at a time (so the socket buffer never overflows: loopback UDP drops nothing then). The reader
// keeps `hold` datagrams, then lets them go (above 1 after a pause: a slow reader, the ring runs dry).
task<Stream> stream_many(std::uint32_t n, std::uint32_t window, std::size_t hold) {
  UdpSocket server = bound(), a = bound(), b = bound();
  Stream out;
  std::uint32_t next = 0;
  bool reader_done = false;
  Event progress;  // the reader took one: the sender may go on
  auto reader = [&]() -> task<void> {
    DatagramStream rx(server);
    std::vector<Datagram> held;
    while (next < n) {
      auto d = co_await rx.next(Clock::now() + 2s);
      if (!d) {
        out.error = d.error().message();
        break;
      }
      const std::uint32_t i = index_of(d->bytes());
      out.in_order = out.in_order && i == next;
      out.whole = out.whole && std::string(d->bytes().data(), d->size()) == numbered(i, 4 + i % 1000);
      out.senders_right = out.senders_right && d->from == (i % 2 == 0 ? a : b).local_address();
      ++next;
      progress.set();
      held.push_back(std::move(*d));
      if (held.size() >= hold) {
        if (hold > 1) co_await sleep_for(1ms);
        held.clear();
      }
    }
    out.received = next;
    out.multishot = rx.multishot();
    reader_done = true;
  };
  spawn(reader());
  const auto until = Clock::now() + 5s;
  for (std::uint32_t i = 0; i < n && Clock::now() < until && !reader_done; ++i) {
    while (i >= next + window && Clock::now() < until && !reader_done) {
      progress.reset();
      (void)co_await progress.wait(Clock::now() + 50ms);
    }
    auto sent = co_await (i % 2 == 0 ? a : b).send_to(server.local_address(), numbered(i, 4 + i % 1000));
    if (!sent) throw std::runtime_error(sent.error().message());
  }
  while (!reader_done && Clock::now() < until) co_await sleep_for(1ms);
  if (!reader_done) {
    server.close();  // ends the reader (ECANCELED) so that its frame goes before the socket
    while (!reader_done) co_await sleep_for(1ms);
  }
  out.kernel_ring = pool().kernel_selects();
  out.lent_after = pool().lent();
  out.ran_dry = pool().ran_dry();
  co_return out;
}

void expect_all(const Stream& s, std::uint32_t n) {
  EXPECT_EQ(s.error, "");
  EXPECT_EQ(s.received, n);
  EXPECT_TRUE(s.in_order);
  EXPECT_TRUE(s.whole);
  EXPECT_TRUE(s.senders_right);
  EXPECT_EQ(s.lent_after, 0u);
}

TEST(Udp, ManyDatagramsThroughTheMultishotReceiveArriveWholeInOrder) {
  Runtime rt({.reactors = 1});
  Stream s = rt.run(stream_many(2000, 48, 1));
  expect_all(s, 2000);
  if (s.kernel_ring) EXPECT_TRUE(s.multishot) << "io_uring should keep one multishot recvmsg armed";
}

TEST(Udp, StreamWorksWithEachFeatureSwitchedOff) {
  for (BackendOptions o : {BackendOptions{.provided_buffers = false}, BackendOptions{.multishot_recv = false}}) {
    Runtime rt({.reactors = 1, .backend = o});
    Stream s = rt.run(stream_many(300, 16, 1));
    expect_all(s, 300);
    EXPECT_FALSE(s.multishot);
  }
}

// A ring of two buffers and a reader that holds both for a while: the kernel finds the ring empty
// (ENOBUFS) again and again; the stream waits for buffers, re-arms, and no datagram is lost.
TEST(Udp, StreamRingRunDryLosesNothing) {
  Runtime rt({.reactors = 1, .backend = {.buffers = {.buffer_size = 2048, .slab = 2, .limit = 2}}});
  Stream s = rt.run(stream_many(200, 8, 2));
  expect_all(s, 200);
  if (s.kernel_ring) EXPECT_GT(s.ran_dry, 0u);
}

// More arrive than kMaxQueued while nobody reads: the receive pauses, the rest wait in the socket buffer.
TEST(Udp, StreamPausesBeyondItsQueueAndLosesNothing) {
  Runtime rt({.reactors = 1});
  auto [got, in_order] = rt.run([]() -> task<std::pair<std::uint32_t, bool>> {
    UdpSocket server = bound({.receive_buffer = 1 << 20}), client = bound();
    DatagramStream rx(server);
    constexpr std::uint32_t kCount = DatagramStream::kMaxQueued * 2 + 10;
    auto first = co_await [&]() -> task<bool> {
      (void)co_await client.send_to(server.local_address(), numbered(0, 32));
      auto d = co_await rx.next(Clock::now() + 2s);  // armed from here
      co_return d && index_of(d->bytes()) == 0;
    }();
    for (std::uint32_t i = 1; i < kCount; ++i) (void)co_await client.send_to(server.local_address(), numbered(i, 32));
    co_await sleep_for(20ms);  // all of them in, nobody reading
    std::uint32_t got = first ? 1 : 0;
    bool in_order = first;
    while (got < kCount) {
      auto d = co_await rx.next(Clock::now() + 1s);
      if (!d) break;
      in_order = in_order && index_of(d->bytes()) == got;
      ++got;
    }
    co_return std::pair{got, in_order};
  }());
  EXPECT_EQ(got, DatagramStream::kMaxQueued * 2 + 10);
  EXPECT_TRUE(in_order);
}

// One sendmsg with UDP_SEGMENT: a receiver without GRO gets each segment as a datagram of its own.
TEST(Udp, GsoSendArrivesAsSeparateWholeDatagrams) {
  Runtime rt({.reactors = 1});
  struct Seen {
    std::vector<std::string> per_call, per_socket;
    std::size_t sent = 0;
    std::string error;
  };
  Seen s = rt.run([]() -> task<Seen> {
    Seen out;
    UdpSocket server = bound(), client = bound();
    std::string batch;
    for (std::uint32_t i = 0; i < 16; ++i) batch += numbered(i, i == 15 ? 500 : 1000);  // the last one shorter
    auto sent = co_await client.send_to(server.local_address(), batch, 1000);
    if (!sent) {
      out.error = sent.error().message();
      co_return out;
    }
    out.sent = *sent;
    std::vector<char> buf(std::size_t{64} << 10);
    for (int i = 0; i < 16; ++i) {
      auto r = co_await server.recv_from(buf).timeout(2s);
      if (!r) break;
      out.per_call.emplace_back(r->bytes.data(), r->bytes.size());
    }
    // The segment size as a socket option: every send is cut.
    UdpSocket gso = bound({.segment_size = 1000});
    (void)co_await gso.send_to(server.local_address(), batch.substr(0, 4000));
    for (int i = 0; i < 4; ++i) {
      auto r = co_await server.recv_from(buf).timeout(2s);
      if (!r) break;
      out.per_socket.emplace_back(r->bytes.data(), r->bytes.size());
    }
    co_return out;
  }());
  ASSERT_EQ(s.error, "");
  EXPECT_EQ(s.sent, 15u * 1000 + 500);
  ASSERT_EQ(s.per_call.size(), 16u);
  for (std::uint32_t i = 0; i < 16; ++i) EXPECT_EQ(s.per_call[i], numbered(i, i == 15 ? 500 : 1000)) << i;
  ASSERT_EQ(s.per_socket.size(), 4u);
  for (std::uint32_t i = 0; i < 4; ++i) EXPECT_EQ(s.per_socket[i], numbered(i, 1000)) << i;
}

TEST(Udp, GsoErrorsSayWhatWasSent) {
  Runtime rt({.reactors = 1});
  std::string message = rt.run([]() -> task<std::string> {
    UdpSocket server = bound(), client = bound();
    std::string huge(std::size_t{1000} * 1000, 'x');  // beyond what one GSO send may carry
    auto sent = co_await client.send_to(server.local_address(), huge, 1000);
    co_return sent ? std::string("sent") : sent.error().message();
  }());
  EXPECT_NE(message.find("send 1000 segments of 1000 B to 127.0.0.1:"), std::string::npos) << message;
  EXPECT_NE(message.find("(UDP GSO): "), std::string::npos) << message;
}

// A GRO socket takes a GSO batch whole; recv_from says the segment size and datagrams() cuts it apart.
TEST(Udp, GroReceiveIsSplitIntoTheDatagrams) {
  Runtime rt({.reactors = 1});
  struct Seen {
    std::vector<std::string> datagrams;
    std::size_t first_segment_size = 0, first_count = 0;
    std::string stream_error;
  };
  Seen s = rt.run([]() -> task<Seen> {
    Seen out;
    UdpSocket server = bound({.gro = true}), client = bound();
    std::string batch;
    for (std::uint32_t i = 0; i < 10; ++i) batch += numbered(i, i == 9 ? 300 : 1200);
    auto sent = co_await client.send_to(server.local_address(), batch, 1200);
    if (!sent) throw std::runtime_error(sent.error().message());
    std::vector<char> buf(std::size_t{64} << 10);
    for (bool first = true; out.datagrams.size() < 10; first = false) {
      auto r = co_await server.recv_from(buf).timeout(2s);
      if (!r) break;
      if (first) out.first_segment_size = r->segment_size, out.first_count = r->datagrams().size();
      for (std::span<char> d : r->datagrams()) out.datagrams.emplace_back(d.data(), d.size());
    }
    DatagramStream rx(server);  // refused: pool buffers cannot hold coalesced datagrams
    auto d = co_await rx.next(Clock::now() + 1s);
    out.stream_error = d ? "accepted" : d.error().message();
    co_return out;
  }());
  ASSERT_EQ(s.datagrams.size(), 10u);
  for (std::uint32_t i = 0; i < 10; ++i) EXPECT_EQ(s.datagrams[i], numbered(i, i == 9 ? 300 : 1200)) << i;
  EXPECT_EQ(s.first_segment_size, 1200u) << "loopback delivers a GSO batch to a GRO socket coalesced";
  EXPECT_EQ(s.first_count, 10u);
  EXPECT_NE(s.stream_error.find("UDP_GRO"), std::string::npos) << s.stream_error;
}

TEST(Udp, TruncationIsReported) {
  Runtime rt({.reactors = 1});
  struct Seen {
    int code = 0, stream_code = 0;
    std::string message, stream_message, after;
    std::size_t transferred = 0;
  };
  Seen s = rt.run([]() -> task<Seen> {
    Seen out;
    UdpSocket server = bound(), client = bound();
    (void)co_await client.send_to(server.local_address(), std::string(3000, 'x'));
    std::vector<char> small(1000);
    auto r = co_await server.recv_from(small).timeout(2s);
    if (r) throw std::runtime_error("a truncated datagram was accepted");
    out.code = r.error().code;
    out.message = r.error().message();
    out.transferred = r.error().transferred;
    // The stream's buffers are the pool's (4096 B): a longer datagram is an error, and the stream goes on.
    DatagramStream rx(server);
    (void)co_await client.send_to(server.local_address(), std::string(6000, 'y'));
    (void)co_await client.send_to(server.local_address(), std::string_view("after"));
    auto d = co_await rx.next(Clock::now() + 2s);
    if (d) throw std::runtime_error("a truncated datagram was streamed");
    out.stream_code = d.error().code;
    out.stream_message = d.error().message();
    auto next = co_await rx.next(Clock::now() + 2s);
    if (next) out.after.assign(next->bytes().data(), next->size());
    co_return out;
  }());
  EXPECT_EQ(s.code, EMSGSIZE);
  EXPECT_NE(s.message.find("a datagram of 3000 B from 127.0.0.1:"), std::string::npos) << s.message;
  EXPECT_NE(s.message.find("did not fit the 1000 B buffer (truncated)"), std::string::npos) << s.message;
  EXPECT_EQ(s.transferred, 1000u);
  EXPECT_EQ(s.stream_code, EMSGSIZE);
  EXPECT_NE(s.stream_message.find("a datagram of 6000 B"), std::string::npos) << s.stream_message;
  EXPECT_EQ(s.after, "after");
}

TEST(Udp, ReceivesEndAtTheirDeadlineAndOnStop) {
  Runtime rt({.reactors = 1});
  struct Seen {
    int recv_timeout = 0, stream_timeout = 0, recv_stop = 0, stream_stop = 0;
    std::string late;
    std::uint32_t lent = 99;
  };
  Seen s = rt.run([]() -> task<Seen> {
    Seen out;
    UdpSocket server = bound(), client = bound();
    char buf[64];
    auto r = co_await server.recv_from(buf).timeout(20ms);
    out.recv_timeout = r ? 0 : r.error().code;
    {
      DatagramStream rx(server);
      auto d = co_await rx.next(Clock::now() + 20ms);
      out.stream_timeout = d ? 0 : d.error().code;
      (void)co_await client.send_to(server.local_address(), std::string_view("late"));  // still armed: arrives
      auto late = co_await rx.next(Clock::now() + 2s);
      if (late) out.late.assign(late->bytes().data(), late->size());
    }
    std::stop_source stop;
    bool recv_done = false, stream_done = false;
    auto receiver = [&]() -> task<void> {
      char b[64];
      auto r = co_await server.recv_from(b);
      out.recv_stop = r ? 0 : r.error().code;
      recv_done = true;
    };
    UdpSocket other = bound();
    auto streamer = [&]() -> task<void> {
      DatagramStream rx(other);
      auto d = co_await rx.next();
      out.stream_stop = d ? 0 : d.error().code;
      stream_done = true;
    };
    spawn(with_stop_token(stop.get_token(), receiver()));
    spawn(with_stop_token(stop.get_token(), streamer()));
    co_await sleep_for(10ms);
    stop.request_stop();
    for (auto until = Clock::now() + 2s; (!recv_done || !stream_done) && Clock::now() < until;) co_await sleep_for(1ms);
    out.lent = pool().lent();
    co_return out;
  }());
  EXPECT_EQ(s.recv_timeout, ETIMEDOUT);
  EXPECT_EQ(s.stream_timeout, ETIMEDOUT);
  EXPECT_EQ(s.late, "late");
  EXPECT_EQ(s.recv_stop, ECANCELED);
  EXPECT_EQ(s.stream_stop, ECANCELED);
  EXPECT_EQ(s.lent, 0u);
}

TEST(Udp, ClosingTheSocketEndsPendingReceives) {
  Runtime rt({.reactors = 1});
  struct Seen {
    int recv_code = 0, stream_code = 0, again_code = 0;
    std::string recv_message, stream_message;
    std::size_t in_flight = 99;
  };
  Seen s = rt.run([]() -> task<Seen> {
    Seen out;
    UdpSocket a = bound(), b = bound();
    bool recv_done = false, stream_done = false;
    auto receiver = [&]() -> task<void> {
      char buf[64];
      auto r = co_await a.recv_from(buf).timeout(5s);
      out.recv_code = r ? 0 : r.error().code;
      out.recv_message = r ? "" : r.error().message();
      recv_done = true;
    };
    auto streamer = [&]() -> task<void> {
      DatagramStream rx(b);
      auto d = co_await rx.next(Clock::now() + 5s);
      out.stream_code = d ? 0 : d.error().code;
      out.stream_message = d ? "" : d.error().message();
      auto again = co_await rx.next(Clock::now() + 5s);  // a closed stream stays closed
      out.again_code = again ? 0 : again.error().code;
      stream_done = true;
    };
    spawn(receiver());
    spawn(streamer());
    co_await sleep_for(10ms);
    a.close();
    b.close();
    for (auto until = Clock::now() + 2s; (!recv_done || !stream_done) && Clock::now() < until;) co_await sleep_for(1ms);
    co_await nop();
    out.in_flight = Reactor::current()->backend().in_flight();
    co_return out;
  }());
  EXPECT_EQ(s.recv_code, ECANCELED);
  EXPECT_EQ(s.stream_code, ECANCELED);
  EXPECT_EQ(s.again_code, ECANCELED);
  EXPECT_NE(s.recv_message.find("(socket closed): Operation canceled"), std::string::npos) << s.recv_message;
  EXPECT_NE(s.stream_message.find("(socket closed)"), std::string::npos) << s.stream_message;
  EXPECT_EQ(s.in_flight, 0u);
}

// Frames destroyed with their receive in the kernel (queued and not yet submitted, or armed): the
// receive is cancelled, nothing is written into freed memory (ASan), no buffer is kept, and the socket
// goes on working.
TEST(Udp, DestroyingAFrameWithItsReceiveArmedIsSafe) {
  Runtime rt({.reactors = 1});
  struct Seen {
    std::size_t in_flight = 99;
    std::uint32_t lent = 99;
    std::string after;
  };
  Seen s = rt.run([]() -> task<Seen> {
    Seen out;
    UdpSocket server = bound(), client = bound();
    for (bool flushed : {false, true}) {
      auto streamer = [&]() -> task<void> {
        DatagramStream rx(server);
        (void)co_await rx.next();
      };
      auto receiver = [&]() -> task<void> {
        std::vector<char> buf(2048);
        (void)co_await server.recv_from(buf);
      };
      auto t1 = streamer();
      auto t2 = receiver();
      auto h1 = t1.release();
      auto h2 = t2.release();
      h1.resume();
      h2.resume();
      if (flushed) co_await nop();  // in the kernel, armed
      h1.destroy();
      h2.destroy();
    }
    // Datagrams arriving after: nobody's (the kernel must not write them anywhere).
    for (int i = 0; i < 4; ++i) (void)co_await client.send_to(server.local_address(), std::string(100, 'z'));
    co_await sleep_for(5ms);
    const Backend& b = Reactor::current()->backend();
    for (auto until = Clock::now() + 2s; b.in_flight() > 0 && Clock::now() < until;) co_await sleep_for(1ms);
    out.in_flight = b.in_flight();
    out.lent = pool().lent();
    {
      DatagramStream rx(server);
      for (int i = 0; i < 4; ++i) {  // what the destroyed receives did not take is still there
        auto d = co_await rx.next(Clock::now() + 100ms);
        if (!d) break;
      }
      (void)co_await client.send_to(server.local_address(), std::string_view("after"));
      for (int i = 0; i < 8; ++i) {
        auto d = co_await rx.next(Clock::now() + 2s);
        if (!d) break;
        if (d->size() == 5) {
          out.after.assign(d->bytes().data(), d->size());
          break;
        }
      }
    }
    co_return out;
  }());
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.lent, 0u);
  EXPECT_EQ(s.after, "after");
}

TEST(Udp, OptionErrorsNameTheOptionAndTheSocket) {
  UdpSocket s = bound(), closed = bound();
  closed.close();  // keeps its address, has no descriptor: every option fails
  auto r = closed.set_segment_size(1000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "setsockopt UDP_SEGMENT 1000 on " + closed.local_address().to_string() + ": Bad file descriptor");
  EXPECT_FALSE(closed.set_gro(true));
  EXPECT_FALSE(closed.gro());
  EXPECT_TRUE(s.set_gro(true));
  EXPECT_TRUE(s.gro());
}

}  // namespace
}  // namespace corio::net
