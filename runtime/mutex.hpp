// Mutex: a semaphore of one, for critical sections that span a co_await on one reactor. Waiters get the
// lock in FIFO order; lock() ends with ECANCELED (not locked) when its task is stopped first, ETIMEDOUT at its deadline.
//   if (auto ec = co_await m.lock(); !ec) { std::lock_guard g(m, std::adopt_lock); co_await update(); }
#pragma once
#include "corio/runtime/semaphore.hpp"

namespace corio {

class Mutex {
 public:
  Semaphore::Acquire lock(Clock::time_point deadline = Clock::time_point::max()) noexcept {
    return sem_.acquire(deadline);
  }
  bool try_lock() noexcept { return sem_.try_acquire(); }
  void unlock() noexcept { sem_.release(); }
  bool locked() const noexcept { return sem_.available() == 0; }

 private:
  Semaphore sem_{1};
};

}  // namespace corio
