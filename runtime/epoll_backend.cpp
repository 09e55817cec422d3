// The epoll backend: readiness, then retry. An operation is first tried at the next poll(); if it would
// block it waits on its descriptor and is tried again when the descriptor is ready. Deadlines and
// cancellation are the backend's own; nothing is owned by the kernel between tries, so abandoning an
// operation only forgets it.
//
// Nothing is allocated per operation once the tables have grown: an operation that waits or has a deadline
// takes a slot (its links in its descriptor's list of waiters, and its deadline as a TimerEntry in the
// backend's TimerQueue), slots are reused, and descriptors are a vector indexed by number.
//
// Registration (epoll follows the open file description, not the number; the backend sees numbers):
// - A socket is registered once, level-triggered, when an operation first waits on it. Its interest only
//   grows when a waiter wants more (EPOLL_CTL_MOD), and shrinks when the kernel reports what nobody waits
//   for; a wait covered by the interest costs no system call. close() deregisters before closing, so a
//   reused number starts afresh. This relies on sockets being closed through close() (TcpStream,
//   TcpListener and the resolver do): one closed behind the backend's back could leave its number looking
//   registered. A socket closed by another reactor's backend is the same case: a connect's interest and
//   an empty one are never kept (so a stream moved after its connect leaves nothing), and a stream handed
//   over after other waits is released (TcpStream::release, forget_descriptor) rather than moved.
// - Any other descriptor (pipe, eventfd, signalfd: SignalSet and callers close these themselves) is armed
//   one-shot on every wait, so a number closed and reused behind the backend's back heals at its next wait
//   (MOD fails with ENOENT: ADD it), and a registration left behind by a dup fires at most once.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <system_error>
#include <utility>
#include <vector>

#include "corio/runtime/backend.hpp"
#include "corio/runtime/operation.hpp"
#include "corio/runtime/timer_queue.hpp"

namespace corio {

namespace {

constexpr std::uint64_t kWakeTag = ~std::uint64_t{0};
constexpr std::uint32_t kNil = ~std::uint32_t{0};

class EpollBackend;

// An operation in flight that waits or has a deadline: where it waits, and its deadline. Slots never move
// (the TimerQueue holds their addresses): they come in chunks, and are reused through a free list.
struct Slot final : TimerEntry {
  enum class Where : std::uint8_t { free, trying, waiting };
  EpollBackend* backend = nullptr;
  Operation* op = nullptr;
  std::uint32_t prev = kNil;  // the descriptor's list of waiters, in arrival order
  std::uint32_t next = kNil;  // (the free list too, while free)
  int fd = -1;                // where it waits
  std::uint32_t events = 0;   // what it waits for, EPOLLRDHUP added to EPOLLIN
  Where where = Where::free;
  bool once = false;          // Readiness::once

  Slot() = default;
  ~Slot() = default;
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;
  Slot(Slot&&) = delete;
  Slot& operator=(Slot&&) = delete;

 private:
  void fire() noexcept override;
};

// A descriptor number as the backend knows it: its waiters and what the kernel has been told.
struct Descriptor {
  std::uint32_t head = kNil;
  std::uint32_t tail = kNil;
  std::uint32_t interest = 0;  // what the kernel reports (0 for a one-shot registration that fired)
  bool registered = false;
  bool one_shot = false;       // not a socket: armed per wait (see the top of the file)
};

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

  EpollBackend(const EpollBackend&) = delete;
  EpollBackend& operator=(const EpollBackend&) = delete;
  EpollBackend(EpollBackend&&) = delete;
  EpollBackend& operator=(EpollBackend&&) = delete;

  std::string describe() const override { return "epoll: readiness and retry; wake=eventfd; buffers: taken per read"; }
  BufferPool& buffers() noexcept override { return buffers_; }
  FixedBuffers& fixed_buffers() noexcept override { return fixed_; }
  int register_file(int) noexcept override { return -1; }
  void unregister_file(int) noexcept override {}

  void submit(Operation& op) override {
    ++stats_.submitted;
    ++in_flight_;
    tries_.push_back(&op);
    if (op.has_deadline()) timers_.arm(slot(take_slot(op)), op.deadline());
    else op.set_submission(kNil);  // a slot only if it comes to wait
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
    if (fd >= 0 && static_cast<std::size_t>(fd) < fds_.size()) {
      Descriptor& d = fds_[static_cast<std::size_t>(fd)];
      while (d.head != kNil) finish(d.head, -ECANCELED);
      // Out of the epoll set first: a dup of `fd` would otherwise keep its registration alive, and its
      // events would reach whatever reuses the number.
      if (d.registered) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
      d = Descriptor{};
    }
    ::close(fd);
  }

  void forget_descriptor(int fd) noexcept override {
    if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
    Descriptor& d = fds_[static_cast<std::size_t>(fd)];
    while (d.head != kNil) finish(d.head, -ECANCELED);  // none, by contract
    if (d.registered) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    d = Descriptor{};
  }

  std::size_t in_flight() const noexcept override { return in_flight_; }

