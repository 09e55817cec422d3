// Incremental buffer consumption (IOU_PBUF_RING_INC): receives packed one after another into the ring's
// buffers, each delivered as a slice. Every byte arrives in order while slices of one buffer are held by
// several connections; a buffer goes back to the kernel only when it is full and every slice is given back
// (slices read long after their buffer filled on are intact); a ring run dry recovers; streams closed,
// dropped, stopped or reset with slices queued leak none; datagrams, which a partly filled buffer would cut,
// use a ring of their own. On epoll (no buffer ring) the option changes nothing and the same streams pass.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "corio/net/recv_stream.hpp"
#include "corio/net/socket_options.hpp"
#include "corio/net/udp_socket.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/task_scope.hpp"
#include "corio/runtime/time.hpp"
#include "tests/net/loopback_pair.hpp"

namespace corio::net {
namespace {

using namespace std::chrono_literals;

std::string pattern(std::size_t n, std::size_t seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed * 13 + i / 1021) % 26);
  return s;
}

bool on_uring() { return Reactor::current()->backend().describe().starts_with("io_uring"); }

// A ring of `buffers` buffers of `size` bytes, consumed incrementally.
RuntimeOptions incremental(std::uint32_t size, std::uint32_t buffers) {
  RuntimeOptions o{.reactors = 1};
  o.backend.incremental_buffers = true;
  o.backend.incremental = {.buffer_size = size, .slab = buffers, .limit = buffers};
  return o;
}

// The pool buffer `p` points into, or -1.
int buffer_of(const char* p) {
  BufferPool& pool = Reactor::current()->backend().buffers();
  for (std::uint32_t id = 0; id < pool.allocated(); ++id) {
    const char* start = pool.data(static_cast<std::uint16_t>(id));
    if (p >= start && p < start + pool.buffer_size()) return static_cast<int>(id);
  }
  return -1;
}

// Whether `p` is inside a pool buffer but not at its start: the bytes are a slice.
bool mid_buffer(const char* p) {
  const int id = buffer_of(p);
  return id >= 0 && p != Reactor::current()->backend().buffers().data(static_cast<std::uint16_t>(id));
}

struct Stream {
  std::string got;
  std::size_t slices = 0;  // chunks that began inside a buffer
  std::string error;
};

// The sender writes `data` in small, uneven writes; the reader keeps its last three chunks before it
// copies one out, so what it copies has sat in its buffer while other receives filled the rest.
task<Stream> receive_holding(TcpStream server, TcpStream client, std::string data) {
  Stream out;
  TaskScope scope;
  scope.spawn([](TcpStream s, const std::string& d) -> task<void> {
    for (std::size_t at = 0, step = 1; at < d.size(); at += step, step = step % 700 + 37) {
      auto w = co_await s.write_all(std::string_view(d).substr(at, step));
      if (!w) throw std::runtime_error(w.error().message());
      if (step % 5 == 0) co_await sleep_for(0ms);
    }
  }(std::move(client), data));
  {
    RecvStream rx(server);
    std::deque<RecvBuffer> held;
    for (;;) {
      auto chunk = co_await rx.next(Clock::now() + 5s);
      if (!chunk) {
        out.error = chunk.error().message();
        break;
      }
      if (chunk->empty()) break;
      out.slices += mid_buffer(chunk->bytes().data());
      held.push_back(std::move(*chunk));
      if (held.size() > 3) {
        out.got.append(held.front().bytes().data(), held.front().size());
        held.pop_front();
      }
    }
    for (RecvBuffer& b : held) out.got.append(b.bytes().data(), b.size());
  }
  co_await scope.join();
  co_return out;
}

