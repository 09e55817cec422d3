// Timers on the current reactor: sleep_for / sleep_until, and with_timeout, which cancels a whole task
// (through its ambient stop token) when its time is up.
//   if (auto r = co_await with_timeout(2s, fetch())) use(*r); else /* timed out */;
// Timers live in the reactor's heap, not the kernel: 100,000 pending sleeps are 100,000 heap entries.
#pragma once
#include <chrono>
#include <coroutine>
#include <optional>
#include <stop_token>
#include <system_error>

#include "corio/runtime/cancel_hook.hpp"
#include "corio/runtime/task.hpp"
#include "corio/runtime/timer_queue.hpp"

namespace corio {

class Reactor;

// co_await sleep_until(t): std::error_code{} when the time came, ECANCELED if the task was stopped first.
class [[nodiscard]] SleepAwaiter final : private TimerEntry, private CancelHook {
 public:
  explicit SleepAwaiter(Clock::time_point when) noexcept : when_(when) {}
  ~SleepAwaiter();

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> waiter) {
    const std::stop_token* token = nullptr;
    if constexpr (std::is_base_of_v<detail::PromiseBase, P>) token = &waiter.promise().stop_token;
    return start(waiter, token);
  }
  std::error_code await_resume() const noexcept {
    return cancelled_ ? std::make_error_code(std::errc::operation_canceled) : std::error_code{};
  }

 private:
  bool start(std::coroutine_handle<> waiter, const std::stop_token* token);
  void fire() noexcept override;
  void cancel_on_home() noexcept override;
  void resume_after_cancel() noexcept override { waiter_.resume(); }

  Clock::time_point when_;
  std::coroutine_handle<> waiter_;
  Reactor* reactor_ = nullptr;
  bool cancelled_ = false;
};

inline SleepAwaiter sleep_until(Clock::time_point when) noexcept { return SleepAwaiter(when); }
inline SleepAwaiter sleep_for(Clock::duration d) noexcept { return SleepAwaiter(Clock::now() + d); }

namespace detail {
// with_timeout's scope: a stop source that the outer token and an alarm at `when` both trigger.
class TimeoutScope final : private TimerEntry {
 public:
  TimeoutScope(std::stop_token outer, Clock::time_point when);
  ~TimeoutScope();
  std::stop_token token() const noexcept { return source_.get_token(); }
  bool expired() const noexcept { return expired_; }

 private:
  struct Relay {
    std::stop_source* source;
    void operator()() const noexcept { source->request_stop(); }
  };
  void fire() noexcept override;
  std::stop_source source_;
  std::stop_callback<Relay> relay_;
  Reactor* reactor_;
  bool expired_ = false;
};
}  // namespace detail

// Runs `t`; if it has not finished `d` from now, stops it (its operations end with ECANCELED, its sleeps
// wake) and waits for it to unwind. Returns its value, or nullopt when the deadline passed.
template <class T>
task<std::optional<T>> with_timeout(Clock::duration d, task<T> t) {
  detail::TimeoutScope scope(co_await current_stop_token(), Clock::now() + d);
  t.set_stop_token(scope.token());
  T value = co_await std::move(t);
  if (scope.expired()) co_return std::nullopt;
  co_return std::optional<T>(std::move(value));
}

// The task<void> form: true when `t` finished in time.
task<bool> with_timeout(Clock::duration d, task<void> t);

// Gives `t` an explicit stop token instead of the ambient one of whoever awaits it.
template <class T>
task<T> with_stop_token(std::stop_token token, task<T> t) {
  t.set_stop_token(std::move(token));
  return t;
}

}  // namespace corio
