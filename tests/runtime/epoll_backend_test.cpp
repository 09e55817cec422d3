// The epoll backend's own promises (runtime/epoll_backend.cpp): a socket is registered once and a wait
// costs no system call, yet a number closed (through the backend, or behind its back for non-sockets)
// and reused always wakes its new waiters; events nobody waits for, hang-ups included, never spin the
// loop; several waiters share one descriptor; deadlines fire in order and cancelled ones never fire.
#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <vector>

#include "corio/runtime/operation.hpp"
#include "corio/runtime/reactor.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"
#include "tests/runtime/pipe_ops.hpp"

namespace corio {
namespace {

using namespace std::chrono_literals;

constexpr auto kEpoll = BackendOptions::Kind::epoll;

struct WriteImpl : Operation {
  WriteImpl(int fd, const char* data, unsigned len) : fd(fd), data(data), len(len) {}
  void prepare(io_uring_sqe& sqe) noexcept override { io_uring_prep_write(&sqe, fd, data, len, 0); }
  int perform() noexcept override {
    ssize_t n = ::send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    return n >= 0 ? static_cast<int>(n) : -errno;
  }
  Readiness readiness() const noexcept override { return {fd, EPOLLOUT}; }
  int fd;
  const char* data;
  unsigned len;
};

struct SocketPair {
  std::array<int, 2> fds{-1, -1};
  SocketPair() {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds.data()) != 0) {
      throw std::runtime_error("socketpair");
    }
  }
  ~SocketPair() {
    for (int fd : fds) if (fd >= 0) ::close(fd);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
  // Closes one end through the backend (as TcpStream::close does).
  void close_through_backend(int i) {
    Reactor::current()->backend().close(fds[i], true);
    fds[i] = -1;
  }
};

Backend& backend() { return Reactor::current()->backend(); }

// How many times the loop waited in the kernel while this task slept for `d`: a handful when idle, thousands
// when something the kernel keeps reporting spins it.
task<std::uint64_t> waits_while_sleeping(Clock::duration d) {
  const std::uint64_t before = backend().stats().waits;
  co_await sleep_for(d);
  co_return backend().stats().waits - before;
}

constexpr std::uint64_t kIdleWaits = 30;  // 100 ms of sleep: a couple of waits, some slack for the timers

// Writes `bytes` to `fd` after `d` (a free function: a coroutine lambda's captures die with the lambda).
task<void> write_after(Clock::duration d, int fd, std::string bytes) {
  co_await sleep_for(d);
  (void)::write(fd, bytes.data(), bytes.size());
}

// Reads once into `buf`, storing the result in `*res`.
task<void> read_into(int fd, char* buf, unsigned len, int* res) { *res = co_await testing::read(fd, buf, len).timeout(2s); }

std::string read_now(int fd) {
  char buf[64];
  ssize_t n = ::read(fd, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// A descriptor number closed and reused: whether it was, the waits while a reader of the new file sleeps,
// and what that reader got.
struct Reuse {
  bool reused = false;
  std::uint64_t idle = 0;
  std::string fresh;
};

// The old file (still open through `dup_fd`) gets bytes nobody must take; a reader of the fresh file at
// the reused number sleeps without the loop spinning, then is woken by the fresh file's own bytes.
task<void> read_the_fresh_file(int dup_fd, int old_writer, int fresh_reader, int fresh_writer, Reuse& out) {
  char buf[16];
  (void)::write(old_writer, "stale", 5);
  int n = -1;
  spawn(read_into(fresh_reader, buf, sizeof buf, &n));
  out.idle = co_await waits_while_sleeping(100ms);
  (void)::write(fresh_writer, "fresh", 5);
  while (n < 0 && n != -ETIMEDOUT) co_await sleep_for(1ms);
  if (n > 0) out.fresh.assign(buf, static_cast<std::size_t>(n));
  EXPECT_EQ(read_now(dup_fd), "stale");  // nobody took the old file's bytes
  ::close(dup_fd);
}

TEST(EpollBackend, BytesNobodyWaitsForDoNotSpinTheLoop) {
  Runtime rt({.reactors = 1, .backend = {.kind = kEpoll}});
  SocketPair s;
  auto [idle, later] = rt.run([&]() -> task<std::pair<std::uint64_t, std::string>> {
    char buf[16];
    spawn(write_after(5ms, s.fds[1], "a"));
    if (co_await testing::read(s.fds[0], buf, sizeof buf).timeout(2s) != 1) co_return std::pair{std::uint64_t{0}, std::string("first read failed")};
    (void)::write(s.fds[1], "later", 5);  // readable, and nobody waits: the interest must shrink
    const std::uint64_t idle = co_await waits_while_sleeping(100ms);
    const int n = co_await testing::read(s.fds[0], buf, sizeof buf).timeout(2s);
    co_return std::pair{idle, n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string()};
  }());
  EXPECT_LT(idle, kIdleWaits);
  EXPECT_EQ(later, "later");
}

TEST(EpollBackend, AHangUpNobodyWaitsForDoesNotSpinTheLoop) {
  Runtime rt({.reactors = 1, .backend = {.kind = kEpoll}});
  SocketPair s;
  auto [idle, eof] = rt.run([&]() -> task<std::pair<std::uint64_t, int>> {
    char buf[16];
    spawn(write_after(5ms, s.fds[1], "a"));
    if (co_await testing::read(s.fds[0], buf, sizeof buf).timeout(2s) != 1) co_return std::pair{std::uint64_t{0}, -1};
    ::close(s.fds[1]);  // EPOLLHUP on fds[0], which no interest masks
    s.fds[1] = -1;
    const std::uint64_t idle = co_await waits_while_sleeping(100ms);
    co_return std::pair{idle, co_await testing::read(s.fds[0], buf, sizeof buf).timeout(2s)};
  }());
  EXPECT_LT(idle, kIdleWaits);
  EXPECT_EQ(eof, 0);
}

// A socket closed through the backend while a dup keeps its file open: its registration must go with it,
// or the old file's bytes would keep waking (level-triggered: forever) the waiters of the number's new
// socket, and the new socket itself would never be registered.
TEST(EpollBackend, ASocketClosedThroughTheBackendLeavesNoRegistrationBehindADup) {
  Runtime rt({.reactors = 1, .backend = {.kind = kEpoll}});
  Reuse seen = rt.run([&]() -> task<Reuse> {
    Reuse out;
    auto old = std::make_unique<SocketPair>();
    const int old_fd = old->fds[0];
    const int dup_fd = ::dup(old_fd);
    char buf[16];
    spawn(write_after(5ms, old->fds[1], "a"));
    (void)co_await testing::read(old_fd, buf, sizeof buf).timeout(2s);  // registered now
    old->close_through_backend(0);
    SocketPair fresh;  // takes the lowest free numbers: the old one
    out.reused = fresh.fds[0] == old_fd || fresh.fds[1] == old_fd;
    const int reused = fresh.fds[0] == old_fd ? 0 : 1;
    co_await read_the_fresh_file(dup_fd, old->fds[1], fresh.fds[reused], fresh.fds[1 - reused], out);
    co_return out;
  }());
  EXPECT_TRUE(seen.reused) << "the test needs the number to be reused";
  EXPECT_LT(seen.idle, kIdleWaits);
  EXPECT_EQ(seen.fresh, "fresh");
}

// Pipes are closed by their owners, not through the backend: a number closed and reused behind its back
// still wakes the new pipe's reader, and a dup's leftover registration fires at most once.
TEST(EpollBackend, APipeClosedBehindTheBackendsBackAndReusedStillWakesItsReader) {
  Runtime rt({.reactors = 1, .backend = {.kind = kEpoll}});
  Reuse seen = rt.run([&]() -> task<Reuse> {
    Reuse out;
    char buf[16];
    auto old = std::make_unique<testing::Pipe>();
    const int old_fd = old->reader();
    const int dup_fd = ::dup(old_fd);
    spawn(write_after(5ms, old->writer(), "a"));
    (void)co_await testing::read(old_fd, buf, sizeof buf).timeout(2s);
    ::close(old->fds[0]);  // behind the backend's back; the file stays open through dup_fd
    old->fds[0] = -1;
    testing::Pipe fresh;
    out.reused = fresh.reader() == old_fd;
    co_await read_the_fresh_file(dup_fd, old->writer(), fresh.reader(), fresh.writer(), out);
    co_return out;
  }());
  EXPECT_TRUE(seen.reused) << "the test needs the number to be reused";
  EXPECT_LT(seen.idle, kIdleWaits);
  EXPECT_EQ(seen.fresh, "fresh");
}

TEST(EpollBackend, AReaderAWriterAndASecondReaderShareOneSocket) {
  Runtime rt({.reactors = 1, .backend = {.kind = kEpoll}});
  SocketPair s;
  const int small = 4096;
  ::setsockopt(s.fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  std::string fill(1 << 20, 'f');
  ssize_t filled = 0;
  for (ssize_t n; (n = ::send(s.fds[0], fill.data(), fill.size(), MSG_DONTWAIT)) > 0;) filled += n;
  ASSERT_GT(filled, 0);
  struct Seen {
    int first = -1, second = -1, write = -1;
    bool write_waited_for_room = false;
  };
  Seen seen = rt.run([&]() -> task<Seen> {
    Seen out;
    char a[1], b[1];
    auto writer = [&]() -> task<void> { out.write = co_await Op<WriteImpl>(s.fds[0], "w", 1).timeout(2s); };
    spawn(read_into(s.fds[0], a, 1, &out.first));
    spawn(read_into(s.fds[0], b, 1, &out.second));
    spawn(writer());
    co_await sleep_for(10ms);  // all three wait on fds[0]
    (void)::write(s.fds[1], "1", 1);
    co_await sleep_for(10ms);
    out.write_waited_for_room = out.write == -1;
    (void)::write(s.fds[1], "2", 1);
    std::string sink(1 << 20, 0);
    while (out.write == -1) {  // drain: room for the writer
      (void)::read(s.fds[1], sink.data(), sink.size());
      co_await sleep_for(1ms);
    }
    while (out.first == -1 || out.second == -1) co_await sleep_for(1ms);
    co_return out;
  }());
  EXPECT_EQ(seen.first, 1);
  EXPECT_EQ(seen.second, 1);
  EXPECT_TRUE(seen.write_waited_for_room);
  EXPECT_EQ(seen.write, 1);
}

TEST(EpollBackend, DeadlinesFireInOrderAndCancelledOnesNever) {
  Runtime rt({.reactors = 1, .backend = {.kind = kEpoll}});
  testing::Pipe p;
  constexpr int kReads = 64;
  std::vector<int> order(kReads);
  for (int i = 0; i < kReads; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(18));
  std::vector<int> res(kReads, 1);
  std::vector<Clock::duration> late(kReads);
  std::vector<int> fired;
  rt.run([&]() -> task<void> {
    std::stop_source stop;
    int left = kReads;
    const auto t0 = Clock::now();
    auto reader = [&](int i) -> task<void> {  // lives in this frame; each reader copies i
      char buf[1];
      const auto deadline = t0 + 20ms + i * 1ms;
      auto op = testing::read(p.reader(), buf, 1);
      if (i % 2 == 1) op.stop_token(stop.get_token());
      res[i] = co_await op.deadline(deadline);
      late[i] = Clock::now() - deadline;
      if (res[i] == -ETIMEDOUT) fired.push_back(i);
      --left;
    };
    for (int i : order) spawn(reader(i));
    co_await sleep_for(5ms);
    stop.request_stop();  // the odd ones end now, and their deadlines must never fire
    while (left > 0) co_await sleep_for(1ms);
    EXPECT_EQ(backend().in_flight(), 0u);
  }());
  for (int i = 0; i < kReads; ++i) {
    if (i % 2 == 1) {
      EXPECT_EQ(res[i], -ECANCELED) << i;
    } else {
      EXPECT_EQ(res[i], -ETIMEDOUT) << i;
      EXPECT_GE(late[i], 0ms) << i;
    }
  }
  EXPECT_TRUE(std::is_sorted(fired.begin(), fired.end()));
  EXPECT_EQ(fired.size(), kReads / 2u);
}

}  // namespace
}  // namespace corio
