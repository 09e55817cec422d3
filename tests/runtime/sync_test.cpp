// Event, Semaphore and Mutex on a real reactor: wake-ups, FIFO hand-off, the bound, stops from this and
// other reactors, and awaiters destroyed while parked or after being woken.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "corio/runtime/event.hpp"
#include "corio/runtime/mutex.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/semaphore.hpp"
#include "corio/runtime/task_scope.hpp"
#include "corio/runtime/time.hpp"
#include "corio/runtime/when_all.hpp"

namespace corio {
namespace {

using namespace std::chrono_literals;

task<std::error_code> wait_on(Event& e, int& woke) {
  std::error_code ec = co_await e.wait();
  ++woke;
  co_return ec;
}

TEST(Event, SetWakesEveryWaiterAndLaterWaitsPassUntilReset) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Event e;
    int woke = 0;
    TaskScope scope;
    for (int i = 0; i < 3; ++i) scope.spawn(wait_on(e, woke));
    co_await yield{};
    EXPECT_EQ(woke, 0);
    e.set();
    EXPECT_EQ(woke, 0);  // never inside set()
    co_await scope.join();
    EXPECT_EQ(woke, 3);
    EXPECT_FALSE(co_await e.wait());  // set: at once
    e.reset();
    auto r = co_await with_timeout(20ms, wait_on(e, woke));
    EXPECT_FALSE(r.has_value());  // reset: waits again, until the deadline stops it
  }());
}

TEST(Event, StoppedWaitEndsWithECanceled) {
  Runtime rt({.reactors = 1});
  std::error_code ec = rt.run([]() -> task<std::error_code> {
    Event e;
    int woke = 0;
    TaskScope scope;
    std::error_code got;
    scope.spawn([](Event& e, int& woke, std::error_code& got) -> task<void> {
      got = co_await wait_on(e, woke);
    }(e, woke, got));
    co_await yield{};
    scope.request_stop();
    co_await scope.join();
    EXPECT_FALSE(e.is_set());
    co_return got;
  }());
  EXPECT_EQ(ec, std::errc::operation_canceled);
}

TEST(Event, StopFromAnotherReactorReachesTheWaiter) {
  Runtime rt({.reactors = 2});
  std::error_code ec = rt.run([]() -> task<std::error_code> {
    Event e;
    std::stop_source stop;
    auto stop_from_reactor_1 = [](std::stop_source& stop) -> task<void> {
      co_await submit_to(1, [](std::stop_source& stop) -> task<void> {
        co_await sleep_for(5ms);
        stop.request_stop();  // on reactor 1: the waiter's reactor gets it as a message
      }(stop));
    };
    auto wait = [](Event& e) -> task<std::error_code> { co_return co_await e.wait(); };
    auto [stopped, got] = co_await when_all(stop_from_reactor_1(stop), with_stop_token(stop.get_token(), wait(e)));
    co_return got;
  }());
  EXPECT_EQ(ec, std::errc::operation_canceled);
}

TEST(Event, AWaitEndsWithETimedOutAtItsDeadline) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Event e;
    auto t0 = Clock::now();
    EXPECT_EQ(co_await e.wait(Clock::now() + 5ms), std::errc::timed_out);
    EXPECT_GE(Clock::now() - t0, 5ms);
    EXPECT_EQ(co_await e.wait(Clock::now() - 1s), std::errc::timed_out);  // passed already: at once
    e.set();
    EXPECT_FALSE(co_await e.wait(Clock::now() - 1s));  // set: the deadline does not matter
  }());
}

TEST(Event, WaiterDestroyedWhileParkedOrWokenLeavesNoTrace) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Event e;
    int woke = 0;
    {
      TaskScope scope;
      scope.spawn(wait_on(e, woke));
      co_await yield{};
    }  // destroyed parked
    {
      TaskScope scope;
      scope.spawn(wait_on(e, woke));
      co_await yield{};
      e.set();
    }  // destroyed woken, before it resumed
    co_await yield{};
    co_await yield{};
    EXPECT_EQ(woke, 0);
  }());
}

task<void> worker(Semaphore& sem, int& active, int& peak, int& done, int id) {
  auto ec = co_await sem.acquire();
  if (ec) co_return;
  ++active;
  peak = std::max(peak, active);
  for (int i = 0; i < id % 4; ++i) co_await yield{};
  if (id % 5 == 0) co_await sleep_for(1ms);
  --active;
  ++done;
  sem.release();
}

TEST(Semaphore, BoundIsNeverExceeded) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Semaphore sem(3);
    int active = 0, peak = 0, done = 0;
    TaskScope scope;
    for (int i = 0; i < 60; ++i) scope.spawn(worker(sem, active, peak, done, i));
    co_await scope.join();
    EXPECT_EQ(done, 60);
    EXPECT_EQ(peak, 3);
    EXPECT_EQ(sem.available(), 3u);
  }());
}

TEST(Semaphore, ReleaseHandsThePermitToTheFirstWaiter) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Semaphore sem(0);
    std::vector<int> order;
    TaskScope scope;
    for (int id = 0; id < 3; ++id) {
      scope.spawn([](Semaphore& sem, std::vector<int>& order, int id) -> task<void> {
        if (!co_await sem.acquire()) order.push_back(id);
      }(sem, order, id));
    }
    sem.release();
    EXPECT_FALSE(sem.try_acquire());  // handed to waiter 0: no barging
    sem.release(2);
    co_await scope.join();
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(sem.available(), 0u);
  }());
}

TEST(Semaphore, StoppedOrDestroyedWaitersKeepNoPermit) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Semaphore sem(0);
    int active = 0, peak = 0, done = 0;
    auto r = co_await with_timeout(5ms, worker(sem, active, peak, done, 1));
    EXPECT_FALSE(r);
    {
      TaskScope scope;
      scope.spawn(worker(sem, active, peak, done, 1));
      sem.release();  // handed to the parked worker...
      EXPECT_EQ(sem.available(), 0u);
    }  // ...destroyed before it resumed: the permit comes back
    EXPECT_EQ(sem.available(), 1u);
    EXPECT_EQ(done, 0);
  }());
}

TEST(Semaphore, AnAcquireThatTimesOutTakesNoPermit) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Semaphore sem(1);
    EXPECT_TRUE(sem.try_acquire());
    EXPECT_EQ(co_await sem.acquire(Clock::now() + 2ms), std::errc::timed_out);
    sem.release();
    EXPECT_EQ(sem.available(), 1u);
    EXPECT_FALSE(co_await sem.acquire(Clock::now() + 2ms));
    EXPECT_EQ(sem.available(), 0u);
  }());
}

TEST(Mutex, ExcludesAcrossSuspensions) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Mutex m;
    int inside = 0, most = 0, counter = 0;
    TaskScope scope;
    for (int t = 0; t < 8; ++t) {
      scope.spawn([](Mutex& m, int& inside, int& most, int& counter) -> task<void> {
        for (int i = 0; i < 20; ++i) {
          if (co_await m.lock()) co_return;
          std::lock_guard<Mutex> held(m, std::adopt_lock);
          most = std::max(most, ++inside);
          int seen = counter;
          co_await yield{};
          counter = seen + 1;
          --inside;
        }
      }(m, inside, most, counter));
    }
    co_await scope.join();
    EXPECT_EQ(counter, 160);
    EXPECT_EQ(most, 1);
    EXPECT_FALSE(m.locked());
  }());
}

}  // namespace
}  // namespace corio
