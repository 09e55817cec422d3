#include "corio/runtime/time.hpp"

#include "corio/runtime/reactor.hpp"

namespace corio {

bool SleepAwaiter::start(std::coroutine_handle<> waiter, const std::stop_token* token) {
  if (token != nullptr && token->stop_requested()) {
    cancelled_ = true;
    return false;
  }
  waiter_ = waiter;
  reactor_ = Reactor::current();
  reactor_->timers().arm(*this, when_);
  if (token != nullptr) watch(*token, *reactor_);
  return true;
}

SleepAwaiter::~SleepAwaiter() {
  detach();
  if (armed()) reactor_->timers().disarm(*this);
}

void SleepAwaiter::fire() noexcept {
  if (unwatch()) waiter_.resume();
}

void SleepAwaiter::cancel_on_home() noexcept {
  if (!armed()) return;
  // Not resumed from here: we may be inside whoever called request_stop(). Fire on the next loop turn.
  cancelled_ = true;
  reactor_->timers().arm(*this, Clock::time_point::min());
}

detail::TimeoutScope::TimeoutScope(std::stop_token outer, Clock::time_point when)
    : relay_(std::move(outer), Relay{&source_}), reactor_(Reactor::current()) {
  reactor_->timers().arm(*this, when);
}

detail::TimeoutScope::~TimeoutScope() {
  if (armed()) reactor_->timers().disarm(*this);
}

void detail::TimeoutScope::fire() noexcept {
  expired_ = true;
  source_.request_stop();
}

task<bool> with_timeout(Clock::duration d, task<void> t) {
  detail::TimeoutScope scope(co_await current_stop_token(), Clock::now() + d);
  t.set_stop_token(scope.token());
  co_await std::move(t);
  co_return !scope.expired();
}

}  // namespace corio
