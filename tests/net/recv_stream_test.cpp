// RecvStream: bytes in pool buffers, multishot where the kernel has it, a ring run dry (ENOBUFS) without
// loss, idle streams holding no buffer, deadlines, stops, and buffers returned on every path.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "corio/net/recv_stream.hpp"
#include "corio/net/tcp_listener.hpp"
#include "tests/net/loopback_pair.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"

namespace corio::net {
namespace {

using namespace std::chrono_literals;

using testing::connected;
using testing::Pair;

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7) % 26);
  return s;
}

BufferPool& pool() { return Reactor::current()->backend().buffers(); }

// Receives until end of stream, holding up to `hold` buffers at a time (a slow reader), then checks
// that every buffer went back.
task<std::string> receive_all(const TcpStream& s, std::size_t hold) {
  std::string got;
  std::vector<RecvBuffer> held;
  RecvStream rx(s);
  for (;;) {
    auto chunk = co_await rx.next(Clock::now() + 5s);
    if (!chunk) throw std::runtime_error(chunk.error().message());
    if (chunk->empty()) break;
    got.append(chunk->bytes().data(), chunk->size());
    held.push_back(std::move(*chunk));
    if (held.size() >= hold) {
      co_await sleep_for(1ms);  // let the sender fill the ring meanwhile
      held.clear();
    }
  }
  co_return got;
}

task<void> send_then_close(TcpStream s, std::string data) {
  auto r = co_await s.write_all(data);
  if (!r) throw std::runtime_error(r.error().message());
}

struct Received {
  std::string data;
  std::uint32_t lent_after = 99;
  std::uint32_t ran_dry = 0;
  std::uint32_t allocated = 0;
  bool kernel_ring = false;  // a provided buffer ring (io_uring)
};

task<Received> transfer(const TcpListener& l, std::size_t bytes, std::size_t hold) {
  Pair p = co_await connected(l);
  spawn(send_then_close(std::move(p.client), pattern(bytes)));
  Received r;
  r.data = co_await receive_all(p.server, hold);
  r.lent_after = pool().lent();
  r.ran_dry = pool().ran_dry();
  r.allocated = pool().allocated();
  r.kernel_ring = pool().kernel_selects();
  co_return r;
}

// transfer() on a one-reactor runtime with `options`: every byte arrives in order, every buffer returns.
Received checked_transfer(BackendOptions options, std::size_t bytes, std::size_t hold) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  if (!l) throw std::runtime_error(l.error().message());
  Runtime rt({.reactors = 1, .backend = options});
  Received r = rt.run(transfer(*l, bytes, hold));
  EXPECT_EQ(r.data, pattern(bytes));
  EXPECT_EQ(r.lent_after, 0u);
  return r;
}

TEST(RecvStream, ReceivesEverythingInOrderAndReturnsEveryBuffer) { checked_transfer({}, 1 << 20, 1); }

// A ring of two 64-byte buffers and a reader that holds both for a while: the kernel finds the ring empty
// (ENOBUFS) again and again; the stream waits for the buffers, re-arms and no byte is lost. (Without
// bundles: a bundle receive does not report ENOBUFS; tests/net/bundle_test.cpp covers it run dry.)
TEST(RecvStream, RingRunDryLosesNothing) {
  Received r = checked_transfer({.recv_bundle = false, .buffers = {.buffer_size = 64, .slab = 2, .limit = 2}}, 64 * 1024, 2);
  EXPECT_LE(r.allocated, 64u);
  if (r.kernel_ring) {
    EXPECT_EQ(r.allocated, 2u);
    EXPECT_GT(r.ran_dry, 0u);
  }
}

// The ring starts with one slab of 2 and grows under pressure, up to its limit of 32.
TEST(RecvStream, RingGrowsUnderPressure) {
  Received r = checked_transfer({.buffers = {.buffer_size = 256, .slab = 2, .limit = 32}}, 256 * 1024, 8);
  if (r.kernel_ring) {
    EXPECT_GT(r.allocated, 2u);
    EXPECT_LE(r.allocated, 32u);
  }
}

TEST(RecvStream, WorksWithEachFeatureSwitchedOff) {
  for (BackendOptions o : {BackendOptions{.provided_buffers = false}, BackendOptions{.multishot_recv = false},
                           BackendOptions{.fixed_files = false}}) {
    checked_transfer(o, 200'000, 3);
  }
}

struct Idle {
  std::uint32_t lent_while_idle = 99;
  std::size_t in_flight_while_idle = 99;
  bool multishot = false;
  bool kernel_ring = false;
};

// After a round trip the stream waits for more with no buffer lent; on io_uring it stays armed (one
// multishot receive in flight).
task<Idle> idle_after_round_trip(const TcpListener& l) {
  Pair p = co_await connected(l);
  RecvStream rx(p.server);
  (void)co_await p.client.write_all(std::string_view("ping"));
  auto chunk = co_await rx.next();
  if (!chunk || chunk->size() != 4) throw std::runtime_error("no ping");
  chunk->release();
  Idle idle;
  idle.multishot = rx.multishot();
  idle.kernel_ring = pool().kernel_selects();
  auto waiting = rx.next(Clock::now() + 20ms);  // arm, wait, time out
  auto r = co_await waiting;
  if (r || r.error().code != ETIMEDOUT) throw std::runtime_error("expected a timeout");
  idle.lent_while_idle = pool().lent();
  idle.in_flight_while_idle = Reactor::current()->backend().in_flight();
  co_return idle;
}

TEST(RecvStream, IdleStreamHoldsNoBuffer) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  Runtime rt({.reactors = 1});
  Idle idle = rt.run(idle_after_round_trip(*l));
  EXPECT_EQ(idle.lent_while_idle, 0u);
  if (idle.kernel_ring) {
    EXPECT_TRUE(idle.multishot);
    EXPECT_EQ(idle.in_flight_while_idle, 1u);
  }
}

