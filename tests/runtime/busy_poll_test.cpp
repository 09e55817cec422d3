// The opt-in latency features: busy polling (cross-reactor calls, stops and timers while spinning, and
// utilisation that does not count the spin), SQPOLL rings and NAPI registration. They must change how a
// reactor waits, never what it delivers.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "corio/net/recv_stream.hpp"
#include "corio/runtime/nop.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"
#include "tests/net/loopback_pair.hpp"

namespace corio {
namespace {

using namespace std::chrono_literals;

RuntimeOptions busy(unsigned reactors) {
  RuntimeOptions o{.reactors = reactors};
  EXPECT_TRUE(switch_on(o.backend, "busy-poll=200"));
  return o;
}

TEST(BusyPoll, SwitchOnParses) {
  BackendOptions o;
  EXPECT_TRUE(switch_on(o, "busy-poll"));
  EXPECT_EQ(o.busy_poll, 50us);
  EXPECT_TRUE(switch_on(o, "sqpoll=3"));
  EXPECT_TRUE(o.sqpoll);
  EXPECT_EQ(o.sqpoll_idle, 3ms);
  EXPECT_TRUE(switch_on(o, "napi=20"));
  EXPECT_EQ(o.napi_busy_poll, 20us);
  EXPECT_FALSE(switch_on(o, "busy-poll=0"));
  EXPECT_FALSE(switch_on(o, "busy-poll=12x"));
  EXPECT_FALSE(switch_on(o, "turbo"));
}

// Calls across reactors while both spin: each answer comes back, and the runtime stops promptly (a stop
// request seen while spinning, with no wake-up left to wait for).
TEST(BusyPoll, CrossReactorCalls) {
  Runtime rt(busy(2));
  int sum = rt.run([]() -> task<int> {
    int s = 0;
    for (int i = 0; i < 2000; ++i) s += co_await submit_to(1, [i] { return i % 3; });
    co_return s;
  }());
  int expected = 0;
  for (int i = 0; i < 2000; ++i) expected += i % 3;
  EXPECT_EQ(sum, expected);
  const auto t0 = std::chrono::steady_clock::now();
  rt.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

// A message from a thread that is no reactor reaches a spinning reactor, and one that has gone to sleep.
TEST(BusyPoll, PostFromOutside) {
  Runtime rt(busy(1));
  EXPECT_EQ(rt.run([]() -> task<int> { co_return 7; }()), 7);
  std::this_thread::sleep_for(5ms);  // well past the spin: the reactor sleeps in the kernel
  EXPECT_EQ(rt.run([]() -> task<int> { co_return 8; }()), 8);
}

// Timers fire on time while the reactor spins (the spin ends at the next deadline).
TEST(BusyPoll, TimersFire) {
  Runtime rt(busy(1));
  auto late = rt.run([]() -> task<Clock::duration> {
    Clock::duration worst{};
    for (int i = 0; i < 20; ++i) {
      const auto due = Clock::now() + 1ms;
      co_await sleep_until(due);
      worst = std::max(worst, Clock::now() - due);
    }
    co_return worst;
  }());
  EXPECT_LT(late, 50ms);
}

// An idle spinning reactor burns its CPU, but utilisation() (what load shedding reads) counts only work.
TEST(BusyPoll, SpinIsNotUtilisation) {
  RuntimeOptions o{.reactors = 1};
  o.backend.busy_poll = 1s;  // spins the whole time between timers
  Runtime rt(o);
  double u = rt.run([]() -> task<double> {
    co_await sleep_for(350ms);
    co_return Reactor::current()->utilisation();
  }());
  EXPECT_LT(u, 0.5);
}

// Sockets under busy polling: an echo over loopback and a receive stopped mid-wait.
TEST(BusyPoll, SocketsWork) {
  Runtime rt(busy(1));
  std::string got = rt.run([]() -> task<std::string> {
    auto pair = co_await net::testing::connect_pair();
    if (auto w = co_await pair.client.write_all(std::string_view("ping")); !w) throw std::runtime_error(w.error().message());
    net::RecvStream rx(pair.server);
    auto chunk = co_await rx.next(Clock::now() + 2s);
    auto none = co_await rx.next(Clock::now() + 10ms);
    co_return std::string(chunk ? chunk->bytes().data() : "", chunk ? chunk->size() : 0) +
              (!none && none.error().code == ETIMEDOUT ? " timeout" : " no timeout");
  }());
  EXPECT_EQ(got, "ping timeout");
}

// SQPOLL: the ring says what it got; operations, sockets and deadlines work the same.
TEST(Sqpoll, RingWorks) {
  RuntimeOptions o{.reactors = 1};
  ASSERT_TRUE(switch_on(o.backend, "sqpoll=2"));
  Runtime rt(o);
  std::string got = rt.run([]() -> task<std::string> {
    const std::string what = Reactor::current()->backend().describe();
    for (int i = 0; i < 1000; ++i) co_await nop();
    auto pair = co_await net::testing::connect_pair();
    co_await sleep_for(5ms);  // the SQPOLL thread goes idle: the next submission must wake it
    if (auto w = co_await pair.client.write_all(std::string_view("pong")); !w) throw std::runtime_error(w.error().message());
    char buf[8];
    auto n = co_await pair.server.read_some(buf).timeout(2s);
    co_return what + "|" + (n ? std::string(buf, *n) : n.error().message());
  }());
  if (got.starts_with("io_uring")) EXPECT_NE(got.find("SQPOLL"), std::string::npos) << got;
  EXPECT_TRUE(got.ends_with("|pong")) << got;
}

// NAPI: registered where the kernel knows IORING_REGISTER_NAPI (6.9+), else said why; loopback has no
// NAPI ids, so it changes nothing there.
TEST(Napi, RegisteredOrExplained) {
  RuntimeOptions o{.reactors = 1};
  ASSERT_TRUE(switch_on(o.backend, "napi"));
  Runtime rt(o);
  std::string what = rt.run([]() -> task<std::string> { co_return Reactor::current()->backend().describe(); }());
  if (what.starts_with("io_uring")) EXPECT_NE(what.find("napi"), std::string::npos) << what;
}

}  // namespace
}  // namespace corio
