// Operation: the awaitable that every kernel operation is built from. A concrete operation says how it is
// issued (prepare fills an io_uring SQE) and what its result means; the reactor's backend does the rest:
// batching, completion, deadlines, cancellation and the lifetime rules. A new opcode is a few lines:
//   struct FsyncImpl : Operation {
//     explicit FsyncImpl(int fd) : fd(fd) {}
//     void prepare(io_uring_sqe& s) noexcept override { io_uring_prep_fsync(&s, fd, 0); }
//     int perform() noexcept override { return ::fsync(fd) == 0 ? 0 : -errno; }   // the epoll backend's way
//     int fd;
//   };
//   int res = co_await Op<FsyncImpl>(fd);
// Results are values: the kernel's res (>= 0, or -errno). A deadline that passes gives -ETIMEDOUT and a
// stop request (explicit token, or the task's ambient one) gives -ECANCELED.
//
// Ownership while in flight (the rules of tokio-uring's DESIGN.md, in C++):
// - The kernel knows an operation by a key the backend gives each submission (a slot index and its
//   generation, never the operation's address), so a completion for an operation that is gone finds no
//   freed memory, and a late cancel can never hit a newer operation that reuses the slot.
// - An operation destroyed in flight (its frame destroyed, a RecvStream dropped while armed) is abandoned:
//   its submission is cancelled and becomes an orphan that the backend settles as its completions arrive,
//   in ring order: a descriptor it returns is closed, a pool buffer it carries goes back (Leftovers).
//   Nothing waits, unless the kernel was lent caller memory (lent()): a buffer the kernel may still write
//   cannot be freed under it, so that one case waits for the kernel, delivering the completions it reaps
//   in their order.
// - close() of a descriptor (TcpStream, TcpListener) cancels every operation on it, which end with
//   -ECANCELED, and closes the descriptor only after those, so a reused number never reaches an old waiter.
#pragma once
#include <array>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <span>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "corio/runtime/cancel_hook.hpp"
#include "corio/runtime/task.hpp"
#include "corio/runtime/timer_queue.hpp"

struct io_uring_sqe;

namespace corio {

// On a readiness backend (epoll) an operation waits for these events on this descriptor, then retries.
struct Readiness {
  int fd = -1;
  std::uint32_t events = 0;  // EPOLLIN and/or EPOLLOUT
  bool once = false;         // a wait the descriptor sees once (a connect): its interest is not kept after
};

// What an operation abandoned in flight leaves behind: the backend settles it when the kernel lets go.
// A buffer the kernel picked from the reactor's ring (IORING_CQE_F_BUFFER) always goes back to it.
struct Leftovers {
  bool close_fd = false;  // results >= 0 are descriptors nobody owns: close them
  int pool_buffer = -1;   // a pool buffer the operation took and gave the kernel: back to the pool at the end
};

class Operation : public CancelHook {
 public:
  // How the operation is issued on io_uring. The backend sets user_data; do not.
  virtual void prepare(io_uring_sqe& sqe) noexcept = 0;
  // How it runs on a readiness backend: try it without blocking; the result (>= 0 or -errno), or -EAGAIN
  // to wait until readiness() is reported and try again.
  virtual int perform() noexcept = 0;
  virtual Readiness readiness() const noexcept { return {}; }
  // True for operations whose result is a new file descriptor (accept, socket, open): if such an operation
  // is cancelled or abandoned and completes anyway, the runtime closes the descriptor.
  virtual bool returns_fd() const noexcept { return false; }
  // Caller memory the kernel reads or writes until the last completion (a receive's buffer). An operation
  // abandoned with memory lent waits for the kernel to let go of it; one that lends none never waits.
  virtual std::span<const char> lent() const noexcept { return {}; }
  // What an abandoned submission leaves to settle when its completions arrive (see Leftovers).
  virtual Leftovers leftovers() noexcept { return {.close_fd = returns_fd()}; }

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> waiter) {
    if constexpr (std::is_base_of_v<detail::PromiseBase, P>) {
      if (token_ == nullptr) token_ = &waiter.promise().stop_token;
    }
    return start(waiter);
  }
  int await_resume() const noexcept { return res_; }

