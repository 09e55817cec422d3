// The io_uring backend: one ring per reactor thread, set up with the best flags the kernel accepts.
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <deque>
#include <vector>

#include "corio/runtime/backend.hpp"
#include "corio/runtime/log.hpp"
#include "corio/runtime/operation.hpp"
#include "corio/runtime/uring_flags.hpp"

namespace corio {

namespace {

// user_data: an operation's submission key (kSlotTag | generation << 32 | slot index), one of these, or
// the address of a peer backend whose MSG_RING wake-up failed (user-space addresses are below kSlotTag).
constexpr std::uint64_t kIgnored = 0;  // link timeouts, cancel requests, closes, file-table updates
constexpr std::uint64_t kWoken = 1;    // a peer's IORING_OP_MSG_RING
constexpr std::uint64_t kEventfd = 2;  // our read of the wake-up eventfd
constexpr std::uint64_t kSlotTag = std::uint64_t{1} << 63;
constexpr std::uint16_t kDatagramGroup = 1;  // the datagram ring's buffer group, beside an incremental group 0

struct SetupTrial {
  unsigned flags;
  const char* names;
};

// Whether this kernel posts a multishot receive's completions in the order it consumed buffer space:
// 6.12.0-6.12.28, 6.13 and 6.14 could post a deferred final completion late (fixed in 6.15, upstream
// 687b2bae0eff, and 6.12.29), which would give an incremental ring's slices the wrong offsets.
bool multishot_completions_in_order() noexcept {
  utsname u{};
  if (::uname(&u) != 0) return false;
  unsigned major = 0, minor = 0, patch = 0;
  if (std::sscanf(u.release, "%u.%u.%u", &major, &minor, &patch) < 2) return false;
  if (major != 6) return major > 6;
  return minor >= 15 || (minor == 12 && patch >= 29);
}

// Thrown by a ProvidedBufferRing asked to be incremental where the kernel has no IOU_PBUF_RING_INC.
struct IncrementalRefused {};

// A provided buffer ring (liburing 2.3 has no io_uring_setup_buf_ring: the ring memory is mapped here).
class ProvidedBufferRing final : public BufferPool {
 public:
  // `incremental`: registered with IOU_PBUF_RING_INC (6.12); IncrementalRefused where the kernel lacks it.
  ProvidedBufferRing(io_uring& ring, const BufferPoolOptions& options, std::uint16_t group, bool incremental)
      : BufferPool(options), ring_(&ring), group_(group) {
    const std::uint32_t entries = options_.limit;
    if (entries > 32768 || (entries & (entries - 1)) != 0) {
      throw std::invalid_argument("BufferPoolOptions.limit " + std::to_string(entries) +
                                  ": a buffer ring needs a power of two up to 32768");
    }
    bytes_ = std::size_t{entries} * sizeof(io_uring_buf);
    void* mem = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap for a buffer ring");
    br_ = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(mem);
    reg.ring_entries = entries;
    reg.bgid = group;
    reg.pad = incremental ? IOU_PBUF_RING_INC : 0;  // the flags field (liburing 2.3 calls it pad)
    if (int ret = io_uring_register_buf_ring(ring_, &reg, 0); ret < 0) {
      ::munmap(mem, bytes_);
      if (ret == -EINVAL && incremental) throw IncrementalRefused();  // a kernel without IOU_PBUF_RING_INC
      throw std::system_error(-ret, std::generic_category(), "io_uring_register_buf_ring");
    }
    io_uring_buf_ring_init(br_);
    mask_ = io_uring_buf_ring_mask(entries);
    position_.resize(entries);
    if (incremental) track_slices();
    add_slab(options_.limit);
  }
  ~ProvidedBufferRing() override {
    io_uring_unregister_buf_ring(ring_, group_);
    ::munmap(br_, bytes_);
  }
  bool kernel_selects() const noexcept override { return true; }
  std::uint16_t group() const noexcept override { return group_; }
  // The ring entry buffer `id` was last published at, and the buffer at an entry: a bundle that began
  // with `id` holds the buffers of the entries after it. (An entry is rewritten only once the whole ring
  // has been published again, which cannot happen while the bundle's buffers are out.)
  std::uint16_t entry_of(std::uint16_t id) const noexcept { return position_[id]; }
  std::uint16_t at_entry(unsigned entry) const noexcept { return br_->bufs[entry & static_cast<unsigned>(mask_)].bid; }