// The cost of switching the ring off on io_uring: a receive in flight holds its buffer while it waits.
TEST(RecvStream, WithoutTheRingAnIdleUringStreamHoldsOneBuffer) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  Runtime rt({.reactors = 1, .backend = {.kind = BackendOptions::Kind::uring, .provided_buffers = false}});
  Idle idle = rt.run(idle_after_round_trip(*l));
  EXPECT_EQ(idle.lent_while_idle, 1u);
  EXPECT_FALSE(idle.multishot);
}

TEST(RecvStream, DeadlinePassesThenDataStillArrives) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  Runtime rt({.reactors = 1});
  auto [code, late] = rt.run([&]() -> task<std::pair<int, std::string>> {
    Pair p = co_await connected(*l);
    RecvStream rx(p.server);
    auto first = co_await rx.next(Clock::now() + 30ms);
    int code = first ? 0 : first.error().code;
    (void)co_await p.client.write_all(std::string_view("late"));
    auto second = co_await rx.next(Clock::now() + 2s);
    co_return std::pair{code, second ? std::string(second->bytes().data(), second->size()) : "error"};
  }());
  EXPECT_EQ(code, ETIMEDOUT);
  EXPECT_EQ(late, "late");
}

TEST(RecvStream, StopCancelsAWaitingNext) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  Runtime rt({.reactors = 1});
  auto [code, lent] = rt.run([&]() -> task<std::pair<int, std::uint32_t>> {
    Pair p = co_await connected(*l);
    std::stop_source stop;
    int code = 0;
    {
      RecvStream rx(p.server);
      auto waiter = [](RecvStream& rx, int& code) -> task<void> {
        auto r = co_await rx.next();
        code = r ? 0 : r.error().code;
      };
      auto t = with_stop_token(stop.get_token(), waiter(rx, code));
      spawn([](std::stop_source& s) -> task<void> {
        co_await sleep_for(20ms);
        s.request_stop();
      }(stop));
      co_await std::move(t);
    }
    co_return std::pair{code, pool().lent()};
  }());
  EXPECT_EQ(code, ECANCELED);
  EXPECT_EQ(lent, 0u);
}

// Bytes that arrived but were never read go back to the pool when the stream is destroyed.
TEST(RecvStream, DestroyingItReturnsQueuedBuffers) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  Runtime rt({.reactors = 1, .backend = {.buffers = {.buffer_size = 64, .slab = 8, .limit = 64}}});
  auto [got_some, lent] = rt.run([&]() -> task<std::pair<bool, std::uint32_t>> {
    Pair p = co_await connected(*l);
    bool got_some = false;
    {
      RecvStream rx(p.server);
      (void)co_await p.client.write_all(std::string_view("x"));
      auto first = co_await rx.next();
      got_some = first && first->size() == 1;
      (void)co_await p.client.write_all(pattern(300));  // several buffers' worth, never read
      co_await sleep_for(10ms);
    }
    co_return std::pair{got_some, pool().lent()};
  }());
  EXPECT_TRUE(got_some);
  EXPECT_EQ(lent, 0u);
}

// The stream's file-table slot is released with it: closing the socket afterwards reaches the peer.
TEST(RecvStream, ClosingAfterTheStreamEndsTheConnection) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  Runtime rt({.reactors = 1});
  auto [echoed, eof] = rt.run([&]() -> task<std::pair<bool, bool>> {
    Pair p = co_await connected(*l);
    bool echoed = false;
    {
      RecvStream rx(p.server);
      (void)co_await p.client.write_all(std::string_view("hi"));
      auto chunk = co_await rx.next(Clock::now() + 2s);
      echoed = chunk && chunk->size() == 2;
    }
    p.server.close();
    char c;
    auto r = co_await p.client.read_some(std::span(&c, 1)).timeout(2s);
    co_return std::pair{echoed, r && *r == 0};
  }());
  EXPECT_TRUE(echoed);
  EXPECT_TRUE(eof);
}

TEST(RecvStream, EndOfStreamRepeats) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  Runtime rt({.reactors = 1});
  int ends = rt.run([&]() -> task<int> {
    Pair p = co_await connected(*l);
    RecvStream rx(p.server);
    p.client.close();
    int ends = 0;
    for (int i = 0; i < 3; ++i) {
      auto r = co_await rx.next(Clock::now() + 2s);
      if (r && r->empty()) ++ends;
    }
    co_return ends;
  }());
  EXPECT_EQ(ends, 3);
}

}  // namespace
}  // namespace corio::net
