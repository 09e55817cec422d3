// The epoll backend: readiness, then retry. An operation is first tried at the next poll(); if it would
// block it waits on its descriptor (EPOLLONESHOT, re-armed while someone waits) and is tried again when
// the descriptor is ready. Deadlines and cancellation are the backend's own; nothing is owned by the
// kernel between tries, so abandoning an operation only forgets it.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <set>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "corio/runtime/backend.hpp"
#include "corio/runtime/operation.hpp"

namespace corio {

namespace {

constexpr std::uint64_t kWakeTag = ~std::uint64_t{0};

class EpollBackend final : public Backend {
 public:
  explicit EpollBackend(const BackendOptions& options) : buffers_(options.buffers), fixed_(options.fixed) {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) {
      int err = errno;
      ::close(epfd_);
      throw std::system_error(err, std::generic_category(), "eventfd for reactor wake-ups");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeTag;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
      int err = errno;
      ::close(wake_fd_);
      ::close(epfd_);
      throw std::system_error(err, std::generic_category(), "epoll_ctl ADD of the reactor's wake-up eventfd");
    }
  }

  ~EpollBackend() override {
    ::close(wake_fd_);
    ::close(epfd_);
  }

  std::string describe() const override { return "epoll: readiness and retry; wake=eventfd; buffers: taken per read"; }
  BufferPool& buffers() noexcept override { return buffers_; }
  FixedBuffers& fixed_buffers() noexcept override { return fixed_; }
  int register_file(int) noexcept override { return -1; }
  void unregister_file(int) noexcept override {}

  void submit(Operation& op) override {
    ++stats_.submitted;
    ++in_flight_;
    tries_.push_back(&op);
    if (op.has_deadline()) deadlines_.emplace(op.deadline(), &op);
  }

  void cancel(Operation& op) override {
    ++stats_.cancels;
    if (forget(op)) done_.push_back({&op, -ECANCELED});
  }

  // The kernel holds nothing between tries: an abandoned operation is forgotten at once, and a result it
  // had already reached is settled here.
  void abandon(Operation& op, Leftovers left) noexcept override {
    ++stats_.orphans;
    if (left.pool_buffer >= 0) buffers_.give_back(static_cast<std::uint16_t>(left.pool_buffer));
    for (std::vector<Done>* list : {&done_, &dispatching_}) {  // dispatching_ is empty outside dispatch()
      for (Done& d : *list) {
        if (d.op != &op) continue;
        if (left.close_fd && d.res >= 0) ::close(d.res);
        d.op = nullptr;
        --in_flight_;
        return;
      }
    }
    if (forget(op)) --in_flight_;
  }

  void close(int fd, bool) noexcept override {
    // Every operation on `fd` ends now, before the number can be reused by another socket.
    for (std::size_t i = 0; i < tries_.size();) {
      Operation* op = tries_[i];
      if (op->readiness().fd != fd) {
        ++i;
        continue;
      }
      tries_.erase(tries_.begin() + static_cast<std::ptrdiff_t>(i));
      finish(*op, -ECANCELED);
    }
    if (auto it = waiting_.find(fd); it != waiting_.end()) {
      for (Operation* op : it->second.ops) finish(*op, -ECANCELED);
      waiting_.erase(it);
    }
    ::close(fd);  // leaves the epoll set with it (unless dup'd: its stray events then find no waiter)
  }

  std::size_t in_flight() const noexcept override { return in_flight_; }

  void poll(std::optional<std::chrono::nanoseconds> timeout) override {
    // First tries of what was submitted since the last turn: most complete here, with no wait at all.
    trying_.swap(tries_);  // tries_ keeps trying_'s capacity: no allocation per turn
    for (Operation* op : trying_) attempt(*op);
    trying_.clear();
    if (!done_.empty() || !tries_.empty()) timeout = std::chrono::nanoseconds::zero();
    if (!deadlines_.empty()) {
      auto until = deadlines_.begin()->first - Clock::now();
      auto d = std::max(std::chrono::nanoseconds::zero(), std::chrono::duration_cast<std::chrono::nanoseconds>(until));
      if (!timeout || d < *timeout) timeout = d;
    }
    int ms = -1;
    if (timeout) ms = static_cast<int>(std::min<long long>((timeout->count() + 999'999) / 1'000'000, 1 << 30));
    epoll_event events[128];
    ++stats_.waits;
    int n = ::epoll_wait(epfd_, events, 128, ms);
    if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "epoll_wait in reactor poll");
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kWakeTag) {
        std::uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof count);
      } else {
        ready(static_cast<int>(events[i].data.u64), events[i].events);
      }
    }
    expire(Clock::now());
    dispatch();
  }

