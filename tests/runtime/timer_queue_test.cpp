// TimerQueue: ordering, ties, disarm from anywhere in the heap.
#include "corio/runtime/timer_queue.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace corio {
namespace {

struct Recorder final : TimerEntry {
  std::vector<int>* log = nullptr;
  int id = 0;
  void fire() noexcept override { log->push_back(id); }
};

TEST(TimerQueue, FiresInDeadlineOrderAndTiesInArmingOrder) {
  TimerQueue q;
  std::vector<int> log;
  std::vector<Recorder> timers(6);
  const Clock::time_point t0{};
  const int offsets[] = {5, 1, 3, 1, 0, 3};
  for (int i = 0; i < 6; ++i) {
    timers[i].log = &log;
    timers[i].id = i;
    q.arm(timers[i], t0 + std::chrono::seconds(offsets[i]));
  }
  EXPECT_EQ(q.fire_due(t0 + std::chrono::seconds(2)), 3u);
  EXPECT_EQ(log, (std::vector<int>{4, 1, 3}));
  EXPECT_EQ(q.fire_due(t0 + std::chrono::seconds(10)), 3u);
  EXPECT_EQ(log, (std::vector<int>{4, 1, 3, 2, 5, 0}));
  EXPECT_TRUE(q.empty());
}

TEST(TimerQueue, DisarmKeepsHeapOrder) {
  TimerQueue q;
  std::vector<int> log;
  std::vector<Recorder> timers(1000);
  std::mt19937 rng(7);
  const Clock::time_point t0{};
  for (int i = 0; i < 1000; ++i) {
    timers[i].log = &log;
    timers[i].id = i;
    q.arm(timers[i], t0 + std::chrono::milliseconds(rng() % 500));
  }
  for (int i = 0; i < 1000; i += 3) q.disarm(timers[i]);
  for (int i = 0; i < 1000; i += 3) EXPECT_FALSE(timers[i].armed());
  q.fire_due(t0 + std::chrono::seconds(1));
  EXPECT_EQ(log.size(), 1000u - 334u);
  EXPECT_TRUE(std::is_sorted(log.begin(), log.end(), [&](int a, int b) {
    return timers[a].deadline() < timers[b].deadline();
  }));
  EXPECT_TRUE(std::none_of(log.begin(), log.end(), [](int id) { return id % 3 == 0; }));
}

TEST(TimerQueue, RearmMovesTimer) {
  TimerQueue q;
  std::vector<int> log;
  Recorder a, b;
  a.log = b.log = &log;
  a.id = 1;
  b.id = 2;
  const Clock::time_point t0{};
  q.arm(a, t0 + std::chrono::seconds(1));
  q.arm(b, t0 + std::chrono::seconds(2));
  q.arm(a, t0 + std::chrono::seconds(3));
  EXPECT_EQ(q.size(), 2u);
  q.fire_due(t0 + std::chrono::seconds(5));
  EXPECT_EQ(log, (std::vector<int>{2, 1}));
}

struct Rearming final : TimerEntry {
  TimerQueue* q = nullptr;
  int fired = 0;
  void fire() noexcept override {
    ++fired;
    q->arm(*this, Clock::time_point{});  // due again at once
  }
};

TEST(TimerQueue, TimerArmedWhileFiringWaitsForTheNextCall) {
  TimerQueue q;
  Rearming r;
  r.q = &q;
  q.arm(r, Clock::time_point{});
  EXPECT_EQ(q.fire_due(Clock::time_point{} + std::chrono::seconds(1)), 1u);
  EXPECT_EQ(q.fire_due(Clock::time_point{} + std::chrono::seconds(1)), 1u);
  EXPECT_EQ(r.fired, 2);
  q.disarm(r);
}

}  // namespace
}  // namespace corio
