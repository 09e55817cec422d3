// Timers on a real reactor: sleeps, ordering, with_timeout, and 100,000 pending sleeps.
#include "corio/runtime/time.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "corio/runtime/runtime.hpp"

namespace corio {
namespace {

using namespace std::chrono_literals;

TEST(Time, SleepForWaitsAtLeastTheDuration) {
  Runtime rt({.reactors = 1});
  auto [err, waited] = rt.run([]() -> task<std::pair<std::error_code, Clock::duration>> {
    auto t0 = Clock::now();
    std::error_code e = co_await sleep_for(20ms);
    co_return std::pair{e, Clock::now() - t0};
  }());
  EXPECT_FALSE(err);
  EXPECT_GE(waited, 20ms);
  EXPECT_LT(waited, 2s);
}

TEST(Time, SleepUntilInThePastReturnsAtOnce) {
  Runtime rt({.reactors = 1});
  std::error_code err = rt.run([]() -> task<std::error_code> { co_return co_await sleep_until(Clock::now() - 1h); }());
  EXPECT_FALSE(err);
}

TEST(Time, SleepersWakeInDeadlineOrder) {
  Runtime rt({.reactors = 1});
  std::vector<int> order;
  rt.run([&]() -> task<void> {
    auto sleeper = [&](int ms) -> task<void> {
      co_await sleep_for(std::chrono::milliseconds(ms));
      order.push_back(ms);
    };
    for (int ms : {30, 10, 50, 20, 40, 0}) spawn(sleeper(ms));
    co_await sleep_for(80ms);
  }());
  EXPECT_EQ(order, (std::vector<int>{0, 10, 20, 30, 40, 50}));
}

TEST(Time, HundredThousandPendingSleeps) {
  Runtime rt({.reactors = 1});
  constexpr int kSleepers = 100'000;
  int woke = 0;
  bool in_order = true;
  std::size_t peak = 0;
  rt.run([&]() -> task<void> {
    Clock::time_point last{};
    auto sleeper = [&](Clock::time_point when) -> task<void> {
      co_await sleep_until(when);
      if (Clock::now() < when || when < last) in_order = false;
      last = when;
      ++woke;
    };
    auto t0 = Clock::now() + 500ms;  // after every sleeper is armed, even in a sanitizer build
    for (int i = 0; i < kSleepers; ++i) spawn(sleeper(t0 + std::chrono::microseconds((i * 7919) % 200'000)));
    // The sleepers were spawned ahead of this task's turn: by the time it resumes, all of them have armed,
    // and no timer has been checked yet (a slow sanitizer build can pass t0 later, so look now).
    co_await yield();
    peak = Reactor::current()->timers().size();
    while (woke < kSleepers) co_await sleep_for(10ms);
  }());
  EXPECT_EQ(peak, static_cast<std::size_t>(kSleepers));
  EXPECT_EQ(woke, kSleepers);
  EXPECT_TRUE(in_order);
}

task<int> slow_value(Clock::duration d, int v) {
  if (co_await sleep_for(d)) co_return -1;  // stopped (the form GCC 12 crashes on: README, compiler notes)
  co_return v;
}

TEST(Time, WithTimeoutReturnsValueInTime) {
  Runtime rt({.reactors = 1});
  std::optional<int> r = rt.run(with_timeout(1s, slow_value(1ms, 9)));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 9);
}

TEST(Time, WithTimeoutStopsTheTaskAtTheDeadline) {
  Runtime rt({.reactors = 1});
  auto [r, waited] = rt.run([]() -> task<std::pair<std::optional<int>, Clock::duration>> {
    auto t0 = Clock::now();
    auto v = co_await with_timeout(20ms, slow_value(1h, 9));
    co_return std::pair{v, Clock::now() - t0};
  }());
  EXPECT_FALSE(r.has_value());
  EXPECT_GE(waited, 20ms);
  EXPECT_LT(waited, 2s);
}

TEST(Time, WithTimeoutReachesNestedTasksAndVoidForm) {
  Runtime rt({.reactors = 1});
  std::error_code inner_err;
  bool in_time = rt.run([&]() -> task<bool> {
    auto inner = [&]() -> task<void> { inner_err = co_await sleep_for(1h); };
    auto middle = [&]() -> task<void> { co_await inner(); };
    co_return co_await with_timeout(10ms, middle());
  }());
  EXPECT_FALSE(in_time);
  EXPECT_EQ(inner_err, std::errc::operation_canceled);
}

TEST(Time, NestedTimeoutsTheOuterCanFireFirst) {
  Runtime rt({.reactors = 1});
  std::optional<std::optional<int>> r = rt.run(with_timeout(10ms, with_timeout(1h, slow_value(1h, 1))));
  EXPECT_FALSE(r.has_value());
}

}  // namespace
}  // namespace corio