  void wake() noexcept override {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }

  bool wake_peer(Backend&) noexcept override { return false; }

 private:
  struct Done {
    Operation* op;
    int res;
  };
  struct Waiters {
    std::vector<Operation*> ops;
    bool registered = false;
  };

  // Tries `op` now; completes it or parks it on its descriptor.
  void attempt(Operation& op) {
    int res = op.perform();
    if (res != -EAGAIN) {
      finish(op, res);
      return;
    }
    Readiness r = op.readiness();
    if (r.fd < 0) {
      finish(op, -EAGAIN);
      return;
    }
    Waiters& w = waiting_[r.fd];
    w.ops.push_back(&op);
    arm(r.fd, w);
  }

  // One-shot interest in what the descriptor's waiters need; re-armed after every event.
  void arm(int fd, Waiters& w) {
    // EPOLLRDHUP only for readers: after the peer's FIN (or our SHUT_RD) it stays set, and a writer woken
    // by it would find EAGAIN and be re-armed at once, over and over.
    std::uint32_t events = EPOLLONESHOT;
    for (Operation* op : w.ops) events |= op->readiness().events;
    if (events & EPOLLIN) events |= EPOLLRDHUP;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = static_cast<std::uint64_t>(fd);
    // A descriptor closed and reused since it was last seen has left the epoll set: MOD fails, ADD it.
    if (w.registered && ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0) return;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0 || (errno == EEXIST && ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0)) {
      w.registered = true;
      return;
    }
    int err = -errno;  // not pollable (a regular file): report, never spin
    std::vector<Operation*> ops;
    ops.swap(w.ops);
    for (Operation* op : ops) finish(*op, err);
  }

  void ready(int fd, std::uint32_t events) {
    auto it = waiting_.find(fd);
    if (it == waiting_.end()) return;
    readying_.swap(it->second.ops);
    const bool all = events & (EPOLLERR | EPOLLHUP);
    const std::uint32_t seen = events & EPOLLRDHUP ? events | EPOLLIN : events;  // a read sees the end of stream
    for (Operation* op : readying_) {
      if (!all && !(op->readiness().events & seen)) {
        it->second.ops.push_back(op);
        continue;
      }
      int res = op->perform();
      if (res == -EAGAIN) it->second.ops.push_back(op);
      else finish(*op, res);
    }
    readying_.clear();
    if (!it->second.ops.empty()) arm(fd, it->second);
  }

  void expire(Clock::time_point now) {
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      Operation* op = deadlines_.begin()->second;
      if (forget(*op)) done_.push_back({op, -ETIMEDOUT});
    }
  }

  void finish(Operation& op, int res) {
    deadlines_.erase(std::pair{op.deadline(), &op});
    done_.push_back({&op, res});
  }

  // Removes `op` from wherever it waits. False when it is not waiting (already done).
  bool forget(Operation& op) {
    deadlines_.erase(std::pair{op.deadline(), &op});
    if (auto it = std::find(tries_.begin(), tries_.end(), &op); it != tries_.end()) {
      tries_.erase(it);
      return true;
    }
    Readiness r = op.readiness();
    if (auto w = waiting_.find(r.fd); w != waiting_.end()) {
      auto& ops = w->second.ops;
      if (auto it = std::find(ops.begin(), ops.end(), &op); it != ops.end()) {
        ops.erase(it);
        return true;
      }
    }
    return false;
  }

  void dispatch() {
    // Completions may submit, cancel or abandon others (abandon() looks in dispatching_ too): take the batch.
    // dispatching_ and done_ trade buffers, so neither is allocated again per turn.
    dispatching_.swap(done_);
    for (Done& d : dispatching_) {
      Operation* op = std::exchange(d.op, nullptr);
      if (op == nullptr) continue;
      --in_flight_;
      ++stats_.completed;
      op->complete(d.res, 0);
    }
    dispatching_.clear();
  }

  BufferPool buffers_;
  FixedBuffers fixed_;
  int epfd_ = -1;
  int wake_fd_ = -1;
  std::size_t in_flight_ = 0;
  std::vector<Operation*> tries_;
  std::vector<Operation*> trying_;    // tries_ as poll() takes it
  std::vector<Operation*> readying_;  // one descriptor's waiters as ready() takes them
  std::vector<Done> done_;
  std::vector<Done> dispatching_;     // done_ as dispatch() takes it
  std::unordered_map<int, Waiters> waiting_;
  std::set<std::pair<Clock::time_point, Operation*>> deadlines_;
};

}  // namespace

std::unique_ptr<Backend> make_epoll_backend(const BackendOptions& options) {
  return std::make_unique<EpollBackend>(options);
}

}  // namespace corio
