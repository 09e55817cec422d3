#include "runtime/operation.hpp"

#include <unistd.h>

#include <cerrno>

#include "runtime/reactor.hpp"

namespace corio {

bool Operation::start(std::coroutine_handle<> waiter) {
  if (token_ != nullptr && token_->stop_requested()) {
    res_ = -ECANCELED;
    return false;
  }
  waiter_ = waiter;
  submit_on_current_reactor();
  if (token_ != nullptr) watch(*token_, *reactor_);
  return true;
}

void Operation::submit_on_current_reactor() {
  reactor_ = Reactor::current();
  reactor_->backend().submit(*this);
  state_ = State::in_flight;
}

void Operation::complete(int res, std::uint32_t flags) noexcept {
  state_ = State::done;
  flags_ = flags;
  if (cancel_requested_) {
    // Cancelled, yet the kernel finished first: a new descriptor nobody asked to keep would leak.
    if (returns_fd() && res >= 0) {
      ::close(res);
      res = -ECANCELED;
    }
  } else if (res == -ECANCELED && has_deadline()) {
    res = -ETIMEDOUT;  // the linked deadline cancelled it
  }
  res_ = res;
  if (unwatch()) waiter_.resume();
}

void Operation::discard(int res, std::uint32_t) noexcept {
  if (returns_fd() && res >= 0) ::close(res);
}

void Operation::cancel_on_home() noexcept {
  if (state_ != State::in_flight || cancel_requested_) return;
  cancel_requested_ = true;
  reactor_->backend().cancel(*this);
}

void Operation::retire() noexcept {
  detach();
  if (state_ == State::in_flight) reactor_->backend().abandon(*this);
}

}  // namespace corio