  // Backend side: a completion for this operation. Multishot operations (one submission, completions until
  // one arrives without IORING_CQE_F_MORE) override it.
  virtual void complete(int res, std::uint32_t flags) noexcept;
  bool has_deadline() const noexcept { return deadline_ != Clock::time_point::max(); }
  // The backend's key for the current submission (what the kernel's user_data names).
  std::uint64_t submission() const noexcept { return submission_; }
  void set_submission(std::uint64_t key) noexcept { submission_ = key; }
  bool cancel_requested() const noexcept { return cancel_requested_; }
  Clock::time_point deadline() const noexcept { return deadline_; }
  int result() const noexcept { return res_; }

 protected:
  Operation() = default;
  ~Operation() = default;
  // The most derived class (Op<Impl>) calls this first in its destructor, while everything the kernel may
  // still touch is alive.
  void retire() noexcept;
  // For operations that drive their own completions (multishot): submit on the current reactor and count
  // as in flight until settled(), so that retire() leaves the submission to the backend (Leftovers).
  void submit_on_current_reactor();
  void settled() noexcept { state_ = State::done; }
  // Whether a deadline or a stop may end the operation before the kernel finishes it.
  bool can_end_early() const noexcept { return has_deadline() || (token_ != nullptr && token_->stop_possible()); }
  // Operations are reactor-affine: submitted, completed, cancelled and destroyed on one reactor's thread.
  static Reactor& reactor() noexcept;

 private:
  // (The small members come first: they fill CancelHook's tail padding, a few bytes per connection.)
  enum class State : std::uint8_t { idle, in_flight, done };
  State state_ = State::idle;
  bool cancel_requested_ = false;
  int res_ = 0;

 protected:
  Clock::time_point deadline_ = Clock::time_point::max();
  const std::stop_token* token_ = nullptr;
  // Who awaits: resumed on completion. Multishot operations, which complete many times, use it as they
  // see fit.
  std::coroutine_handle<> waiter_;

 private:
  bool start(std::coroutine_handle<> waiter);
  void cancel_on_home() noexcept override;
  void resume_after_cancel() noexcept override { waiter_.resume(); }

  std::uint64_t submission_ = 0;
};

// The awaitable form of an operation: co_await Op<Impl>(args...). Being the most derived class, it can
// retire the operation before any member of Impl (a buffer, an address the kernel writes) is destroyed.
template <class Impl>
class Op final : public Impl {
 public:
  using Impl::Impl;
  Op() = default;
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;
  ~Op() { this->retire(); }

  class Ref;
  // Modifiers, applied before co_await: co_await read(fd, buf).timeout(1s).
  // Fails the operation with -ETIMEDOUT if it has not completed by `when`.
  Ref deadline(Clock::time_point when) noexcept {
    this->deadline_ = when;
    return Ref(*this);
  }
  Ref timeout(Clock::duration d) noexcept { return deadline(Clock::now() + d); }
  // Cancels the operation (-ECANCELED) when `token` is stopped, instead of the task's ambient token.
  Ref stop_token(std::stop_token token) noexcept {
    own_token_ = std::move(token);
    this->token_ = &own_token_;
    return Ref(*this);
  }

  // What a modifier returns: awaits the operation in place (the kernel knows its address; GCC 12 would
  // copy an awaitable returned by reference), and takes further modifiers.
  class Ref {
   public:
    explicit Ref(Op& op) noexcept : op_(&op) {}
    Ref deadline(Clock::time_point when) noexcept { return op_->deadline(when); }
    Ref timeout(Clock::duration d) noexcept { return op_->timeout(d); }
    Ref stop_token(std::stop_token token) noexcept { return op_->stop_token(std::move(token)); }
    bool await_ready() const noexcept { return op_->await_ready(); }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> waiter) {
      return op_->await_suspend(waiter);
    }
    decltype(auto) await_resume() { return op_->await_resume(); }

   private:
    Op* op_;
  };

 private:
  std::stop_token own_token_;  // set by .stop_token(): here, not in every Operation
};

}  // namespace corio
