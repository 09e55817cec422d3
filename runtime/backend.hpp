// Backend: the one interface between a reactor and the kernel's I/O machinery. The reactor queues
// operations, asks for cancellation and waits for events through it and never asks which backend it has.
// One file per backend implements it (uring_backend.cpp); make_backend() picks one.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "corio/runtime/buffer_pool.hpp"
#include "corio/runtime/fixed_buffers.hpp"

namespace corio {

class Operation;
struct Leftovers;

// Which backend, and every io_uring feature corio can use, named so that each can be switched off.
struct BackendOptions {
  // automatic: CORIO_BACKEND=uring|epoll if set, else io_uring, else epoll with a notice saying why.
  enum class Kind { automatic, uring, epoll };
  Kind kind = Kind::automatic;
  unsigned ring_entries = 256;
  // Completion queue size: room for a burst from every connection (each multishot receive and send can
  // post), so that completions never take the kernel's overflow path, which also ends multishot requests.
  unsigned cq_entries = 16384;
  bool single_issuer = true;   // IORING_SETUP_SINGLE_ISSUER
  bool defer_taskrun = true;   // IORING_SETUP_DEFER_TASKRUN (needs single_issuer)
  bool coop_taskrun = true;    // IORING_SETUP_COOP_TASKRUN
  bool msg_ring = true;        // IORING_OP_MSG_RING for cross-reactor wake-ups (eventfd otherwise)
  bool register_ring_fd = true;
  // Receive buffers: a provided buffer ring the kernel picks from (5.19+), else buffers taken per read.
  bool provided_buffers = true;
  bool multishot_recv = true;  // one armed receive for many completions (6.0+)
  // Receive bundles (IORING_RECVSEND_BUNDLE, 6.10): one completion fills several ring buffers when more
  // than one buffer's worth has arrived; the backend hands them to the receive one by one.
  bool recv_bundle = true;
  BufferPoolOptions buffers;
  // Incremental buffer consumption (IOU_PBUF_RING_INC; with multishot_recv, on kernels that complete a
  // multishot receive in order: 6.15+, 6.12.29+): receives are packed one after another into the large
  // buffers of `incremental` (in place of `buffers`), so small messages use buffer memory by their size. A
  // slice the application keeps holds its whole buffer: with the default shape 1024 kept slices, each in a
  // buffer of its own, exhaust the ring (a plain one takes 4096). Receive bundles are not used with it.
  // Where the kernel lacks it the ring is `buffers`, as without it. Opt-in:
  // switch_on("incremental-buffers[=KIB]") (KIB sets the buffer size, a power of two up to 64).
  bool incremental_buffers = false;
  BufferPoolOptions incremental{.buffer_size = 64 * 1024, .slab = 16, .limit = 1024};  // buffer_size <= 64 KiB
  bool fixed_buffers = true;  // register FixedBuffers with the kernel (io_uring_register_buffers)
  FixedBufferOptions fixed;
  // Zero-copy send (IORING_OP_SEND_ZC, 6.0+) for writes of at least send_zc_threshold bytes through
  // write_all(). A connection whose sends the kernel reports as copied anyway (loopback) stops using it.
  bool send_zc = true;
  std::size_t send_zc_threshold = 64 * 1024;
  // Registered files: a sparse table of this many slots; RecvStream registers its socket there so its
  // receives skip the per-operation file lookup and reference count (IOSQE_FIXED_FILE).
  bool fixed_files = true;
  unsigned fixed_file_slots = 16384;
  bool multishot_accept = true;  // one armed accept for many connections (5.19+)

  // Opt-in, for latency at the price of CPU (switch_on names them):
  // Busy polling: a reactor with nothing to do keeps polling its backend for up to this long before it
  // sleeps in the kernel, so a completion or a message from another reactor is taken in microseconds
  // instead of after a wake-up. The spin is not counted as busy in Reactor::utilisation().
  std::chrono::microseconds busy_poll{0};
  // SQPOLL: a kernel thread per ring takes submissions as they are queued (no io_uring_enter to submit)
  // and sleeps after `sqpoll_idle` without work. It excludes DEFER_TASKRUN; its CPU time is the process's.
  bool sqpoll = false;
  std::chrono::milliseconds sqpoll_idle{10};
  int sqpoll_cpu = -1;  // pin the SQPOLL thread to this CPU (IORING_SETUP_SQ_AFF); -1: not pinned
  // NAPI busy polling (IORING_REGISTER_NAPI, 6.9+): the kernel polls the NIC queues of the sockets the
  // ring waits on for up to this long. Only devices with NAPI gain (a real NIC; loopback has none).
  std::chrono::microseconds napi_busy_poll{0};
};

// What the running backend offers operations, after probing the kernel and applying the options. Each is
// off where the kernel lacks it or an option switched it off; describe() says which and why.
struct Features {
  bool multishot_recv = false;  // IORING_RECV_MULTISHOT with the buffer ring
  bool recv_bundle = false;     // IORING_RECVSEND_BUNDLE on receives from the buffer ring
  bool incremental_buffers = false;  // IOU_PBUF_RING_INC: receives fill slices of the ring's buffers
  bool send_zc = false;         // IORING_OP_SEND_ZC
  bool send_zc_report = false;  // IORING_SEND_ZC_REPORT_USAGE: the kernel says when it copied anyway
  std::size_t send_zc_threshold = 0;
  bool fixed_files = false;     // register_file() gives slots
  bool multishot_accept = false;  // IORING_ACCEPT_MULTISHOT, probed at start-up
};

// What a backend has done, for tests, benchmarks and metrics: plain counters, this reactor's thread only.
struct BackendStats {
  std::uint64_t waits = 0;           // system calls that submit and/or wait (io_uring_enter, epoll_wait)
  std::uint64_t orphans = 0;         // operations abandoned in flight without waiting
  std::uint64_t abandon_waits = 0;   // abandoned with caller memory lent: waited for the kernel
  std::uint64_t wake_failures = 0;   // MSG_RING wake-ups the kernel refused (sent again by eventfd)
  std::uint64_t submitted = 0;       // operations handed to the backend (retries of multishot ones too)
  std::uint64_t completed = 0;       // completions delivered to operations
  std::uint64_t cancels = 0;         // cancellations asked for
  std::uint64_t bundles = 0;         // receive completions that filled more than one buffer
};

class Backend {
 public:
  virtual ~Backend() = default;
  // One line saying what was chosen, e.g. "io_uring: SINGLE_ISSUER DEFER_TASKRUN; wake=msg_ring".
  virtual std::string describe() const = 0;