  void poll(std::optional<std::chrono::nanoseconds> timeout) override {
    // First tries of what was submitted since the last turn: most complete here, with no wait at all.
    trying_.swap(tries_);  // tries_ keeps trying_'s capacity: no allocation per turn
    for (Operation* op : trying_) attempt(*op);
    trying_.clear();
    if (!done_.empty() || !tries_.empty()) timeout = std::chrono::nanoseconds::zero();
    if (auto next = timers_.next_deadline()) {
      auto until = *next - Clock::now();
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
    if (!timers_.empty()) timers_.fire_due(Clock::now());
    dispatch();
  }

  void wake() noexcept override {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }

  bool wake_peer(Backend&) noexcept override { return false; }

  // A deadline passed (Slot::fire, from timers_.fire_due in poll()).
  void expired(Slot& s) noexcept {
    Operation* op = s.op;
    if (forget(*op)) done_.push_back({op, -ETIMEDOUT});
  }

 private:
  struct Done {
    Operation* op;
    int res;
  };

  static constexpr std::uint32_t kChunkBits = 6;
  static constexpr std::uint32_t kChunk = 1u << kChunkBits;

  Slot& slot(std::uint32_t i) const noexcept { return chunks_[i >> kChunkBits][i & (kChunk - 1)]; }

  // Gives `op` a slot; its submission key names it.
  std::uint32_t take_slot(Operation& op) {
    if (free_ == kNil) {  // a new chunk, on the free list in order
      const auto first = static_cast<std::uint32_t>(chunks_.size()) * kChunk;
      chunks_.push_back(std::make_unique<Slot[]>(kChunk));
      for (std::uint32_t k = kChunk; k-- > 0;) {
        Slot& s = slot(first + k);
        s.backend = this;
        s.next = free_;
        free_ = first + k;
      }
    }
    const std::uint32_t i = free_;
    Slot& s = slot(i);
    free_ = s.next;
    s.op = &op;
    s.prev = s.next = kNil;
    s.fd = -1;
    s.where = Slot::Where::trying;
    op.set_submission(i);
    return i;
  }

  void release_slot(std::uint32_t i) noexcept {
    Slot& s = slot(i);
    if (s.armed()) timers_.disarm(s);
    s.op = nullptr;
    s.where = Slot::Where::free;
    s.next = free_;
    free_ = i;
  }

  // The slot of `op`'s current submission, or kNil when it has none (no wait and no deadline, or done).
  std::uint32_t slot_of(const Operation& op) const noexcept {
    const std::uint64_t i = op.submission();
    if (i >= chunks_.size() * kChunk || slot(static_cast<std::uint32_t>(i)).op != &op) return kNil;
    return static_cast<std::uint32_t>(i);
  }

  Descriptor& descriptor(int fd) {
    const auto i = static_cast<std::size_t>(fd);
    if (i >= fds_.size()) fds_.resize(i + 1);  // grows geometrically; never shrinks
    return fds_[i];
  }

  void link(std::uint32_t i, Descriptor& d) noexcept {
    Slot& s = slot(i);
    s.where = Slot::Where::waiting;
    s.prev = d.tail;
    s.next = kNil;
    if (d.tail != kNil) slot(d.tail).next = i;
    else d.head = i;
    d.tail = i;
  }

  void unlink(std::uint32_t i) noexcept {
    Slot& s = slot(i);
    Descriptor& d = fds_[static_cast<std::size_t>(s.fd)];
    if (s.prev != kNil) slot(s.prev).next = s.next;
    else d.head = s.next;
    if (s.next != kNil) slot(s.next).prev = s.prev;
    else d.tail = s.prev;
    s.prev = s.next = kNil;
  }

  // What the descriptor's waiters need reported.
  std::uint32_t wanted(const Descriptor& d) const noexcept {
    std::uint32_t events = 0;
    for (std::uint32_t i = d.head; i != kNil; i = slot(i).next) events |= slot(i).events;
    return events;
  }

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
    std::uint32_t i = slot_of(op);
    if (i == kNil) i = take_slot(op);
    // EPOLLRDHUP only for readers: after the peer's FIN (or our SHUT_RD) it stays set, and a writer woken
    // by it would find EAGAIN and be woken again at once, over and over.
    Slot& s = slot(i);
    s.fd = r.fd;
    s.events = r.events & EPOLLIN ? r.events | EPOLLRDHUP : r.events;
    s.once = r.once;
    Descriptor& d = descriptor(r.fd);
    link(i, d);
    arm(r.fd, d, d.one_shot || !d.registered || (s.events & ~d.interest) != 0);
  }