TEST(IncrementalBuffers, ManyConnectionsEveryByteInOrder) {
  Runtime rt(incremental(4096, 16));
  struct Result {
    std::vector<Stream> streams;
    std::vector<std::string> sent;
    bool uring = false, on = false;
    std::uint32_t lent_after = 99, returned_twice = 99;
  };
  Result r = rt.run([]() -> task<Result> {
    Result r;
    r.uring = on_uring();
    r.on = Reactor::current()->backend().features().incremental_buffers;
    auto l = TcpListener::bind(Address::loopback_v4(0));
    if (!l) throw std::runtime_error(l.error().message());
    std::vector<task<Stream>> readers;
    for (std::size_t i = 0; i < 6; ++i) {
      auto pair = co_await testing::connected(*l);
      r.sent.push_back(pattern(192 << 10, i));
      readers.push_back(receive_holding(std::move(pair.server), std::move(pair.client), r.sent.back()));
    }
    TaskScope scope;
    r.streams.resize(readers.size());
    for (std::size_t i = 0; i < readers.size(); ++i) {
      scope.spawn([](task<Stream> t, Stream& out) -> task<void> { out = co_await std::move(t); }(std::move(readers[i]), r.streams[i]));
    }
    co_await scope.join();
    r.lent_after = Reactor::current()->backend().buffers().lent();
    r.returned_twice = Reactor::current()->backend().buffers().returned_twice();
    co_return r;
  }());
  EXPECT_EQ(r.on, r.uring) << "io_uring on 6.12+ takes IOU_PBUF_RING_INC";
  std::size_t slices = 0;
  for (std::size_t i = 0; i < r.streams.size(); ++i) {
    EXPECT_EQ(r.streams[i].error, "") << "stream " << i;
    EXPECT_EQ(r.streams[i].got.size(), r.sent[i].size()) << "stream " << i;
    EXPECT_TRUE(r.streams[i].got == r.sent[i]) << "stream " << i << ": bytes out of order or overwritten";
    slices += r.streams[i].slices;
  }
  EXPECT_EQ(r.lent_after, 0u);
  EXPECT_EQ(r.returned_twice, 0u) << "a buffer went back to the kernel while it still had it";
  // 1.1 MiB through 64 KiB of buffers: each went back to the kernel many times, shared by slices.
  if (r.on) EXPECT_GT(slices, 100u);
  else EXPECT_EQ(slices, 0u);
}

// A small slice held by one connection while another pushes 1 MiB through the ring: the held slice's
// buffer fills on and goes round no more until the slice is given back, so its bytes stay as received.
TEST(IncrementalBuffers, HeldSliceSurvivesTheRingTurning) {
  Runtime rt(incremental(4096, 4));
  auto got = rt.run([]() -> task<std::string> {
    auto l = TcpListener::bind(Address::loopback_v4(0));
    if (!l) throw std::runtime_error(l.error().message());
    auto quiet = co_await testing::connected(*l);
    auto busy = co_await testing::connected(*l);
    const std::string small = pattern(100, 7);
    if (auto w = co_await quiet.client.write_all(small); !w) co_return w.error().message();
    RecvStream quiet_rx(quiet.server);
    auto held = co_await quiet_rx.next(Clock::now() + 2s);
    if (!held || held->size() != small.size()) co_return "the small message did not come in one piece";
    const std::string bulk = pattern(1 << 20, 8);
    Stream s = co_await receive_holding(std::move(busy.server), std::move(busy.client), bulk);
    if (!s.error.empty() || s.got != bulk) co_return "the bulk stream's bytes differ: " + s.error;
    if (Reactor::current()->backend().buffers().returned_twice() != 0) co_return "a buffer was given back twice";
    co_return std::string(held->bytes().data(), held->size()) == small ? "ok" : "the held slice was overwritten";
  }());
  EXPECT_EQ(got, "ok");
}

// Buffers pinned by `conns` connections that each hold one 64-byte message unread (a request head waiting
// for the rest, say): one each from a plain ring, a shared few from an incremental one.
task<std::size_t> buffers_pinned_by_small_messages(int conns) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  if (!l) throw std::runtime_error(l.error().message());
  std::vector<testing::Pair> pairs;
  pairs.reserve(static_cast<std::size_t>(conns));  // a RecvStream refers to its stream: no moves
  std::vector<std::unique_ptr<RecvStream>> streams;
  std::vector<RecvBuffer> held;
  std::vector<bool> pinned(65536);
  std::size_t distinct = 0;
  for (int i = 0; i < conns; ++i) {
    pairs.push_back(co_await testing::connected(*l));
    if (auto w = co_await pairs.back().client.write_all(pattern(64, 9)); !w) throw std::runtime_error(w.error().message());
    streams.push_back(std::make_unique<RecvStream>(pairs.back().server));
    auto chunk = co_await streams.back()->next(Clock::now() + 2s);
    if (!chunk || chunk->size() != 64) throw std::runtime_error("a 64-byte message did not come in one piece");
    if (const int id = buffer_of(chunk->bytes().data()); id >= 0) {
      distinct += !pinned[static_cast<std::size_t>(id)];
      pinned[static_cast<std::size_t>(id)] = true;
    }
    held.push_back(std::move(*chunk));
  }
  // What corio_buffers_in_use reports: buffers pinned, not slices.
  if (const std::uint32_t lent = Reactor::current()->backend().buffers().lent(); lent != distinct) {
    throw std::runtime_error("lent() says " + std::to_string(lent) + ", " + std::to_string(distinct) + " buffers are pinned");
  }
  co_return distinct;
}