  // Queues `op`; it is handed to the kernel at the next poll() (batched: one syscall per loop turn).
  virtual void submit(Operation& op) = 0;
  // Asks the kernel to cancel `op`; `op` still completes (with -ECANCELED unless it finished first).
  virtual void cancel(Operation& op) = 0;
  // `op` is being destroyed while in flight: its submission is cancelled and its late completions are
  // settled by `left` (see operation.hpp). Never waits, unless op.lent() is not empty: then it waits for
  // the kernel to let go of that memory, keeping every completion it reaps in order for dispatch.
  virtual void abandon(Operation& op, Leftovers left) noexcept = 0;
  // Closes `fd`. With `pending` (operations may be waiting on it) it first cancels every operation on
  // `fd`, which complete with -ECANCELED. Either way the number is not free for reuse before they are off
  // it. (Without `pending` there is no search by descriptor, which on io_uring scans every request in
  // flight.) Queued with the next submission; shutdown submits what is queued.
  virtual void close(int fd, bool pending) noexcept = 0;
  // `fd` leaves this reactor open, with no operation on it (TcpStream::release, to hand it to another
  // reactor): a readiness backend drops what it registered for it, so that its number, once closed
  // elsewhere and reused, does not look registered here.
  virtual void forget_descriptor(int fd) noexcept { (void)fd; }
  // This reactor's receive buffers (see BufferPool).
  virtual BufferPool& buffers() noexcept = 0;
  // The pool datagram receives use: buffers(), unless that is incremental (a datagram must not be cut
  // at the end of a partly filled buffer): then a plain pool of the same shape, made on first use.
  virtual BufferPool& datagram_buffers() { return buffers(); }
  // Not virtual: asked on every write_all.
  const Features& features() const noexcept { return features_; }
  // This reactor's registered buffers (plain memory where registration is unavailable).
  virtual FixedBuffers& fixed_buffers() noexcept = 0;
  // Registers `fd` in this reactor's file table: the slot, used as the descriptor with IOSQE_FIXED_FILE,
  // or -1 (no table, or full). Both calls are queued with the next submission, in order.
  virtual int register_file(int fd) noexcept = 0;
  virtual void unregister_file(int slot) noexcept = 0;
  // Operations submitted and not yet completed, orphans included.
  virtual std::size_t in_flight() const noexcept = 0;
  const BackendStats& stats() const noexcept { return stats_; }
  // Completions the kernel could not post to a full completion queue (io_uring's overflow counter).
  virtual std::uint64_t cq_overflows() const noexcept { return 0; }

  // Submits what is queued, waits up to `timeout` (nullopt: until something happens, zero: not at all)
  // and completes every operation whose result arrived.
  virtual void poll(std::optional<std::chrono::nanoseconds> timeout) = 0;

  // False only when poll(zero) would neither submit nor complete anything, known without a system call:
  // a busy-polling reactor spins on it in user space. A backend that cannot tell says true.
  virtual bool may_have_events() const noexcept { return true; }

  // Interrupts poll() from any thread.
  virtual void wake() noexcept = 0;
  // Interrupts `target`'s poll() from this backend's own thread, if this backend has a cheaper way than
  // target.wake(). Returns false when it has none.
  virtual bool wake_peer(Backend& target) noexcept = 0;

 protected:
  Features features_;  // set by the backend as it probes; all off on epoll
  BackendStats stats_;
};

// Creates the backend for the calling thread (io_uring rings are bound to the thread that creates them).
std::unique_ptr<Backend> make_backend(const BackendOptions& options);

// The backends make_backend() chooses from, one file each.
std::unique_ptr<Backend> make_uring_backend(const BackendOptions& options);  // uring_backend.cpp
std::unique_ptr<Backend> make_epoll_backend(const BackendOptions& options);  // epoll_backend.cpp

// Switches off one feature by name, to compare with and without it: provided-buffers, multishot-recv,
// fixed-buffers, send-zc, fixed-files, single-issuer, defer-taskrun, coop-taskrun, msg-ring, register-ring-fd,
// multishot-accept, recv-bundle.
// False for an unknown name.
bool switch_off(BackendOptions& options, std::string_view feature);
// The names switch_off() knows, comma-separated (for usage messages).
extern const char* const kFeatureNames;
// Switches on one opt-in feature: busy-poll[=US] (50 us if no value), sqpoll[=IDLE_MS], napi[=US] (50 us).
// False for an unknown name or a malformed value.
bool switch_on(BackendOptions& options, std::string_view feature);
extern const char* const kOptInFeatureNames;

// Parses "uring" / "epoll" (the --backend flags and CORIO_BACKEND); nullopt for anything else.
std::optional<BackendOptions::Kind> parse_backend_kind(std::string_view name);

}  // namespace corio
