// task<T>: laziness, values, exceptions, symmetric transfer, frame lifetime, spawn.
#include "corio/runtime/task.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "corio/runtime/reactor.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"

namespace corio {
namespace {

RuntimeOptions one_reactor() { return {.reactors = 1}; }

task<int> forty_two() { co_return 42; }

TEST(Task, ReturnsValue) {
  Runtime rt(one_reactor());
  EXPECT_EQ(rt.run(forty_two()), 42);
}

TEST(Task, IsLazy) {
  Runtime rt(one_reactor());
  bool started = false;
  auto body = [&]() -> task<void> {
    started = true;
    co_return;
  };
  EXPECT_EQ(rt.run([&]() -> task<int> {
    task<void> t = body();
    int seen_before = started ? 1 : 0;
    co_await std::move(t);
    co_return seen_before;
  }()),
            0);
  EXPECT_TRUE(started);
}

TEST(Task, MoveOnlyResult) {
  Runtime rt(one_reactor());
  auto make = []() -> task<std::unique_ptr<std::string>> { co_return std::make_unique<std::string>("corio"); };
  auto outer = [&]() -> task<std::string> { co_return *(co_await make()); };
  EXPECT_EQ(rt.run(outer()), "corio");
}

task<void> throws_runtime_error() {
  throw std::runtime_error("boom");
  co_return;
}

TEST(Task, ExceptionPropagatesToAwaiter) {
  Runtime rt(one_reactor());
  auto caller = []() -> task<std::string> {
    try {
      co_await throws_runtime_error();
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "no exception";
  };
  EXPECT_EQ(rt.run(caller()), "boom");
  EXPECT_THROW(rt.run(throws_runtime_error()), std::runtime_error);
}

task<long> chain(long depth) {
  if (depth == 0) co_return 0;
  co_return 1 + co_await chain(depth - 1);
}

TEST(Task, MillionDeepChainDoesNotGrowTheStack) {
  Runtime rt(one_reactor());
  EXPECT_EQ(rt.run(chain(1'000'000)), 1'000'000);
}

struct CountsDestruction {
  int* count;
  explicit CountsDestruction(int* c) : count(c) {}
  CountsDestruction(CountsDestruction&& o) noexcept : count(std::exchange(o.count, nullptr)) {}
  ~CountsDestruction() {
    if (count != nullptr) ++*count;
  }
};

task<void> holds(CountsDestruction) { co_return; }

TEST(Task, DestroyingUnawaitedTaskFreesItsFrame) {
  int destroyed = 0;
  {
    task<void> t = holds(CountsDestruction(&destroyed));
    EXPECT_TRUE(t.valid());
    EXPECT_EQ(destroyed, 0);
  }
  EXPECT_EQ(destroyed, 1);
}

TEST(Task, MovedFromTaskOwnsNothing) {
  int destroyed = 0;
  task<void> a = holds(CountsDestruction(&destroyed));
  task<void> b = std::move(a);
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): the point of the test
  b = task<void>();
  EXPECT_EQ(destroyed, 1);
}

TEST(Spawn, DetachedTasksRunAndFreeThemselves) {
  Runtime rt(one_reactor());
  int done = 0;
  auto worker = [&](int n) -> task<void> {
    co_await sleep_for(std::chrono::milliseconds(n));
    ++done;
  };
  std::size_t left = rt.run([&]() -> task<std::size_t> {
    for (int i = 0; i < 10; ++i) spawn(worker(i));
    co_await sleep_for(std::chrono::milliseconds(50));
    co_return Reactor::current()->detached_count();
  }());
  EXPECT_EQ(done, 10);
  EXPECT_EQ(left, 1u);  // only the main task itself
}

TEST(Spawn, EscapedExceptionIsReportedWithReactorIdAndReactorGoesOn) {
  Runtime rt(one_reactor());
  testing::internal::CaptureStderr();
  int after = rt.run([]() -> task<int> {
    spawn(throws_runtime_error());
    co_await sleep_for(std::chrono::milliseconds(5));
    co_return 7;
  }());
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(after, 7);
  EXPECT_NE(err.find("reactor 0"), std::string::npos) << err;
  EXPECT_NE(err.find("boom"), std::string::npos) << err;
}

TEST(Spawn, SuspendedDetachedTasksAreDestroyedAtShutdown) {
  int destroyed = 0;
  {
    Runtime rt(one_reactor());
    rt.run([&]() -> task<void> {
      for (int i = 0; i < 3; ++i) {
        spawn([](CountsDestruction) -> task<void> { co_await sleep_for(std::chrono::hours(1)); }(
            CountsDestruction(&destroyed)));
      }
      co_await yield();
    }());
    EXPECT_EQ(destroyed, 0);
  }
  EXPECT_EQ(destroyed, 3);
}

}  // namespace
}  // namespace corio