TEST(IncrementalBuffers, SmallHeldMessagesShareBuffers) {
  RuntimeOptions o{.reactors = 1};
  ASSERT_TRUE(switch_on(o.backend, "incremental-buffers"));
  Runtime rt(o);
  struct R {
    std::size_t pinned;
    bool on;
  };
  R r = rt.run([]() -> task<R> {
    const bool on = Reactor::current()->backend().features().incremental_buffers;
    co_return R{co_await buffers_pinned_by_small_messages(500), on};
  }());
  if (r.on) EXPECT_LE(r.pinned, 2u) << "500 x 64 B is half of one 64 KiB buffer";
  else EXPECT_EQ(r.pinned, 500u);
}

TEST(IncrementalBuffers, PlainRingPinsABufferPerMessage) {
  Runtime rt(RuntimeOptions{.reactors = 1});
  EXPECT_EQ(rt.run(buffers_pinned_by_small_messages(500)), 500u);
}

// Two buffers, both pinned by slices the reader holds, the rest of a message waiting in the socket and
// the sender quiet: once the slices go back the rest must still arrive.
TEST(IncrementalBuffers, RingRunDryThenQuietSender) {
  Runtime rt(incremental(1024, 2));
  auto got = rt.run([]() -> task<std::string> {
    auto pair = co_await testing::connect_pair();
    const std::string data = pattern(16 << 10, 3);
    if (auto w = co_await pair.client.write_all(data); !w) throw std::runtime_error(w.error().message());
    RecvStream rx(pair.server);
    std::string got;
    std::vector<RecvBuffer> held;
    while (got.size() + [&] {
      std::size_t n = 0;
      for (auto& b : held) n += b.size();
      return n;
    }() < data.size()) {
      auto chunk = co_await rx.next(Clock::now() + 2s);
      if (!chunk) co_return "error: " + chunk.error().message();
      if (chunk->empty()) co_return "early end";
      held.push_back(std::move(*chunk));
      if (held.size() == 2) {  // two full slices pin both buffers: a third could never come
        co_await sleep_for(20ms);  // the ring is dry meanwhile
        for (auto& b : held) got.append(b.bytes().data(), b.size());
        held.clear();
      }
    }
    for (auto& b : held) got.append(b.bytes().data(), b.size());
    co_return got == data ? "ok" : "bytes differ";
  }());
  EXPECT_EQ(got, "ok");
}

enum class End { close, drop, stop, reset };