 private:
  void publish(std::uint16_t id) noexcept override {
    position_[id] = br_->tail;
    io_uring_buf_ring_add(br_, data(id), buffer_size(), id, mask_, 0);
    io_uring_buf_ring_advance(br_, 1);
  }
  std::vector<std::uint16_t> position_;  // by buffer id: its ring entry when last published (tail, mod 2^16)
  io_uring* ring_;
  io_uring_buf_ring* br_ = nullptr;
  std::size_t bytes_ = 0;
  int mask_ = 0;
  std::uint16_t group_;
};

// FixedBuffers registered with the ring. A refusal (RLIMIT_MEMLOCK, most often) is reported once per
// process with its fix, and the buffers stay usable as plain memory.
class RegisteredBuffers final : public FixedBuffers {
 public:
  RegisteredBuffers(io_uring& ring, const FixedBufferOptions& options)
      : FixedBuffers(options, "registered on first use"), ring_(&ring) {}
  ~RegisteredBuffers() override {
    if (registered_) io_uring_unregister_buffers(ring_);
  }

 private:
  void register_memory(std::span<char> memory) override {
    std::vector<iovec> iovs(options_.count);
    for (std::uint32_t i = 0; i < options_.count; ++i) iovs[i] = {memory.data() + std::size_t{i} * options_.size, options_.size};
    const std::string shape = std::to_string(options_.count) + " x " + std::to_string(options_.size) + " B";
    int ret = io_uring_register_buffers(ring_, iovs.data(), options_.count);
    if (ret == 0) {
      registered_ = true;
      status_ = "registered " + shape;
      return;
    }
    status_ = "not registered: io_uring_register_buffers (" + shape + "): " + std::strerror(-ret);
    if (ret == -ENOMEM) {
      rlimit lim{};
      ::getrlimit(RLIMIT_MEMLOCK, &lim);
      status_ += "; RLIMIT_MEMLOCK is " +
                 (lim.rlim_cur == RLIM_INFINITY ? std::string("unlimited") : std::to_string(lim.rlim_cur / 1024) + " KiB") +
                 ": raise it (ulimit -l, systemd LimitMEMLOCK=) or register fewer buffers (FixedBufferOptions)";
    }
    static std::once_flag reported;
    std::call_once(reported, [&] { log::write(log::Level::warning, "fixed buffers %s; using them unregistered", status_.c_str()); });
  }
  io_uring* ring_;
};

class UringBackend final : public Backend {
 public:
  explicit UringBackend(const BackendOptions& options) {
    if (options.incremental_buffers && options.incremental.buffer_size > 65536) {
      throw std::invalid_argument("BackendOptions.incremental.buffer_size " + std::to_string(options.incremental.buffer_size) +
                                  ": incremental buffers hold at most 64 KiB each");
    }
    setup(options);
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) {
      int err = errno;
      io_uring_queue_exit(&ring_);
      throw std::system_error(err, std::generic_category(), "eventfd for reactor wake-ups");
    }
    if (options.register_ring_fd && io_uring_register_ring_fd(&ring_) == 1) ring_fd_registered_ = true;
    if (options.napi_busy_poll.count() > 0) register_napi(options.napi_busy_poll);
    msg_ring_ = options.msg_ring && opcode_supported(IORING_OP_MSG_RING);
    setup_buffers(options);
    timespecs_.resize(*ring_.sq.kring_entries);
    arm_eventfd();
  }

  ~UringBackend() override {
    buffers_.reset();  // unregisters from the ring
    datagram_buffers_.reset();
    fixed_.reset();
    io_uring_queue_exit(&ring_);
    ::close(wake_fd_);
  }

  std::string describe() const override {
    std::string s = "io_uring: ";
    s += setup_names_;
    s += cq_note_;
    s += "; wake=";
    s += msg_ring_ ? "msg_ring" : "eventfd";
    if (ring_fd_registered_) s += "; registered ring fd";
    s += napi_note_;
    s += "; buffers: ";
    s += buffers_note_;
    s += features_.multishot_recv ? "; multishot recv" : "; multishot recv off";
    s += bundles_ ? "; recv bundles" : "; recv bundles off";
    s += "; fixed buffers ";
    s += fixed_->status();
    if (features_.send_zc) s += "; send_zc from " + std::to_string(features_.send_zc_threshold) + " B";
    else s += "; send_zc off";
    s += "; fixed files " + files_note_;
    s += features_.multishot_accept ? "; multishot accept" : "; multishot accept off";
    return s;
  }