  // Tells the kernel what the descriptor's waiters need, if `needed` (a one-shot registration on every
  // wait; a socket when its interest must grow). A descriptor epoll cannot wait for ends its waiters.
  void arm(int fd, Descriptor& d, bool needed) {
    if (!needed || d.head == kNil) return;
    if (!d.registered) d.one_shot = !is_socket(fd);
    const std::uint32_t events = wanted(d);
    epoll_event ev{};
    ev.events = d.one_shot ? events | EPOLLONESHOT : events;
    ev.data.u64 = static_cast<std::uint64_t>(fd);
    // A number closed and reused behind the backend's back has left the epoll set: MOD fails, ADD it. An
    // ADD that finds the file registered (the backend forgot it) modifies it instead.
    bool ok = false;
    if (d.registered) ok = ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0 || (errno == ENOENT && add(fd, ev));
    else ok = add(fd, ev);
    if (ok) {
      d.registered = true;
      d.interest = events;
      return;
    }
    const int err = -errno;  // not pollable (a regular file): report, never spin
    d.registered = false;
    d.interest = 0;
    while (d.head != kNil) finish(d.head, err);
  }

  bool add(int fd, epoll_event& ev) noexcept {
    return ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0 || (errno == EEXIST && ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0);
  }

  static bool is_socket(int fd) noexcept {
    struct stat st {};
    return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
  }

  void ready(int fd, std::uint32_t events) {
    if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
    Descriptor& d = fds_[static_cast<std::size_t>(fd)];
    if (!d.registered) return;
    if (d.one_shot) d.interest = 0;  // the kernel disarmed it
    const std::uint32_t waited_for = wanted(d);
    const bool all = events & (EPOLLERR | EPOLLHUP);
    const std::uint32_t seen = events & EPOLLRDHUP ? events | EPOLLIN : events;  // a read sees the end of stream
    std::uint32_t once_done = 0;  // what waits seen once (a connect) took: not kept
    for (std::uint32_t i = d.head; i != kNil;) {
      Slot& s = slot(i);
      const std::uint32_t next = s.next;
      if (all || (s.events & seen)) {
        int res = s.op->perform();
        if (res != -EAGAIN) {
          if (s.once) once_done |= s.events;
          finish(i, res);
        }
      }
      i = next;
    }
    if (d.one_shot) {
      arm(fd, d, true);  // re-armed while someone waits
      return;
    }
    // Level-triggered: what nobody waited for would be reported again on every turn, so the interest
    // shrinks to what the remaining waiters need; a hang-up or error, which no interest masks, takes the
    // descriptor out of the set until someone waits again. What a waiter took this time stays: the next
    // wait for it costs nothing. Not a connect's writability (Readiness::once): it would be reported
    // again at once, and a socket connected here, then moved to another reactor and closed there, would
    // leave it behind for the next file its number names here (a wait it seems to cover never armed).
    const std::uint32_t unwanted = events & ~(waited_for | EPOLLERR | EPOLLHUP);
    const std::uint32_t still = wanted(d);
    const std::uint32_t stale = once_done & ~still;
    if (unwanted == 0 && stale == 0 && !(all && d.head == kNil)) return;
    const std::uint32_t target = unwanted == 0 ? (d.interest & ~stale) | still : still;
    // Nothing left to wait for: out of the set (a hang-up would still be reported to an empty interest,
    // here, for a socket that may by then belong to another reactor).
    if (still == 0 && (all || target == 0)) {
      ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
      d.registered = false;
      d.interest = 0;
      return;
    }
    if (target == d.interest) return;
    epoll_event ev{};
    ev.events = target;
    ev.data.u64 = static_cast<std::uint64_t>(fd);
    if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0) {
      d.interest = target;
    } else {
      d.registered = false;  // gone behind the backend's back: the next wait adds it afresh
      d.interest = 0;
      arm(fd, d, true);
    }
  }

  // The operation in slot `i` ends with `res` at the next dispatch.
  void finish(std::uint32_t i, int res) {
    Slot& s = slot(i);
    Operation* op = s.op;
    if (s.where == Slot::Where::waiting) unlink(i);
    release_slot(i);
    done_.push_back({op, res});
  }

  // `op`, tried (it is in no list), ends with `res` at the next dispatch.
  void finish(Operation& op, int res) {
    if (const std::uint32_t i = slot_of(op); i != kNil) release_slot(i);
    done_.push_back({&op, res});
  }

  // Removes `op` from wherever it waits. False when it is not waiting (already done).
  bool forget(Operation& op) {
    const std::uint32_t i = slot_of(op);
    if (i != kNil && slot(i).where == Slot::Where::waiting) {
      unlink(i);
      release_slot(i);
      return true;
    }
    if (auto it = std::find(tries_.begin(), tries_.end(), &op); it != tries_.end()) {
      tries_.erase(it);
      if (i != kNil) release_slot(i);
      return true;
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
  std::vector<Operation*> trying_;  // tries_ as poll() takes it
  std::vector<Done> done_;
  std::vector<Done> dispatching_;   // done_ as dispatch() takes it
  std::vector<std::unique_ptr<Slot[]>> chunks_;  // the slots, kChunk at a time
  std::uint32_t free_ = kNil;                     // the first free slot
  std::vector<Descriptor> fds_;     // indexed by descriptor number
  TimerQueue timers_;               // the deadlines of the slots that have one
};

void Slot::fire() noexcept { backend->expired(*this); }

}  // namespace

std::unique_ptr<Backend> make_epoll_backend(const BackendOptions& options) {
  return std::make_unique<EpollBackend>(options);
}

}  // namespace corio