// Bytes arrive and are left unread (slices queued, one held); the stream ends as `end` says. After it no
// slice is lent, and a new connection on the same ring still receives every byte.
task<std::string> end_with_slices(End end) {
  {
    auto pair = co_await testing::connect_pair();
    RecvStream rx(pair.server);
    if (auto w = co_await pair.client.write_all(pattern(3000, 1)); !w) throw std::runtime_error(w.error().message());
    auto first = co_await rx.next(Clock::now() + 2s);
    if (!first || first->empty()) co_return "no bytes";
    for (int i = 0; i < 4; ++i) {  // more arrivals, queued or still in the socket
      if (auto w = co_await pair.client.write_all(pattern(700, 2)); !w) co_return w.error().message();
      co_await sleep_for(1ms);
    }
    switch (end) {
      case End::close:
        pair.server.close();
        for (;;) {
          auto more = co_await rx.next(Clock::now() + 2s);
          if (!more || more->empty()) break;
        }
        break;
      case End::drop:
        break;
      case End::stop: {
        auto waited = co_await with_timeout(10ms, [](RecvStream& r) -> task<bool> {
          for (;;) {
            auto c = co_await r.next();
            if (!c || c->empty()) co_return false;
          }
        }(rx));
        if (waited && *waited) co_return "the stop did not end the read";
        break;
      }
      case End::reset: {
        (void)set_linger(pair.client.fd(), 0s);
        pair.client.close();  // RST: what was queued comes out, then ECONNRESET
        std::string error;
        for (;;) {
          auto more = co_await rx.next(Clock::now() + 2s);
          if (!more) {
            error = more.error().message();
            break;
          }
          if (more->empty()) break;
        }
        if (error.find("reset") == std::string::npos) co_return "expected a reset, got: " + (error.empty() ? "end of stream" : error);
        break;
      }
    }
  }
  co_await sleep_for(5ms);  // orphaned completions settle
  const std::uint32_t lent = Reactor::current()->backend().buffers().lent();
  if (lent != 0) co_return std::to_string(lent) + " buffers lent after the stream ended";
  if (Reactor::current()->backend().buffers().returned_twice() != 0) co_return "a buffer was given back twice";
  auto pair = co_await testing::connect_pair();
  Stream s = co_await receive_holding(std::move(pair.server), std::move(pair.client), pattern(64 << 10, 5));
  if (!s.error.empty()) co_return s.error;
  if (Reactor::current()->backend().buffers().returned_twice() != 0) co_return "a buffer was given back twice";
  co_return s.got == pattern(64 << 10, 5) ? "ok" : "a later stream's bytes differ";
}

class SlicesQueued : public ::testing::TestWithParam<End> {};

TEST_P(SlicesQueued, StreamEndsAndLeaksNone) {
  Runtime rt(incremental(4096, 4));
  EXPECT_EQ(rt.run(end_with_slices(GetParam())), "ok");
}

const char* name_of(End e) {
  switch (e) {
    case End::close: return "Closed";
    case End::drop: return "Dropped";
    case End::stop: return "Stopped";
    case End::reset: return "PeerReset";
  }
  return "Unknown";
}
void PrintTo(End e, std::ostream* os) { *os << name_of(e); }
std::string end_name(const ::testing::TestParamInfo<End>& info) { return name_of(info.param); }

INSTANTIATE_TEST_SUITE_P(IncrementalBuffers, SlicesQueued, ::testing::Values(End::close, End::drop, End::stop, End::reset), end_name);

// The same reset with receive bundles (a bundle's buffers queued when the reset comes).
TEST(RecvBundle, PeerResetWithBuffersQueued) {
  RuntimeOptions o{.reactors = 1};
  o.backend.buffers.buffer_size = 512;
  Runtime rt(o);
  EXPECT_EQ(rt.run(end_with_slices(End::reset)), "ok");
}

// A DatagramStream dropped right where its first datagram of a burst wakes it, the rest of the burst's
// completions still in the ring (they reach the backend as an abandoned stream's), and then with
// datagrams queued: every buffer goes back to the datagram ring it came from, none to the stream ring.
TEST(IncrementalBuffers, DatagramStreamDroppedWithDatagramsInFlight) {
  RuntimeOptions o = incremental(4096, 8);
  o.backend.buffers = {.buffer_size = 2048, .slab = 32, .limit = 32};  // the datagram ring: 32, never more
  Runtime rt(o);
  auto got = rt.run([]() -> task<std::string> {
    Backend& backend = Reactor::current()->backend();
    auto server = UdpSocket::bind(Address::loopback_v4(0));
    auto client = UdpSocket::bind(Address::loopback_v4(0));
    if (!server || !client) co_return "no UDP sockets";
    const Address to = server->local_address();
    TaskScope scope;
    for (int round = 0; round < 2; ++round) {
      DatagramStream rx(*server);
      // A burst sent with no turn of the loop in between: the kernel completes it all at once.
      scope.spawn([](int fd, const Address& at) -> task<void> {
        co_await sleep_for(1ms);
        for (int i = 0; i < 20; ++i) (void)::sendto(fd, "burst", 5, 0, at.sockaddr_ptr(), at.length());
      }(client->fd(), to));
      auto first = co_await rx.next(Clock::now() + 2s);  // resumed from the burst's first completion
      if (!first) co_return first.error().message();
      if (round == 1) co_await sleep_for(2ms);  // the second time, the rest queued in the stream
    }
    co_await scope.join();
    co_await sleep_for(5ms);
    // Had the burst's buffers gone to the wrong ring, the 32 would be short now: these would stall.
    {
      DatagramStream rx(*server);
      for (int i = 0; i < 100; ++i) {
        (void)::sendto(client->fd(), "after", 5, 0, to.sockaddr_ptr(), to.length());
        auto d = co_await rx.next(Clock::now() + 1s);
        if (!d) co_return "datagram " + std::to_string(i) + " after the drops: " + d.error().message();
      }
    }
    BufferPool& dgram = backend.datagram_buffers();
    std::string out = "datagram lent " + std::to_string(dgram.lent()) + " twice " + std::to_string(dgram.returned_twice());
    out += ", stream lent " + std::to_string(backend.buffers().lent()) + " twice " + std::to_string(backend.buffers().returned_twice());
    co_return out;
  }());
  EXPECT_EQ(got, "datagram lent 0 twice 0, stream lent 0 twice 0");
}