  BufferPool& buffers() noexcept override { return *buffers_; }
  BufferPool& datagram_buffers() override {
    if (!buffers_->incremental()) return *buffers_;
    if (!datagram_buffers_) datagram_buffers_ = std::make_unique<ProvidedBufferRing>(ring_, buffer_options_, kDatagramGroup, false);
    return *datagram_buffers_;
  }
  FixedBuffers& fixed_buffers() noexcept override { return *fixed_; }

  int register_file(int fd) noexcept override {
    if (free_slots_.empty()) return -1;
    // Oldest free slot first: a slot is reused long after the close that freed it was submitted.
    const int slot = free_slots_.front();
    free_slots_.pop_front();
    slot_fds_[static_cast<std::size_t>(slot)] = fd;
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_files_update(sqe, &slot_fds_[static_cast<std::size_t>(slot)], 1, slot);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, kIgnored);
    return slot;
  }

  void unregister_file(int slot) noexcept override {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_close_direct(sqe, static_cast<unsigned>(slot));
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, kIgnored);
    free_slots_.push_back(slot);
  }

  void submit(Operation& op) override {
    // A deadline is a linked timeout, which must land in the same submission as its operation.
    // With SQPOLL a flush frees slots only once the kernel thread has taken them.
    while (op.has_deadline() && io_uring_sq_space_left(&ring_) < 2) {
      flush();
      if (sqpoll_) io_uring_sqring_wait(&ring_);
    }
    ++stats_.submitted;
    io_uring_sqe* sqe = next_sqe();
    op.prepare(*sqe);
    const std::uint64_t key = take_slot(op);
    // A receive from the buffer ring becomes a bundle: complete() hands out its buffers one by one.
    if (bundles_ && sqe->opcode == IORING_OP_RECV && (sqe->flags & IOSQE_BUFFER_SELECT)) {
      sqe->ioprio |= IORING_RECVSEND_BUNDLE;
      slots_[index_of(key)].bundle = 1;
    }
    if ((sqe->flags & IOSQE_BUFFER_SELECT) && sqe->buf_group == kDatagramGroup) slots_[index_of(key)].datagram = 1;
    op.set_submission(key);
    io_uring_sqe_set_data64(sqe, key);
    if (!op.has_deadline()) return;
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe* timeout = next_sqe();
    // The kernel reads the timespec when it takes the SQE: one stored per SQ slot lives long enough, and
    // no operation has to carry one.
    __kernel_timespec& ts = timespecs_[static_cast<std::size_t>(timeout - ring_.sq.sqes)];
    const auto ns = op.deadline().time_since_epoch().count();
    ts = {ns / 1'000'000'000, ns % 1'000'000'000};
    // steady_clock is CLOCK_MONOTONIC, the clock an absolute io_uring timeout is measured on by default.
    io_uring_prep_link_timeout(timeout, &ts, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(timeout, kIgnored);
  }

  void cancel(Operation& op) override {
    ++stats_.cancels;
    cancel_key(op.submission());
  }
  std::uint64_t cq_overflows() const noexcept override { return *ring_.cq.koverflow; }

  void abandon(Operation& op, Leftovers left) noexcept override {
    const std::uint64_t key = op.submission();
    Slot& slot = slots_[index_of(key)];
    slot.op = nullptr;
    slot.left = left;
    if (!op.cancel_requested()) cancel_key(key);
    if (op.lent().empty()) {
      ++stats_.orphans;
      return;
    }
    // The kernel may still write the caller's memory: wait until the last completion is out of the ring.
    // Everything reaped on the way goes to pending_, behind what is there, so dispatch keeps ring order.
    ++stats_.abandon_waits;
    for (std::size_t i = pending_pos_; i < pending_.size(); ++i) {
      if (pending_[i].user_data == key && !(pending_[i].flags & IORING_CQE_F_MORE)) return;
    }
    for (;;) {
      ++stats_.waits;
      int ret = io_uring_submit_and_wait(&ring_, 1);
      if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
        log::write(log::Level::error, "io_uring_submit_and_wait while abandoning an operation: %s", std::strerror(-ret));
        std::abort();  // returning would let the kernel write into freed memory
      }
      bool last = false;
      io_uring_cqe* cqe;
      while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
        pending_.push_back({cqe->user_data, cqe->res, cqe->flags});
        io_uring_cqe_seen(&ring_, cqe);
        last = last || (cqe->user_data == key && !(cqe->flags & IORING_CQE_F_MORE));
      }
      if (last) return;
    }
  }

  void close(int fd, bool pending) noexcept override {
    // In submission order: the cancel finds every request on the file (fixed-file ones too: they hold the
    // same file), then the descriptor goes. The number stays taken until then.
    io_uring_sqe* sqe;
    if (pending) {
      sqe = next_sqe();
      io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, kIgnored);
    }
    sqe = next_sqe();
    io_uring_prep_close(sqe, fd);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, kIgnored);
  }

  std::size_t in_flight() const noexcept override { return in_flight_; }

  void poll(std::optional<std::chrono::nanoseconds> timeout) override {
    if (pending_pos_ < pending_.size()) timeout = std::chrono::nanoseconds::zero();
    ++stats_.waits;
    int ret;
    if (!timeout) {
      ret = io_uring_submit_and_wait(&ring_, 1);
    } else if (timeout->count() == 0) {
      ret = io_uring_submit_and_get_events(&ring_);
    } else {
      __kernel_timespec ts{timeout->count() / 1'000'000'000, timeout->count() % 1'000'000'000};
      io_uring_cqe* cqe;
      ret = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    }
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
      throw std::system_error(-ret, std::generic_category(), "io_uring_enter in reactor poll");
    }
    dispatch();
  }

  bool may_have_events() const noexcept override {
    // IORING_SQ_TASKRUN: completions wait as task work (DEFER_TASKRUN, COOP_TASKRUN) for an io_uring_enter.
    return !taskrun_flag_ || pending_pos_ < pending_.size() || io_uring_sq_ready(&ring_) > 0 ||
           io_uring_cq_ready(&ring_) > 0 ||
           (IO_URING_READ_ONCE(*ring_.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
  }

  void wake() noexcept override {
    std::uint64_t one = 1;
    // EAGAIN means the counter is already non-zero: a wake-up is pending anyway.
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }

  bool wake_peer(Backend& target) noexcept override {
    auto* peer = dynamic_cast<UringBackend*>(&target);
    if (!msg_ring_ || peer == nullptr) return false;
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_msg_ring(sqe, peer->ring_.ring_fd, 0, kWoken, 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    // A failure posts a completion naming the peer, which is then woken through its eventfd: a lost
    // wake-up would leave its inbox unread for good.
    io_uring_sqe_set_data(sqe, peer);
    return true;
  }

 private:
  struct Reaped {
    std::uint64_t user_data;
    int res;
    std::uint32_t flags;
  };
  // One per submission in flight. Free slots form a list through next_free.
  struct Slot {
    Operation* op = nullptr;  // null once abandoned: an orphan, settled by `left`
    std::uint32_t generation : 30 = 0;
    std::uint32_t bundle : 1 = 0;    // submitted with IORING_RECVSEND_BUNDLE: complete() may split
    std::uint32_t datagram : 1 = 0;  // picks from the datagram ring: an orphan's buffers go back there
    std::uint32_t next_free = kNoSlot;
    Leftovers left;
  };
  static constexpr std::uint32_t kNoSlot = ~std::uint32_t{0};

  static std::uint32_t index_of(std::uint64_t key) noexcept { return static_cast<std::uint32_t>(key); }

  std::uint64_t take_slot(Operation& op) {
    if (free_slot_ == kNoSlot) {
      slots_.emplace_back();
      free_slot_ = static_cast<std::uint32_t>(slots_.size() - 1);
    }
    const std::uint32_t i = free_slot_;
    Slot& s = slots_[i];
    free_slot_ = s.next_free;
    s.op = &op;
    ++in_flight_;
    return kSlotTag | (std::uint64_t{s.generation} << 32) | i;
  }

  void release_slot(std::uint32_t i) noexcept {
    Slot& s = slots_[i];
    ++s.generation;  // a late cancel for the old key finds nothing (30 bits: wraps)
    s.bundle = 0;
    s.datagram = 0;
    s.op = nullptr;
    s.next_free = free_slot_;
    free_slot_ = i;
    --in_flight_;
  }

  void cancel_key(std::uint64_t key) {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_cancel64(sqe, key, 0);
    io_uring_sqe_set_data64(sqe, kIgnored);
  }

  // A completion of an abandoned submission: what it carries goes back or is closed.
  void settle_orphan(const Leftovers& left, int res, std::uint32_t flags, bool last, BufferPool& picked) noexcept {
    if (flags & IORING_CQE_F_BUFFER) {
      const auto id = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
      picked.lend(id, res, flags);
      picked.give_back(id);
    }
    if (left.close_fd && res >= 0) ::close(res);
    if (last && left.pool_buffer >= 0) buffers_->give_back(static_cast<std::uint16_t>(left.pool_buffer));
  }

  void setup(const BackendOptions& o) {
    const unsigned cq = IORING_SETUP_CQSIZE;
    std::vector<SetupTrial> trials;
    if (o.sqpoll) {
      // SQPOLL excludes DEFER_TASKRUN; SINGLE_ISSUER then names the SQPOLL thread as the submitter.
      if (o.single_issuer) trials.push_back({IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER, "SQPOLL SINGLE_ISSUER"});
      trials.push_back({IORING_SETUP_SQPOLL, "SQPOLL"});
    }
    if (o.single_issuer && o.defer_taskrun && o.coop_taskrun) {
      trials.push_back({IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN,
                        "SINGLE_ISSUER DEFER_TASKRUN COOP_TASKRUN"});
    }
    if (o.single_issuer && o.defer_taskrun) {
      trials.push_back({IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "SINGLE_ISSUER DEFER_TASKRUN"});
    }
    if (o.single_issuer && o.coop_taskrun) {
      trials.push_back({IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN, "SINGLE_ISSUER COOP_TASKRUN"});
    }
    if (o.coop_taskrun) trials.push_back({IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN"});
    if (o.single_issuer) trials.push_back({IORING_SETUP_SINGLE_ISSUER, "SINGLE_ISSUER"});
    trials.push_back({0, "no setup flags"});
    int last = 0;
    const unsigned smallest_cq = o.ring_entries * 2;
    unsigned cq_entries = std::max(o.cq_entries, smallest_cq);
    for (std::size_t i = 0; i < trials.size();) {
      io_uring_params p{};
      p.flags = trials[i].flags | cq;
      // A busy-polling reactor learns of completions waiting as task work from the SQ ring's flags.
      if (o.busy_poll.count() > 0 && (p.flags & (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_DEFER_TASKRUN))) {
        p.flags |= IORING_SETUP_TASKRUN_FLAG;
      }
      if ((p.flags & IORING_SETUP_SQPOLL) && o.sqpoll_cpu >= 0) p.flags |= IORING_SETUP_SQ_AFF;
      p.cq_entries = cq_entries;
      p.sq_thread_idle = static_cast<unsigned>(o.sqpoll_idle.count());
      p.sq_thread_cpu = static_cast<unsigned>(std::max(o.sqpoll_cpu, 0));
      last = io_uring_queue_init_params(o.ring_entries, &ring_, &p);
      if (last == 0) {
        setup_names_ = trials[i].names;
        sqpoll_ = (trials[i].flags & IORING_SETUP_SQPOLL) != 0;
        taskrun_flag_ = (p.flags & IORING_SETUP_TASKRUN_FLAG) != 0;
        if (o.sqpoll && !sqpoll_) setup_names_ += " (SQPOLL refused)";
        if (sqpoll_) setup_names_ += " idle " + std::to_string(o.sqpoll_idle.count()) + " ms";
        if (cq_entries < o.cq_entries) {
          cq_note_ = "; CQ cut to " + std::to_string(cq_entries) + " entries (RLIMIT_MEMLOCK; raise it for " +
                     std::to_string(o.cq_entries) + ")";
        }
        return;
      }
      // Without CAP_IPC_LOCK the rings count against RLIMIT_MEMLOCK: a smaller completion queue may fit.
      if (last == -ENOMEM && cq_entries > smallest_cq) {
        cq_entries = std::max(cq_entries / 4, smallest_cq);
        continue;
      }
      if (last != -EINVAL) break;  // only "flag not known" is worth retrying without it
      ++i;
    }
    throw std::system_error(-last, std::generic_category(),
                            "io_uring_setup (" + std::to_string(o.ring_entries) + " entries)");
  }

  void setup_buffers(const BackendOptions& o) {
    const std::string shape = std::to_string(o.buffers.limit) + " x " + std::to_string(o.buffers.buffer_size) + " B";
    if (!o.provided_buffers) {
      buffers_note_ = "taken per read (provided buffers switched off)";
    } else {
      buffer_options_ = o.buffers;
      try {
        // Incremental consumption is used with multishot receives only (a single-shot recvmsg with
        // MSG_TRUNC reports a datagram's whole length, which the kernel would take as consumed), and where
        // the kernel completes them in order (the offset of each slice is counted from that order).
        std::string inc_note;
        if (o.incremental_buffers && !o.multishot_recv) inc_note = " (incremental off: it needs multishot recv)";
        else if (o.incremental_buffers && !multishot_completions_in_order()) inc_note = " (incremental off: kernels before 6.15 (6.12.29) can reorder a multishot receive's completions)";
        if (o.incremental_buffers && inc_note.empty()) {
          try {
            auto ring = std::make_unique<ProvidedBufferRing>(ring_, o.incremental, 0, true);
            buffers_note_ = "provided ring of up to " + std::to_string(o.incremental.limit) + " x " +
                            std::to_string(o.incremental.buffer_size) + " B, incremental";
            ring_buffers_ = ring.get();
            buffers_ = std::move(ring);
          } catch (const IncrementalRefused&) {
            inc_note = " (incremental refused: IOU_PBUF_RING_INC needs 6.12)";
          }
        }
        if (!buffers_) {
          auto ring = std::make_unique<ProvidedBufferRing>(ring_, o.buffers, 0, false);
          buffers_note_ = "provided ring of up to " + shape + inc_note;
          ring_buffers_ = ring.get();
          buffers_ = std::move(ring);
        }
      } catch (const std::system_error& e) {
        buffers_note_ = std::string("taken per read (") + e.what() + ")";
      }
    }
    if (!buffers_) buffers_ = std::make_unique<BufferPool>(o.buffers);
    // Multishot receive (6.0) cannot be probed by opcode: RecvStream falls back on its first EINVAL.
    features_.multishot_recv = o.multishot_recv && buffers_->kernel_selects();
    // Bundles (6.10) are probed on the eventfd, with the ring's group: ENOTSOCK where the flag is known.
    // Bundles split on whole buffers: an incremental ring's are filled a slice at a time.
    bundles_ = o.recv_bundle && ring_buffers_ != nullptr && !ring_buffers_->incremental() && flag_known([fd = wake_fd_, group = ring_buffers_->group()](io_uring_sqe* sqe) {
      io_uring_prep_recv(sqe, fd, nullptr, 0, 0);
      sqe->flags |= IOSQE_BUFFER_SELECT;
      sqe->buf_group = group;
      sqe->ioprio |= IORING_RECVSEND_BUNDLE;
    });
    features_.recv_bundle = bundles_;
    features_.incremental_buffers = buffers_->incremental();
    if (o.fixed_buffers) fixed_ = std::make_unique<RegisteredBuffers>(ring_, o.fixed);
    else fixed_ = std::make_unique<FixedBuffers>(o.fixed, "not registered (switched off)");
    features_.send_zc = o.send_zc && opcode_supported(IORING_OP_SEND_ZC);
    features_.send_zc_report = features_.send_zc && flag_known([fd = wake_fd_](io_uring_sqe* sqe) {
      io_uring_prep_send_zc(sqe, fd, nullptr, 0, 0, IORING_SEND_ZC_REPORT_USAGE);
    });
    features_.multishot_accept = o.multishot_accept && flag_known([fd = wake_fd_](io_uring_sqe* sqe) {
      io_uring_prep_multishot_accept(sqe, fd, nullptr, nullptr, 0);
    });
    features_.send_zc_threshold = o.send_zc_threshold;
    if (!o.fixed_files) {
      files_note_ = "off (switched off)";
    } else if (int ret = io_uring_register_files_sparse(&ring_, o.fixed_file_slots); ret < 0) {
      files_note_ = std::string("off (io_uring_register_files_sparse: ") + std::strerror(-ret) + ")";
    } else {
      features_.fixed_files = true;
      files_note_ = std::to_string(o.fixed_file_slots) + " slots";
      slot_fds_.assign(o.fixed_file_slots, -1);
      for (unsigned i = 0; i < o.fixed_file_slots; ++i) free_slots_.push_back(static_cast<int>(i));
    }
  }

  // Refused on kernels before 6.9 (EINVAL); harmless where no socket has a NAPI id (loopback).
  void register_napi(std::chrono::microseconds busy_poll) {
    corio_uring_napi napi{};
    napi.busy_poll_to = static_cast<__u32>(busy_poll.count());
    const long ret = ::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_NAPI, &napi, 1);
    napi_note_ = ret == 0 ? "; napi busy poll " + std::to_string(busy_poll.count()) + " us"
                          : std::string("; napi off (IORING_REGISTER_NAPI: ") + std::strerror(errno) + ")";
  }

  // Flags without an opcode of their own (send_zc usage reports, 6.2; multishot accept, 5.19) are probed
  // on the wake-up eventfd, which is no socket: a kernel that knows the flag fails with ENOTSOCK, one that
  // does not with EINVAL. (A descriptor that exists: kernels before 5.18 look the file up before they
  // check flags, so -1 would give EBADF either way.) Runs before anything else is queued.
  template <class Prepare>
  bool flag_known(Prepare prepare) {
    io_uring_sqe* sqe = next_sqe();
    prepare(sqe);
    io_uring_sqe_set_data64(sqe, kIgnored);
    int res = -EINVAL;
    for (bool more = true; more;) {
      io_uring_cqe* cqe;
      if (io_uring_submit_and_wait(&ring_, 1) < 0 || io_uring_peek_cqe(&ring_, &cqe) != 0) return false;
      if (!(cqe->flags & IORING_CQE_F_NOTIF)) res = cqe->res;
      more = (cqe->flags & IORING_CQE_F_MORE) != 0;
      io_uring_cqe_seen(&ring_, cqe);
    }
    return res != -EINVAL;
  }

  bool opcode_supported(int opcode) {
    io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
    if (probe == nullptr) return false;
    bool ok = io_uring_opcode_supported(probe, opcode) != 0;
    io_uring_free_probe(probe);
    return ok;
  }

  io_uring_sqe* next_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {  // SQ full: hand what is queued to the kernel and take a fresh slot
      flush();
      if (sqpoll_) io_uring_sqring_wait(&ring_);  // the SQPOLL thread frees slots as it takes them
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void flush() {
    int ret = io_uring_submit(&ring_);
    if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
      throw std::system_error(-ret, std::generic_category(), "io_uring_submit with a full submission queue");
    }
  }

  void arm_eventfd() {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_read(sqe, wake_fd_, &wake_count_, sizeof wake_count_, 0);
    io_uring_sqe_set_data64(sqe, kEventfd);
  }

  void complete(std::uint64_t user_data, int res, std::uint32_t flags) {
    // Only a bundle spans buffers: a longer result elsewhere is a length (a datagram's, with MSG_TRUNC).
    if ((flags & IORING_CQE_F_BUFFER) && res > static_cast<int>(buffers_->buffer_size()) && (user_data & kSlotTag) &&
        slots_[index_of(user_data)].bundle) {
      split_bundle(user_data, res, flags);
      return;
    }
    if (user_data & kSlotTag) {
      const std::uint32_t i = index_of(user_data);
      const bool last = !(flags & IORING_CQE_F_MORE);  // a multishot operation goes on
      Operation* op = slots_[i].op;
      if (op == nullptr) {
        const Leftovers left = slots_[i].left;
        BufferPool& picked = slots_[i].datagram ? *datagram_buffers_ : *buffers_;
        if (last) release_slot(i);
        settle_orphan(left, res, flags, last, picked);
        return;
      }
      if (last) release_slot(i);  // before complete(): the operation may submit itself again
      ++stats_.completed;
      op->complete(res, flags);
    } else if (user_data == kEventfd) {
      arm_eventfd();
    } else if (user_data > kEventfd) {  // a MSG_RING to this peer failed
      ++stats_.wake_failures;
      reinterpret_cast<UringBackend*>(user_data)->wake();  // NOLINT(performance-no-int-to-ptr)
    }
  }

  // A bundle: `res` bytes in consecutive ring buffers from the one `flags` names. Each buffer is delivered
  // as a completion of its own (all but the last with IORING_CQE_F_MORE), so operations never see
  // bundles. The parts go into pending_ first and are delivered from there: an owner that goes while they
  // are delivered (abandon()) finds its last completion there rather than waiting for the ring, and the
  // rest settle as an orphan's.
  void split_bundle(std::uint64_t user_data, int res, std::uint32_t flags) {
    const auto first = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
    // Read before any delivery: a buffer given back on the way is published at a new entry.
    const unsigned entry = ring_buffers_->entry_of(first);
    const int size = static_cast<int>(buffers_->buffer_size());
    const std::uint32_t low = flags & ((1U << IORING_CQE_BUFFER_SHIFT) - 1) & ~std::uint32_t{IORING_CQE_F_MORE};
    ++stats_.bundles;
    const auto at = pending_.begin() + static_cast<std::ptrdiff_t>(pending_pos_);
    std::size_t n = 0;
    for (unsigned k = 0; res > 0; ++k, ++n) {
      const int part = std::min(res, size);
      res -= part;
      const std::uint32_t more = res > 0 ? IORING_CQE_F_MORE : flags & IORING_CQE_F_MORE;
      const std::uint16_t id = ring_buffers_->at_entry(entry + k);
      parts_.push_back({user_data, part, (std::uint32_t{id} << IORING_CQE_BUFFER_SHIFT) | low | more});
    }
    pending_.insert(at, parts_.begin(), parts_.end());
    parts_.clear();
    for (const std::size_t end = pending_pos_ + n; pending_pos_ < end;) {
      const Reaped r = pending_[pending_pos_++];
      complete(r.user_data, r.res, r.flags);
    }
  }

  void dispatch() {
    // Completions that abandon() reaped come first: the ring holds only newer ones. abandon() may run from
    // inside complete() and reap more: those wait for the next turn, and so does the ring behind them.
    const std::size_t stashed = pending_.size();
    while (pending_pos_ < stashed) {
      Reaped r = pending_[pending_pos_++];
      complete(r.user_data, r.res, r.flags);
    }
    if (pending_pos_ < pending_.size()) return;
    pending_.clear();
    pending_pos_ = 0;
    // Completions that arrive while these run are left for the next turn, so a busy ring cannot starve timers.
    unsigned budget = io_uring_cq_ready(&ring_);
    io_uring_cqe* cqe;
    while (budget-- > 0 && io_uring_peek_cqe(&ring_, &cqe) == 0) {
      Reaped r{cqe->user_data, cqe->res, cqe->flags};
      io_uring_cqe_seen(&ring_, cqe);
      complete(r.user_data, r.res, r.flags);
      if (pending_pos_ < pending_.size()) return;  // abandon() took what followed: delivered first, next turn
    }
  }

  io_uring ring_{};
  std::unique_ptr<BufferPool> buffers_;
  std::unique_ptr<BufferPool> datagram_buffers_;  // with an incremental buffers_ only
  BufferPoolOptions buffer_options_;
  ProvidedBufferRing* ring_buffers_ = nullptr;  // buffers_, when it is a kernel ring
  bool bundles_ = false;                        // IORING_RECVSEND_BUNDLE on buffer-ring receives
  std::unique_ptr<FixedBuffers> fixed_;
  std::vector<__kernel_timespec> timespecs_;  // link timeouts' deadlines, one per SQ slot
  std::vector<int> slot_fds_;  // what each file-table update reads at submission
  std::deque<int> free_slots_;
  std::string files_note_;
  std::string buffers_note_;
  std::string setup_names_;
  std::string napi_note_;
  bool sqpoll_ = false;
  bool taskrun_flag_ = false;  // IORING_SETUP_TASKRUN_FLAG: may_have_events() can look without a syscall
  std::string cq_note_;
  int wake_fd_ = -1;
  std::uint64_t wake_count_ = 0;
  bool msg_ring_ = false;
  bool ring_fd_registered_ = false;
  std::size_t in_flight_ = 0;  // slots taken
  std::vector<Slot> slots_;
  std::uint32_t free_slot_ = kNoSlot;
  std::vector<Reaped> pending_;  // reaped out of the ring by abandon(), or a bundle's parts: delivered in order
  std::vector<Reaped> parts_;    // split_bundle()'s scratch, kept for its capacity
  std::size_t pending_pos_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_uring_backend(const BackendOptions& options) {
  return std::make_unique<UringBackend>(options);
}

}  // namespace corio
