#include "corio/runtime/operation.hpp"

#include <unistd.h>

#include <cerrno>

#include "corio/runtime/reactor.hpp"

namespace corio {

Reactor& Operation::reactor() noexcept { return *Reactor::current(); }

bool Operation::start(std::coroutine_handle<> waiter) {
  if (token_ != nullptr && token_->stop_requested()) {
    res_ = -ECANCELED;
    return false;
  }
  waiter_ = waiter;
  submit_on_current_reactor();
  if (token_ != nullptr) watch(*token_, reactor());
  return true;
}

void Operation::submit_on_current_reactor() {
  reactor().backend().submit(*this);
  state_ = State::in_flight;
}

void Operation::complete(int res, std::uint32_t) noexcept {
  state_ = State::done;
  if (cancel_requested_) {
    // Cancelled, yet the kernel finished first: a new descriptor nobody asked to keep would leak.
    if (returns_fd() && res >= 0) {
      ::close(res);
      res = -ECANCELED;
    }
  } else if (res == -ECANCELED && has_deadline() && Clock::now() >= deadline_) {
    res = -ETIMEDOUT;  // the deadline cancelled it (before it, a close of the descriptor did)
  }
  res_ = res;
  if (unwatch()) waiter_.resume();
}

void Operation::cancel_on_home() noexcept {
  if (state_ != State::in_flight || cancel_requested_) return;
  cancel_requested_ = true;
  reactor().backend().cancel(*this);
}

void Operation::retire() noexcept {
  detach();
  if (state_ == State::in_flight) reactor().backend().abandon(*this, leftovers());
}

}  // namespace corio
