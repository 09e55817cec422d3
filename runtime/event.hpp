// Event: a flag that tasks on one reactor wait for. set() wakes every waiter (on a later loop turn);
// waits after that return at once until reset().
//   corio::Event ready;   ...   std::error_code ec = co_await ready.wait();   ...   ready.set();
// A wait ends with ECANCELED when its task is stopped first (its token, with_timeout), with ETIMEDOUT at
// its deadline (wait(Clock::now() + 1s)). Destroying the event wakes its waiters with ECANCELED.
#pragma once
#include <coroutine>
#include <system_error>

#include "corio/runtime/waiter.hpp"

namespace corio {

class Event {
 public:
  Event() = default;
  explicit Event(bool set) noexcept : set_(set) {}
  ~Event() { waiters_.wake_all(-ECANCELED); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void set() noexcept {
    set_ = true;
    waiters_.wake_all(0);
  }
  void reset() noexcept { set_ = false; }
  bool is_set() const noexcept { return set_; }

  class [[nodiscard]] Wait final : private detail::Waiter {
   public:
    Wait(Event& e, Clock::time_point deadline) noexcept : event_(e) { set_deadline(deadline); }
    ~Wait() {
      if (engaged()) withdraw();
    }
    bool await_ready() const noexcept { return event_.set_; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      return park_unless_ended(event_.waiters_, h);
    }
    std::error_code await_resume() const noexcept { return error(); }

   private:
    Event& event_;
  };
  // Ends with ETIMEDOUT if not set by `deadline`.
  Wait wait(Clock::time_point deadline = Clock::time_point::max()) noexcept { return Wait(*this, deadline); }

 private:
  detail::WaitList waiters_;
  bool set_ = false;
};

}  // namespace corio