// Datagrams of many sizes: none cut at the end of a partly filled buffer (they use a plain ring).
TEST(IncrementalBuffers, DatagramsArriveWhole) {
  Runtime rt(incremental(4096, 8));
  auto got = rt.run([]() -> task<std::string> {
    Backend& backend = Reactor::current()->backend();
    if (backend.features().incremental_buffers && &backend.datagram_buffers() == &backend.buffers()) {
      co_return "datagrams share the incremental ring";
    }
    auto server = UdpSocket::bind(Address::loopback_v4(0));
    auto client = UdpSocket::bind(Address::loopback_v4(0));
    if (!server || !client) co_return "no UDP sockets";
    DatagramStream rx(*server);
    for (std::size_t i = 0; i < 200; ++i) {
      const std::string d = pattern(1 + (i * 331) % 3000, i);
      auto sent = co_await client->send_to(server->local_address(), d);
      if (!sent) co_return sent.error().message();
      auto in = co_await rx.next(Clock::now() + 2s);
      if (!in) co_return "datagram " + std::to_string(i) + ": " + in.error().message();
      if (std::string(in->bytes().data(), in->size()) != d) co_return "datagram " + std::to_string(i) + " differs";
    }
    co_return "ok";
  }());
  EXPECT_EQ(got, "ok");
}

TEST(IncrementalBuffers, SwitchOnShapesTheRing) {
  BackendOptions o;
  ASSERT_TRUE(switch_on(o, "incremental-buffers"));
  EXPECT_TRUE(o.incremental_buffers);
  EXPECT_EQ(o.incremental.buffer_size, 65536u);
  EXPECT_EQ(o.incremental.limit, 1024u);
  EXPECT_EQ(o.buffers.buffer_size, BufferPoolOptions{}.buffer_size) << "the plain ring's shape is left alone";
  ASSERT_TRUE(switch_on(o, "incremental-buffers=16"));
  EXPECT_EQ(o.incremental.buffer_size, 16384u);
  EXPECT_EQ(o.incremental.limit, 4096u);
  EXPECT_EQ(o.incremental.slab, 64u);
  EXPECT_FALSE(switch_on(o, "incremental-buffers=3"));    // not a power of two
  EXPECT_FALSE(switch_on(o, "incremental-buffers=128"));  // over 64 KiB
  EXPECT_FALSE(switch_on(o, "incremental-buffers=x"));
}

TEST(IncrementalBuffers, OversizedBuffersAreRefused) {
  RuntimeOptions o = incremental(128 * 1024, 16);  // RecvStream keeps a slice's offset in 16 bits
  if (std::getenv("CORIO_BACKEND") != nullptr && std::string(std::getenv("CORIO_BACKEND")) == "epoll") {
    Runtime rt(o);  // no buffer ring: nothing to refuse
    SUCCEED();
    return;
  }
  try {
    Runtime rt(o);
    FAIL() << "a 128 KiB incremental buffer was taken";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("at most 64 KiB"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace corio::net
