// Waiter and WaitList: what Event, Semaphore, Mutex and Channel park a coroutine on. A woken waiter
// resumes on its own reactor on a later loop turn, never inside the call that woke it, so waking is safe
// whatever the woken task does next. A stop of the waiter's task (its ambient token, with_timeout) takes it
// off the list and resumes it with -ECANCELED; a deadline of its own (the awaitable's .deadline(t) or
// .timeout(d)) that passes first, with -ETIMEDOUT. A list shared across reactors (SharedChannel) is guarded
// by a mutex the waiter is given; a wake from another reactor travels to the waiter's as a message.
#pragma once
#include <cerrno>
#include <coroutine>
#include <mutex>
#include <stop_token>
#include <system_error>
#include <type_traits>

#include "corio/runtime/cancel_hook.hpp"
#include "corio/runtime/task.hpp"
#include "corio/runtime/timer_queue.hpp"

namespace corio {
class Reactor;
}

namespace corio::detail {

class WaitList;

// Locks `m` unless it is null (a list used on one reactor only).
class MaybeLock {
 public:
  explicit MaybeLock(std::mutex* m) noexcept : m_(m) {
    if (m_ != nullptr) m_->lock();
  }
  ~MaybeLock() {
    if (m_ != nullptr) m_->unlock();
  }
  MaybeLock(const MaybeLock&) = delete;
  MaybeLock& operator=(const MaybeLock&) = delete;

 private:
  std::mutex* m_;
};

template <class P>
const std::stop_token* stop_token_of(std::coroutine_handle<P> h) noexcept {
  if constexpr (std::is_base_of_v<PromiseBase, P>) return &h.promise().stop_token;
  else return nullptr;
}

class Waiter : private CancelHook, private TimerEntry {
 public:
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  // 0 when woken normally, -ECANCELED when stopped, or what the waker passed (-EPIPE: closed).
  int result() const noexcept { return result_; }
  std::error_code error() const noexcept { return {-result_, std::generic_category()}; }

 protected:
  // `lock` guards the list this waiter parks on; nullptr when the list stays on one reactor.
  explicit Waiter(std::mutex* lock = nullptr) noexcept : lock_(lock) {}
  // A derived awaiter's destructor calls withdraw() first (under the lock): the base cannot.
  ~Waiter() { detach(); }

  std::mutex* lock() const noexcept { return lock_; }
  void set_deadline(Clock::time_point when) noexcept { deadline_ = when; }
  // await_suspend, under the lock, when the wait cannot end at once: true (result -ECANCELED or
  // -ETIMEDOUT) if the task is stopped already or the deadline has passed.
  bool ends_before_parking(const std::stop_token* token) noexcept {
    if (token != nullptr && token->stop_requested()) result_ = -ECANCELED;
    else if (deadline_ != Clock::time_point::max() && deadline_ <= Clock::now()) result_ = -ETIMEDOUT;
    else return false;
    return true;
  }
  // await_suspend: ends the await without parking, with `result`.
  void complete(int result) noexcept { result_ = result; }
  // await_suspend, under the lock: parks on `list`. Then, after unlocking, watch_stop().
  void park(WaitList& list, std::coroutine_handle<> h) noexcept;
  void watch_stop(const std::stop_token* token);
  // The whole await_suspend of a wait on a one-reactor list (no lock): parks unless it ends at once.
  template <class P>
  bool park_unless_ended(WaitList& list, std::coroutine_handle<P> h) {
    const std::stop_token* token = stop_token_of(h);
    if (ends_before_parking(token)) return false;
    park(list, h);
    watch_stop(token);
    return true;
  }
  // Whether the waiter may still be on a list or owed a resume: only then must the destructor lock.
  bool engaged() const noexcept { return engaged_; }
  // Destructor, under the lock: leaves the list, or cancels a wake still on its way. True when a wake
  // was on its way: whatever it brought (a permit, a value) is the caller's to give back.
  bool withdraw() noexcept;

 private:
  friend class WaitList;
  struct WakeMessage;
  void wake(int result) noexcept;  // under the lock, from WaitList
  void resume_now() noexcept;
  void cancel_on_home() noexcept override;
  void resume_after_cancel() noexcept override;
  void fire() noexcept override;

  std::mutex* lock_;
  WaitList* list_ = nullptr;
  Waiter* prev_ = nullptr;
  Waiter* next_ = nullptr;
  std::coroutine_handle<> handle_;
  Reactor* home_ = nullptr;
  WakeMessage* message_ = nullptr;  // a wake from another reactor, in flight
  Clock::time_point deadline_ = Clock::time_point::max();
  int result_ = 0;
  bool pending_ = false;            // woken or stopped, not yet resumed
  bool engaged_ = false;            // parked at some point and not yet resumed (home thread only)
};

// A FIFO of parked waiters. Every call is made under the waiters' lock.
class WaitList {
 public:
  WaitList() = default;
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;
  bool empty() const noexcept { return head_ == nullptr; }
  Waiter* front() const noexcept { return head_; }
  // Takes the first waiter off and resumes it (on its reactor, later) with `result`.
  void wake_front(int result) noexcept;
  void wake_all(int result) noexcept {
    while (!empty()) wake_front(result);
  }

 private:
  friend class Waiter;
  void push_back(Waiter& w) noexcept;
  void remove(Waiter& w) noexcept;
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
};

}  // namespace corio::detail
