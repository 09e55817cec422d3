// Stops that cross reactors: with_timeout and explicit tokens reach a task running elsewhere through
// submit_to, and release the awaiter of run_blocking at once.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"
#include "tests/runtime/pipe_ops.hpp"

namespace corio {
namespace {

using namespace std::chrono_literals;

long long ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

// A named coroutine: it runs on reactor 1 and reports how its sleep ended.
task<int> sleep_on_other_reactor(std::atomic<int>* woke_with, std::atomic<unsigned>* ran_on) {
  ran_on->store(Reactor::current()->id());
  std::error_code e = co_await sleep_for(2s);
  woke_with->store(e ? e.value() : 0);
  co_return 7;
}

TEST(CrossReactorCancel, WithTimeoutAcrossSubmitToReturnsNearItsDeadline) {
  Runtime rt({.reactors = 2});
  std::atomic<int> woke_with{-1};
  std::atomic<unsigned> ran_on{99};
  auto [timed_out, took] = rt.run([&]() -> task<std::pair<bool, long long>> {
    auto t0 = Clock::now();
    auto call = [&]() -> task<int> { co_return co_await submit_to(1, sleep_on_other_reactor(&woke_with, &ran_on)); };
    std::optional<int> r = co_await with_timeout(50ms, call());
    co_return std::pair{!r.has_value(), ms_since(t0)};
  }());
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(ran_on.load(), 1u);
  EXPECT_EQ(woke_with.load(), ECANCELED);  // the stop reached the sleep on reactor 1
  EXPECT_GE(took, 50);
  EXPECT_LT(took, 50 + 300) << "a 2 s sleep on reactor 1 held the caller";  // a few ms here; slack for sanitizers
}

task<int> read_pipe_on_other_reactor(int fd) {
  char buf[8];
  co_return co_await testing::read(fd, buf, sizeof buf);
}

TEST(CrossReactorCancel, TokenStoppedFromAnotherThreadReachesAnOperationOnTheOtherReactor) {
  Runtime rt({.reactors = 2});
  testing::Pipe p;
  std::stop_source source;
  std::thread stopper([&] {
    std::this_thread::sleep_for(20ms);
    source.request_stop();  // neither reactor's thread
  });
  int res = rt.run([&]() -> task<int> {
    auto call = [&]() -> task<int> { co_return co_await submit_to(1, read_pipe_on_other_reactor(p.reader())); };
    co_return co_await with_stop_token(source.get_token(), call());
  }());
  stopper.join();
  EXPECT_EQ(res, -ECANCELED);
  ASSERT_EQ(::write(p.writer(), "z", 1), 1);
  char c = 0;
  EXPECT_EQ(::read(p.reader(), &c, 1), 1);  // the cancelled read consumed nothing
}

TEST(CrossReactorCancel, AlreadyStoppedCallerStopsTheRemoteTaskAtOnce) {
  Runtime rt({.reactors = 2});
  std::atomic<int> woke_with{-1};
  std::atomic<unsigned> ran_on{99};
  auto [value, took] = rt.run([&]() -> task<std::pair<int, long long>> {
    std::stop_source source;
    source.request_stop();
    auto t0 = Clock::now();
    auto call = [&]() -> task<int> { co_return co_await submit_to(1, sleep_on_other_reactor(&woke_with, &ran_on)); };
    int v = co_await with_stop_token(source.get_token(), call());
    co_return std::pair{v, ms_since(t0)};
  }());
  EXPECT_EQ(value, 7);  // the remote task ran, saw the stop, and its result still came back
  EXPECT_EQ(woke_with.load(), ECANCELED);
  EXPECT_LT(took, 1000);
}

TEST(CrossReactorCancel, RunBlockingReleasesItsAwaiterAtOnceAndDropsTheLateResult) {
  std::atomic<bool> job_finished{false};
  {
    Runtime rt({.reactors = 1, .blocking_threads = 1});
    auto [empty, took] = rt.run([&]() -> task<std::pair<bool, long long>> {
      auto t0 = Clock::now();
      auto call = [&]() -> task<int> {
        std::optional<int> r = co_await run_blocking([&] {
          std::this_thread::sleep_for(400ms);
          job_finished.store(true);
          return 1;
        });
        co_return r ? *r : -1;
      };
      std::optional<int> r = co_await with_timeout(30ms, call());
      co_return std::pair{!r.has_value(), ms_since(t0)};
    }());
    EXPECT_TRUE(empty);
    EXPECT_LT(took, 30 + 300);
    EXPECT_FALSE(job_finished.load());  // released while the job still ran
    // The runtime lives on past the job: its result arrives for nobody and is dropped (ASan checks).
    std::this_thread::sleep_for(500ms);
    EXPECT_TRUE(job_finished.load());
  }
}

TEST(CrossReactorCancel, RunBlockingStoppedBeforeItStartsNeverRuns) {
  Runtime rt({.reactors = 1});
  std::atomic<bool> ran{false};
  bool result = rt.run([&]() -> task<bool> {
    std::stop_source source;
    source.request_stop();
    auto call = [&]() -> task<bool> { co_return co_await run_blocking([&] { ran.store(true); }); };
    co_return co_await with_stop_token(source.get_token(), call());
  }());
  EXPECT_FALSE(result);
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(ran.load());
}

}  // namespace
}  // namespace corio
