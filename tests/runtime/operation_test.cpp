// Operations on the real io_uring: NOP round trips, batching past a full SQ, results routed to the right
// awaiter, deadlines, and the setup-flag negotiation.
#include "corio/runtime/operation.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "examples/flags.hpp"
#include "corio/runtime/nop.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"
#include "tests/runtime/pipe_ops.hpp"

namespace corio {
namespace {

using namespace std::chrono_literals;

TEST(Operation, NopRoundTrip) {
  Runtime rt({.reactors = 1});
  int sum = rt.run([]() -> task<int> {
    int s = 0;
    for (int i = 0; i < 1000; ++i) s += (co_await nop()) == 0 ? 1 : 0;
    co_return s;
  }());
  EXPECT_EQ(sum, 1000);
}

TEST(Operation, ManyMoreOperationsThanSubmissionSlots) {
  // 64-entry ring, 5,000 operations queued in one loop turn: the SQ fills and is flushed, never an error.
  Runtime rt({.reactors = 1, .backend = {.ring_entries = 64}});
  int done = 0;
  rt.run([&]() -> task<void> {
    auto one = [&]() -> task<void> {
      if (co_await nop() == 0) ++done;
    };
    for (int i = 0; i < 5000; ++i) spawn(one());
    while (done < 5000) co_await sleep_for(1ms);
  }());
  EXPECT_EQ(done, 5000);
}

TEST(Operation, EachCompletionResumesItsOwnAwaiter) {
  Runtime rt({.reactors = 1});
  constexpr int kPipes = 50;
  std::vector<testing::Pipe> pipes(kPipes);
  std::vector<std::string> got(kPipes);
  rt.run([&]() -> task<void> {
    int finished = 0;
    auto reader = [&](int i) -> task<void> {
      char buf[32];
      int n = co_await testing::read(pipes[i].reader(), buf, sizeof buf);
      if (n > 0) got[i].assign(buf, static_cast<std::size_t>(n));
      ++finished;
    };
    for (int i = 0; i < kPipes; ++i) spawn(reader(i));
    co_await yield();  // all reads are in flight
    for (int i = kPipes - 1; i >= 0; --i) {
      std::string msg = "pipe " + std::to_string(i);
      EXPECT_EQ(::write(pipes[i].writer(), msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
    }
    while (finished < kPipes) co_await sleep_for(1ms);
  }());
  for (int i = 0; i < kPipes; ++i) EXPECT_EQ(got[i], "pipe " + std::to_string(i));
}

TEST(Operation, DeadlineGivesTimedOut) {
  Runtime rt({.reactors = 1});
  testing::Pipe p;
  auto [res, waited] = rt.run([&]() -> task<std::pair<int, Clock::duration>> {
    char buf[8];
    auto t0 = Clock::now();
    int r = co_await testing::read(p.reader(), buf, sizeof buf).timeout(30ms);
    co_return std::pair{r, Clock::now() - t0};
  }());
  EXPECT_EQ(res, -ETIMEDOUT);
  EXPECT_GE(waited, 29ms);
  EXPECT_LT(waited, 2s);
}

TEST(Operation, OperationFinishingBeforeDeadlineKeepsItsResult) {
  Runtime rt({.reactors = 1});
  testing::Pipe p;
  ASSERT_EQ(::write(p.writer(), "hi", 2), 2);
  int res = rt.run([&]() -> task<int> {
    char buf[8];
    int r = co_await testing::read(p.reader(), buf, sizeof buf).timeout(10s);
    co_await sleep_for(20ms);  // the cancelled link timeout's completion must be harmless
    co_return r;
  }());
  EXPECT_EQ(res, 2);
}

TEST(Operation, PastDeadlineStillRunsOnceAndTimesOut) {
  Runtime rt({.reactors = 1});
  testing::Pipe p;
  int res = rt.run([&]() -> task<int> {
    char buf[8];
    co_return co_await testing::read(p.reader(), buf, sizeof buf).deadline(Clock::now() - 1s);
  }());
  EXPECT_EQ(res, -ETIMEDOUT);
}

constexpr auto kUring = BackendOptions::Kind::uring;
constexpr auto kEpoll = BackendOptions::Kind::epoll;

// A pipe in blocking mode whose file description may be shared (stdin): reading it must neither block
// the reactor nor switch the description to non-blocking behind its other users' backs.
TEST(Operation, ReadLeavesABlockingPipeBlockingAndNeverBlocksTheReactor) {
  Runtime rt({.reactors = 1});
  testing::Pipe p;
  auto [early, late, ticks] = rt.run([&]() -> task<std::tuple<int, std::string, int>> {
    int t = 0;
    bool done = false, ticker_ended = false;
    auto ticker = [&]() -> task<void> {
      while (!done) {
        co_await sleep_for(1ms);
        ++t;
      }
      ticker_ended = true;
    };
    spawn(ticker());
    char buf[8];
    int r1 = co_await testing::read(p.reader(), buf, sizeof buf).timeout(30ms);  // nothing written yet
    const bool wrote = ::write(p.writer(), "data", 4) == 4;
    int r2 = -1;
    if (wrote) r2 = co_await testing::read(p.reader(), buf, sizeof buf).timeout(1s);
    done = true;
    while (!ticker_ended) co_await sleep_for(1ms);  // it reads this frame's variables
    co_return std::tuple{r1, std::string(buf, r2 > 0 ? static_cast<std::size_t>(r2) : 0), t};
  }());
  EXPECT_EQ(early, -ETIMEDOUT);
  EXPECT_EQ(late, "data");
  EXPECT_GT(ticks, 5);  // timers ran during the 30 ms wait
  EXPECT_EQ(::fcntl(p.reader(), F_GETFL) & O_NONBLOCK, 0);
}

// A regular file whose pages are not cached: epoll cannot wait for it, so the readiness path reads it.
TEST(Operation, ReadOfAnUncachedRegularFile) {
  char path[] = "/tmp/corio-read-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  std::string data(64 * 1024, 'f');
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ::fsync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // drop the pages: a RWF_NOWAIT read says EAGAIN
  ::lseek(fd, 0, SEEK_SET);
  Runtime rt({.reactors = 1});
  int n = rt.run([&]() -> task<int> {
    char buf[4096];
    co_return co_await testing::read(fd, buf, sizeof buf).timeout(2s);
  }());
  ::close(fd);
  EXPECT_EQ(n, 4096);
}

TEST(Backend, TakesTheBestSetupFlagsTheKernelAccepts) {
  Runtime rt({.reactors = 1, .backend = {.kind = kUring}});
  std::string chosen = rt.run([]() -> task<std::string> { co_return Reactor::current()->backend().describe(); }());
  std::printf("backend: %s\n", chosen.c_str());
  EXPECT_NE(chosen.find("io_uring"), std::string::npos);
  // This project targets kernels >= 6.1, where DEFER_TASKRUN exists; the probe must have found it.
  EXPECT_NE(chosen.find("DEFER_TASKRUN"), std::string::npos) << chosen;
}

TEST(Backend, EveryFeatureCanBeSwitchedOff) {
  BackendOptions options{.kind = kUring};
  for (const std::string& name : examples::split_list(kFeatureNames)) EXPECT_TRUE(switch_off(options, name)) << name;
  EXPECT_FALSE(switch_off(options, "warp-drive"));
  Runtime rt({.reactors = 2, .backend = options});
  std::string chosen = rt.run([]() -> task<std::string> { co_return Reactor::current()->backend().describe(); }());
  EXPECT_EQ(chosen,
            "io_uring: no setup flags; wake=eventfd; buffers: taken per read (provided buffers switched off); "
            "multishot recv off; recv bundles off; fixed buffers not registered (switched off); send_zc off; fixed files off (switched off); "
            "multishot accept off");
  int v = rt.run([]() -> task<int> {
    co_await nop();
    co_return co_await submit_to(1, [] { return 5; });
  }());
  EXPECT_EQ(v, 5);
}

TEST(Backend, ChosenByOptionOrEnvironment) {
  Runtime epoll({.reactors = 1, .backend = {.kind = kEpoll}});
  std::string chosen = epoll.run([]() -> task<std::string> { co_return Reactor::current()->backend().describe(); }());
  EXPECT_EQ(chosen.rfind("epoll", 0), 0u) << chosen;
  EXPECT_EQ(parse_backend_kind("uring"), kUring);
  EXPECT_EQ(parse_backend_kind("epoll"), kEpoll);
  EXPECT_FALSE(parse_backend_kind("kqueue").has_value());
}

TEST(Backend, FallsBackToEpollWithANoticeWhenIoUringSetupFails) {
  // A ring far larger than io_uring_setup accepts makes it fail for real (EINVAL), as a kernel without
  // io_uring or a seccomp policy would (ENOSYS, EPERM).
  std::string saved = std::getenv("CORIO_BACKEND") != nullptr ? std::getenv("CORIO_BACKEND") : "";
  ::unsetenv("CORIO_BACKEND");
  ::testing::internal::CaptureStderr();
  std::string chosen;
  {
    Runtime rt({.reactors = 1, .backend = {.ring_entries = 1u << 20}});
    chosen = rt.run([]() -> task<std::string> { co_return Reactor::current()->backend().describe(); }());
  }
  std::string notice = ::testing::internal::GetCapturedStderr();
  if (!saved.empty()) ::setenv("CORIO_BACKEND", saved.c_str(), 1);
  EXPECT_EQ(chosen.rfind("epoll", 0), 0u) << chosen;
  EXPECT_NE(notice.find("corio: warning: io_uring unavailable (io_uring_setup (1048576 entries): Invalid argument); using epoll"),
            std::string::npos)
      << notice;
}

TEST(Backend, UnknownBackendNameIsAClearError) {
  std::string saved = std::getenv("CORIO_BACKEND") != nullptr ? std::getenv("CORIO_BACKEND") : "";
  ::setenv("CORIO_BACKEND", "kqueue", 1);
  try {
    Runtime rt({.reactors = 1});
    ADD_FAILURE() << "CORIO_BACKEND=kqueue was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "CORIO_BACKEND=kqueue: expected uring or epoll");
  }
  if (saved.empty()) ::unsetenv("CORIO_BACKEND");
  else ::setenv("CORIO_BACKEND", saved.c_str(), 1);
}

}  // namespace
}  // namespace corio
