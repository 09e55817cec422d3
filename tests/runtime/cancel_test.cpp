// Cancellation and abandonment on the real ring: stop tokens (explicit, ambient, cross-thread), frames
// destroyed with operations in flight, and descriptors from operations that finish after their cancel.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>

#include "corio/runtime/nop.hpp"
#include "corio/runtime/runtime.hpp"
#include "tests/fd_count.hpp"
#include "corio/runtime/time.hpp"
#include "tests/runtime/pipe_ops.hpp"

namespace corio {
namespace {

using namespace std::chrono_literals;

// The bytes a plain read finds in the pipe: what no cancelled operation consumed.
std::string drain(int fd) {
  char buf[64];
  ssize_t n = ::read(fd, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

TEST(Cancel, ExplicitTokenCancelsInFlightRead) {
  Runtime rt({.reactors = 1});
  testing::Pipe p;
  int res = rt.run([&]() -> task<int> {
    std::stop_source source;
    auto stopper = [&]() -> task<void> {
      co_await sleep_for(10ms);
      source.request_stop();
    };
    spawn(stopper());
    char buf[8];
    co_return co_await testing::read(p.reader(), buf, sizeof buf).stop_token(source.get_token());
  }());
  EXPECT_EQ(res, -ECANCELED);
  ASSERT_EQ(::write(p.writer(), "z", 1), 1);
  EXPECT_EQ(drain(p.reader()), "z");  // the cancelled read is gone from the kernel
}

TEST(Cancel, AmbientTokenReachesOperationsInNestedTasks) {
  Runtime rt({.reactors = 1});
  testing::Pipe p;
  int res = rt.run([&]() -> task<int> {
    std::stop_source source;
    auto leaf = [&]() -> task<int> {
      char buf[8];
      co_return co_await testing::read(p.reader(), buf, sizeof buf);
    };
    auto middle = [&]() -> task<int> { co_return co_await leaf(); };
    auto stopper = [&]() -> task<void> {
      co_await sleep_for(5ms);
      source.request_stop();
    };
    spawn(stopper());
    co_return co_await with_stop_token(source.get_token(), middle());
  }());
  EXPECT_EQ(res, -ECANCELED);
}

TEST(Cancel, StopAlreadyRequestedSubmitsNothing) {
  Runtime rt({.reactors = 1});
  testing::Pipe p;
  auto [res, in_flight] = rt.run([&]() -> task<std::pair<int, std::size_t>> {
    std::stop_source source;
    source.request_stop();
    char buf[8];
    int r = co_await testing::read(p.reader(), buf, sizeof buf).stop_token(source.get_token());
    co_return std::pair{r, Reactor::current()->backend().in_flight()};
  }());
  EXPECT_EQ(res, -ECANCELED);
  EXPECT_EQ(in_flight, 0u);
}

TEST(Cancel, StopFromAnotherThreadCancelsOnTheOwningReactor) {
  Runtime rt({.reactors = 1});
  testing::Pipe p;
  std::stop_source source;
  std::thread stopper([&] {
    std::this_thread::sleep_for(20ms);
    source.request_stop();
  });
  auto [read_res, sleep_err] = rt.run([&]() -> task<std::pair<int, std::error_code>> {
    char buf[8];
    int r = co_await testing::read(p.reader(), buf, sizeof buf).stop_token(source.get_token());
    // A sleep under an already-stopped token from elsewhere returns at once too.
    std::error_code e = co_await with_stop_token(source.get_token(), [&]() -> task<std::error_code> {
      co_return co_await sleep_for(1h);
    }());
    co_return std::pair{r, e};
  }());
  stopper.join();
  EXPECT_EQ(read_res, -ECANCELED);
  EXPECT_EQ(sleep_err, std::errc::operation_canceled);
}

TEST(Cancel, RemoteStopRacingCompletionIsSafe) {
  // Each round a sleep of 50 us is stopped from another thread somewhere between 0 and 100 us after it
  // starts: either may win. Every awaiter is resumed exactly once and nothing touches a finished frame
  // (checked by the ASan and TSan builds).
  Runtime rt({.reactors = 1});
  constexpr int kRounds = 300;
  std::vector<std::unique_ptr<std::stop_source>> sources;
  for (int i = 0; i < kRounds; ++i) sources.push_back(std::make_unique<std::stop_source>());
  std::atomic<int> armed{-1};
  std::thread stopper([&] {
    for (int i = 0; i < kRounds; ++i) {
      while (armed.load() < i) std::this_thread::yield();
      auto until = Clock::now() + std::chrono::microseconds((i * 37) % 100);
      while (Clock::now() < until) {
      }
      sources[i]->request_stop();
    }
  });
  auto [resumed, cancelled] = rt.run([&]() -> task<std::pair<int, int>> {
    int r = 0, c = 0;
    for (int i = 0; i < kRounds; ++i) {
      armed.store(i);
      std::error_code e = co_await with_stop_token(sources[i]->get_token(), []() -> task<std::error_code> {
        co_return co_await sleep_for(50us);
      }());
      ++r;
      if (e) ++c;
    }
    co_return std::pair{r, c};
  }());
  stopper.join();
  EXPECT_EQ(resumed, kRounds);
  std::printf("cancelled %d of %d sleeps\n", cancelled, kRounds);
}

// The one case where abandoning waits: the kernel was lent memory that dies with the frame.
TEST(Cancel, DestroyingAFrameWithAReadInFlightWaitsForTheKernel) {
  Runtime rt({.reactors = 1});
  testing::Pipe p;
  struct Seen {
    std::size_t during, after;
    std::uint64_t waits;
    bool uring;
  };
  Seen seen = rt.run([&]() -> task<Seen> {
    auto reader = [&]() -> task<void> {
      char buf[8];  // in the frame: the kernel must be done with it before the frame is freed
      co_await testing::read(p.reader(), buf, sizeof buf);
    };
    auto h = reader().release();
    h.resume();  // runs to the read and suspends there
    co_await nop();  // the read is now in the kernel
    const Backend& b = Reactor::current()->backend();
    std::size_t d = b.in_flight();
    const std::uint64_t waits_before = b.stats().abandon_waits;
    h.destroy();
    co_await nop();  // a round trip: its cancelled completion is delivered (dropped) first, in order
    co_return Seen{d, b.in_flight(), b.stats().abandon_waits - waits_before, b.describe().starts_with("io_uring")};
  }());
  EXPECT_EQ(seen.during, 1u);
  EXPECT_EQ(seen.after, 0u);
  // io_uring held the buffer: one wait. The epoll backend never lends memory to the kernel between tries.
  EXPECT_EQ(seen.waits, seen.uring ? 1u : 0u);
  ASSERT_EQ(::write(p.writer(), "k", 1), 1);
  EXPECT_EQ(drain(p.reader()), "k");
}

TEST(Cancel, ShutdownDestroysSuspendedTasksAndWaitsForTheirOperations) {
  testing::Pipe p;
  {
    Runtime rt({.reactors = 1});
    rt.run([&]() -> task<void> {
      auto reader = [&]() -> task<void> {
        char buf[8];
        co_await testing::read(p.reader(), buf, sizeof buf);
      };
      for (int i = 0; i < 10; ++i) spawn(reader());
      co_await sleep_for(5ms);
    }());
  }
  ASSERT_EQ(::write(p.writer(), "s", 1), 1);
  EXPECT_EQ(drain(p.reader()), "s");
}

// A loopback listener with one client already connected and waiting in the backlog.
struct PendingConnection {
  int listener = -1;
  int client = -1;
  PendingConnection() {
    listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, 8) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("listen on 127.0.0.1");
    }
    client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("connect to 127.0.0.1");
    }
    timeval tv{2, 0};
    ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~PendingConnection() {
    ::close(client);
    ::close(listener);
  }
  // 0: the server side was closed (EOF); -1: still open after 2 s.
  ssize_t client_reads() const {
    char c;
    return ::recv(client, &c, 1, 0);
  }
};

using testing::open_fds;

// The io_uring trap: the kernel may finish an accept that was already asked to stop. (On epoll the cancel
// always wins: nothing was accepted, and the connection stays in the backlog.)
TEST(Cancel, AcceptThatCompletesAfterItsCancelClosesTheDescriptor) {
  Runtime rt({.reactors = 1, .backend = {.kind = BackendOptions::Kind::uring}});
  PendingConnection pc;
  std::size_t fds_before = open_fds();
  auto [first, second] = rt.run([&]() -> task<std::pair<int, int>> {
    std::stop_source source;
    int r1 = 1;
    // Both run in the same loop turn: the accept is queued first, then its cancel. The kernel runs the
    // accept first and it succeeds at once (a connection is waiting), so the cancel finds nothing.
    auto acceptor = [&]() -> task<void> { r1 = co_await testing::accept(pc.listener).stop_token(source.get_token()); };
    auto stopper = [&]() -> task<void> {
      source.request_stop();
      co_return;
    };
    spawn(acceptor());
    spawn(stopper());
    while (r1 == 1) co_await sleep_for(1ms);
    int r2 = co_await testing::accept(pc.listener).timeout(50ms);  // nothing left in the backlog
    co_return std::pair{r1, r2};
  }());
  EXPECT_EQ(first, -ECANCELED);
  EXPECT_EQ(second, -ETIMEDOUT);
  EXPECT_EQ(pc.client_reads(), 0);  // the accepted socket was closed, not leaked
  EXPECT_EQ(open_fds(), fds_before);
}

TEST(Cancel, AbandonedAcceptClosesTheDescriptorItReturns) {
  Runtime rt({.reactors = 1, .backend = {.kind = BackendOptions::Kind::uring}});
  PendingConnection pc;
  std::size_t fds_before = open_fds();
  rt.run([&]() -> task<void> {
    auto acceptor = [&]() -> task<void> { co_await testing::accept(pc.listener); };
    auto h = acceptor().release();
    h.resume();   // the accept is queued, not yet submitted
    h.destroy();  // abandon: submitted with its cancel; it completes with a descriptor nobody will own
    co_return;
  }());
  EXPECT_EQ(pc.client_reads(), 0);
  EXPECT_EQ(open_fds(), fds_before);
}

}  // namespace
}  // namespace corio
