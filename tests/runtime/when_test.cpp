// when_all and when_any on a real reactor: values, concurrency, the losers stopped and awaited (none
// outlives the call, counted), exceptions, a stop of the caller, and a real socket read cancelled.
#include "corio/runtime/when_all.hpp"
#include "corio/runtime/when_any.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "corio/net/tcp_stream.hpp"
#include "corio/runtime/event.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"
#include "tests/net/loopback_pair.hpp"
#include "tests/runtime/live_count.hpp"

namespace corio {
namespace {

using namespace std::chrono_literals;

using testing::Live;

task<int> value_after(int v, Clock::duration d, int& live) {
  Live alive(live);
  if (co_await sleep_for(d)) co_return -1;  // stopped
  co_return v;
}

TEST(WhenAll, GathersValuesOfEveryKind) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    int live = 0;
    auto name = []() -> task<std::string> { co_return "corio"; };
    auto nothing = []() -> task<void> { co_return; };
    auto [a, b, c] = co_await when_all(value_after(1, 2ms, live), name(), nothing());
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, "corio");
    EXPECT_EQ(c, std::monostate{});
    std::vector<task<int>> many;
    for (int i = 0; i < 50; ++i) many.push_back(value_after(i, std::chrono::microseconds(i), live));
    std::vector<int> got = co_await when_all(std::move(many));
    for (int i = 0; i < 50; ++i) EXPECT_EQ(got[i], i);
    EXPECT_TRUE((co_await when_all(std::vector<task<int>>{})).empty());
    co_await when_all(std::vector<task<void>>{});
    EXPECT_EQ(live, 0);
  }());
}

TEST(WhenAll, RunsTheTasksConcurrently) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Event ping;
    // Run one after the other, the waiter would never see the set.
    auto waiter = [](Event& e) -> task<std::error_code> { co_return co_await e.wait(); };
    auto setter = [](Event& e) -> task<void> {
      co_await yield{};
      e.set();
    };
    auto [ec, none] = co_await when_all(waiter(ping), setter(ping));
    EXPECT_FALSE(ec);
  }());
}

TEST(WhenAll, AFailureStopsTheOthersAndIsRethrown) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    int live = 0;
    auto fail = [](int& live) -> task<int> {
      Live alive(live);
      co_await sleep_for(1ms);
      throw std::runtime_error("boom");
    };
    auto t0 = Clock::now();
    std::string what;
    try {
      co_await when_all(value_after(1, 10s, live), fail(live), value_after(2, 10s, live));
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    EXPECT_EQ(what, "boom");
    EXPECT_EQ(live, 0);
    EXPECT_LT(Clock::now() - t0, 5s);  // the 10 s sleeps were stopped, not waited out
  }());
}

TEST(WhenAll, AStopOfTheCallerStopsEveryTask) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    int live = 0;
    auto both = [](int& live) -> task<int> {
      auto [a, b] = co_await when_all(value_after(1, 10s, live), value_after(2, 10s, live));
      co_return a + b;
    };
    auto r = co_await with_timeout(5ms, both(live));
    EXPECT_FALSE(r.has_value());
    EXPECT_EQ(live, 0);
  }());
}

TEST(WhenAny, TheFirstWinsAndTheLosersAreStoppedAndAwaited) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    int live = 0;
    auto v = co_await when_any(value_after(1, 10s, live), value_after(2, 1ms, live), value_after(3, 10s, live));
    EXPECT_EQ(v.index(), 1u);
    EXPECT_EQ(std::get<1>(v), 2);
    EXPECT_EQ(live, 0);
    std::vector<task<int>> many;
    for (int i = 0; i < 10; ++i) many.push_back(value_after(i, i == 7 ? 0ms : 10s, live));
    auto [index, value] = co_await when_any(std::move(many));
    EXPECT_EQ(index, 7u);
    EXPECT_EQ(value, 7);
    EXPECT_EQ(live, 0);
    EXPECT_THROW(co_await when_any(std::vector<task<int>>{}), std::invalid_argument);
  }());
}

TEST(WhenAny, OnceATaskHasWonAtOnceTheRestNeverStart) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    int started = 0;
    auto counted = [](int& started, int v) -> task<int> {
      ++started;
      co_return v;
    };
    auto v = co_await when_any(counted(started, 1), counted(started, 2), counted(started, 3));
    EXPECT_EQ(v.index(), 0u);
    EXPECT_EQ(started, 1);
  }());
}

TEST(WhenAny, AWinnerThatThrowsIsRethrown) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    int live = 0;
    auto fail = []() -> task<void> { throw std::logic_error("first"); co_return; };
    EXPECT_THROW(co_await when_any(fail(), value_after(1, 10s, live)), std::logic_error);
    EXPECT_EQ(live, 0);
  }());
}

TEST(WhenAny, ASocketReadInFlightIsCancelledWhenATimerWins) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    auto pair = co_await net::testing::connect_pair();
    auto read = [](net::TcpStream& s) -> task<int> {
      char buf[64];
      auto n = co_await s.read_some(buf);
      co_return n ? static_cast<int>(*n) : -n.error().code;
    };
    int live = 0;
    auto v = co_await when_any(read(pair.server), value_after(5, 2ms, live));
    EXPECT_EQ(v.index(), 1u);
    // The stream still works: the cancelled read took nothing.
    EXPECT_TRUE(co_await pair.client.write_all(std::string_view("hello")));
    char buf[8];
    auto n = co_await pair.server.read_some(buf);
    EXPECT_TRUE(n && *n == 5u);
  }());
}

}  // namespace
}  // namespace corio
