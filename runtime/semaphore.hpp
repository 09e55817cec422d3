// Semaphore: at most `permits` holders at a time, for tasks on one reactor; acquire() waits in FIFO order
// when none is free, and release() hands the permit straight to the first waiter, so a late try_acquire()
// never overtakes a waiter and the bound holds at every instant.
//   corio::Semaphore slots(8);
//   if (auto ec = co_await slots.acquire(); !ec) { co_await work(); slots.release(); }
// acquire() ends with ECANCELED when its task is stopped first (its token, with_timeout), or ETIMEDOUT at
// its deadline (acquire(Clock::now() + 1s)): no permit then.
// A permit handed to a waiter destroyed before it resumed goes back to the semaphore.
#pragma once
#include <coroutine>
#include <cstddef>
#include <system_error>

#include "corio/runtime/waiter.hpp"

namespace corio {

class Semaphore {
 public:
  explicit Semaphore(std::size_t permits) noexcept : available_(permits) {}
  ~Semaphore() { waiters_.wake_all(-ECANCELED); }
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  bool try_acquire() noexcept {
    if (available_ == 0 || !waiters_.empty()) return false;
    --available_;
    return true;
  }
  void release(std::size_t n = 1) noexcept {
    for (; n > 0 && !waiters_.empty(); --n) waiters_.wake_front(0);
    available_ += n;
  }
  std::size_t available() const noexcept { return available_; }

  class [[nodiscard]] Acquire final : private detail::Waiter {
   public:
    Acquire(Semaphore& s, Clock::time_point deadline) noexcept : sem_(s) { set_deadline(deadline); }
    ~Acquire() {
      if (engaged() && withdraw() && result() == 0) sem_.release();
    }
    bool await_ready() noexcept { return sem_.try_acquire(); }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      return park_unless_ended(sem_.waiters_, h);
    }
    std::error_code await_resume() const noexcept { return error(); }

   private:
    Semaphore& sem_;
  };
  // Ends with ETIMEDOUT (no permit) if none came by `deadline`.
  Acquire acquire(Clock::time_point deadline = Clock::time_point::max()) noexcept { return Acquire(*this, deadline); }

 private:
  detail::WaitList waiters_;
  std::size_t available_;
};

}  // namespace corio
