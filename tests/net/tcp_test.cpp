// TCP over 127.0.0.1 on real io_uring: echo of every size, many connections over several reactors,
// half-close, reset, refused and timed-out connects, read deadlines, bind errors.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "corio/net/tcp_listener.hpp"
#include "corio/net/tcp_stream.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"

namespace corio::net {
namespace {

using namespace std::chrono_literals;

Address loopback_any_port() { return Address::loopback_v4(0); }

// Echoes one connection until end of stream.
task<void> echo(TcpStream conn) {
  std::vector<char> buf(64 * 1024);
  for (;;) {
    auto n = co_await conn.read_some(buf);
    if (!n || *n == 0) co_return;
    auto w = co_await conn.write_all(std::span(buf).first(*n));
    if (!w) co_return;
  }
}

// Accepts and echoes until `stop` is requested.
task<void> echo_server(const TcpListener& l) {
  for (;;) {
    auto c = co_await l.accept();
    if (!c) co_return;  // cancelled at shutdown
    spawn(echo(std::move(*c)));
  }
}

std::vector<char> pattern(std::size_t n) {
  std::vector<char> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return v;
}

// Sends `msg` and reads the same number of bytes back, writing and reading concurrently (a large message
// would otherwise fill both socket buffers and stall).
task<Result<std::vector<char>>> round_trip(const TcpStream& s, const std::vector<char>& msg) {
  Result<void> sent = Error{};
  bool writer_done = false;
  auto writer = [&]() -> task<void> {
    sent = co_await s.write_all(msg);
    writer_done = true;
  };
  spawn(writer());
  std::vector<char> back(msg.size());
  auto got = co_await s.read_exact(back);
  while (!writer_done) co_await sleep_for(1ms);
  if (!sent) co_return sent.error();
  if (!got) co_return got.error();
  back.resize(*got);
  co_return back;
}

TEST(Tcp, EchoesEverySizeFromOneByteToOneMebibyte) {
  auto listener = TcpListener::bind(loopback_any_port());
  ASSERT_TRUE(listener) << listener.error().message();
  Runtime rt({.reactors = 1});
  rt.run([&]() -> task<void> {
    spawn(echo_server(*listener));
    auto conn = co_await TcpStream::connect(listener->local_address(), 2s);
    EXPECT_TRUE(conn) << conn.error().message();
    if (!conn) co_return;
    for (std::size_t size : {1ul, 100ul, 4096ul, 65536ul, 1ul << 20}) {
      auto msg = pattern(size);
      auto back = co_await round_trip(*conn, msg);
      EXPECT_TRUE(back) << size << ": " << back.error().message();
      if (back) {
        EXPECT_TRUE(*back == msg) << "size " << size;
      }
    }
  }());
}

TEST(Tcp, ThousandConcurrentConnectionsOverReuseportListeners) {
  constexpr int kConns = 1000;
  // One listener per reactor on the same port: the kernel spreads connections between them.
  auto first = TcpListener::bind(loopback_any_port(), {.reuseport = true});
  ASSERT_TRUE(first) << first.error().message();
  auto refused = TcpListener::bind(first->local_address(), {.reuseport = true});
  ASSERT_FALSE(refused);  // sharing is asked for, never implied
  EXPECT_EQ(refused.error().code, EADDRINUSE);
  EXPECT_NE(refused.error().message().find("share_port"), std::string::npos) << refused.error().message();
  auto second = TcpListener::bind(first->local_address(), {.reuseport = true, .share_port = true});
  ASSERT_TRUE(second) << second.error().message();
  Runtime rt({.reactors = 2});
  int ok = rt.run([&]() -> task<int> {
    spawn(echo_server(*first));
    co_await submit_to(1, [&] { spawn(echo_server(*second)); });
    int good = 0, finished = 0;
    auto client = [&](int i) -> task<void> {
      auto c = co_await TcpStream::connect(first->local_address(), 5s);
      if (c) {
        std::string msg = "connection " + std::to_string(i);
        auto back = co_await round_trip(*c, std::vector<char>(msg.begin(), msg.end()));
        if (back && std::string(back->begin(), back->end()) == msg) ++good;
      }
      ++finished;
    };
    for (int i = 0; i < kConns; ++i) spawn(client(i));
    for (int waited = 0; finished < kConns && waited < 20'000; ++waited) co_await sleep_for(1ms);
    co_return good;
  }());
  EXPECT_EQ(ok, kConns);
}

TEST(Tcp, HalfCloseLetsThePeerFinishItsReply) {
  auto listener = TcpListener::bind(loopback_any_port());
  ASSERT_TRUE(listener);
  Runtime rt({.reactors = 1});
  auto reply = rt.run([&]() -> task<std::string> {
    auto server = [&]() -> task<void> {
      auto c = co_await listener->accept();
      if (!c) co_return;
      std::string got;
      char buf[64];
      for (;;) {  // read to end of stream: the client's half-close
        auto n = co_await c->read_some(buf);
        if (!n || *n == 0) break;
        got.append(buf, *n);
      }
      std::string answer = "got " + got;
      (void)co_await c->write_all(answer);
    };
    spawn(server());
    auto c = co_await TcpStream::connect(listener->local_address());
    if (!c) co_return "connect failed";
    (void)co_await c->write_all(std::string_view("hello"));
    if (!c->shutdown_write()) co_return "shutdown failed";
    std::string all;
    char buf[64];
    for (;;) {
      auto n = co_await c->read_some(buf);
      if (!n) co_return n.error().message();
      if (*n == 0) break;
      all.append(buf, *n);
    }
    co_return all;
  }());
  EXPECT_EQ(reply, "got hello");
}

TEST(Tcp, PeerResetMidWriteIsAValue) {
  auto listener = TcpListener::bind(loopback_any_port());
  ASSERT_TRUE(listener);
  Runtime rt({.reactors = 1});
  auto err = rt.run([&]() -> task<Error> {
    auto server = [&]() -> task<void> {
      auto c = co_await listener->accept();
      if (!c) co_return;
      (void)set_linger(c->fd(), 0s);  // close() sends a reset
      c->close();
    };
    spawn(server());
    auto c = co_await TcpStream::connect(listener->local_address());
    if (!c) co_return c.error();
    std::vector<char> big(8 << 20, 'x');
    for (int i = 0; i < 10; ++i) {
      auto w = co_await c->write_all(big);
      if (!w) co_return w.error();
    }
    co_return Error{};
  }());
  EXPECT_TRUE(err.code == ECONNRESET || err.code == EPIPE) << err.message();
  EXPECT_NE(err.message().find("write to 127.0.0.1:"), std::string::npos) << err.message();
}

TEST(Tcp, ConnectRefusedNamesTheAddress) {
  Runtime rt({.reactors = 1});
  Address closed;
  {
    auto l = TcpListener::bind(loopback_any_port());
    ASSERT_TRUE(l);
    closed = l->local_address();
  }
  auto r = rt.run(TcpStream::connect(closed, 2s));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ECONNREFUSED);
  EXPECT_EQ(r.error().message(), "connect " + closed.to_string() + ": Connection refused");
}

TEST(Tcp, ConnectDeadline) {
  // A listener that never accepts and has a one-slot backlog: once its queue is full the kernel drops
  // further SYNs, so a connect can only end by its deadline.
  auto listener = TcpListener::bind(loopback_any_port(), {.backlog = 1});
  ASSERT_TRUE(listener);
  Runtime rt({.reactors = 1});
  auto [timed_out, waited] = rt.run([&]() -> task<std::pair<int, Clock::duration>> {
    std::vector<TcpStream> held;
    for (int i = 0; i < 10; ++i) {
      auto t0 = Clock::now();
      auto c = co_await TcpStream::connect(listener->local_address(), 200ms);
      if (!c) co_return std::pair{c.error().code, Clock::now() - t0};
      held.push_back(std::move(*c));
    }
    co_return std::pair{0, Clock::duration{}};
  }());
  EXPECT_EQ(timed_out, ETIMEDOUT);
  EXPECT_GE(waited, 190ms);
  EXPECT_LT(waited, 2s);
}

TEST(Tcp, ReadDeadlineOnASilentPeer) {
  auto listener = TcpListener::bind(loopback_any_port());
  ASSERT_TRUE(listener);
  Runtime rt({.reactors = 1});
  auto r = rt.run([&]() -> task<Result<std::size_t>> {
    auto c = co_await TcpStream::connect(listener->local_address());
    if (!c) co_return c.error();
    auto accepted = co_await listener->accept();  // held open, silent
    char buf[16];
    co_return co_await c->read_some(buf).timeout(30ms);
  }());
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().timed_out()) << r.error().message();
}

// Times out a write to a peer that does not read, closes (with a reset first when asked), then reads on
// the peer: whether it ended in ECONNRESET.
task<std::pair<bool, bool>> stalled_write_then_close(const TcpListener& listener, bool reset) {
  auto c = co_await TcpStream::connect(listener.local_address());
  auto accepted = co_await listener.accept();
  if (!c || !accepted) co_return std::pair{false, false};
  const std::vector<char> lots(std::size_t{32} << 20, 'x');  // more than both socket buffers hold
  auto w = co_await accepted->write_all(lots, Clock::now() + 100ms);
  const bool timed = !w && w.error().timed_out();
  if (reset) accepted->reset_on_close();
  accepted->close();
  std::vector<char> buf(1 << 20);
  for (;;) {
    auto n = co_await c->read_some(buf).timeout(5s);
    if (!n) co_return std::pair{timed, n.error().code == ECONNRESET};
    if (*n == 0) co_return std::pair{timed, false};  // a clean end of stream, after every byte sent
  }
}

// A write to a peer that stopped reading times out; with reset_on_close() the close is a reset, so the
// kernel drops the unsent bytes at once: the peer, reading at last, gets ECONNRESET; without it, the rest
// and a clean end of stream.
TEST(Tcp, ResetOnCloseDropsWhatAPeerThatStoppedReadingLeft) {
  auto listener = TcpListener::bind(loopback_any_port());
  ASSERT_TRUE(listener);
  Runtime rt({.reactors = 1});
  auto [timed_out, reset] = rt.run(stalled_write_then_close(*listener, true));
  EXPECT_TRUE(timed_out);
  EXPECT_TRUE(reset);
  auto [timed_out_plain, reset_plain] = rt.run(stalled_write_then_close(*listener, false));
  EXPECT_TRUE(timed_out_plain);
  EXPECT_FALSE(reset_plain);
}

TEST(Tcp, BindErrorsNameTheAddress) {
  auto a = TcpListener::bind(loopback_any_port());
  ASSERT_TRUE(a);
  auto b = TcpListener::bind(a->local_address());
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, EADDRINUSE);
  EXPECT_EQ(b.error().message(), "bind " + a->local_address().to_string() + ": Address already in use");
}

}  // namespace
}  // namespace corio::net
