#include "corio/runtime/task_scope.hpp"

#include <stdexcept>

#include "corio/runtime/reactor.hpp"

namespace corio {

TaskScope::TaskScope() : home_(Reactor::current()) {
  if (home_ == nullptr) throw std::logic_error("corio: a TaskScope needs a reactor thread");
}

TaskScope::TaskScope(const std::stop_token& parent) : TaskScope() {
  if (parent.stop_possible()) parent_relay_.emplace(parent, detail::StopRelay{&stop_});
}

TaskScope::~TaskScope() {
  // First: a child's call on another reactor (submit_to) is stopped, and unwinds there.
  stop_.request_stop();
  children_.destroy_all();
}

void TaskScope::adopt(detail::ChildTask child) {
  if (Reactor::current() != home_) throw std::logic_error("corio: TaskScope::spawn from another reactor");
  auto h = child.release();
  children_.push(h.promise(), h);
  // The child may end inside; `this` is not touched after (its parent may be gone by then).
  detail::ChildTask::start(h, *this, 0, stop_.get_token());
}

std::coroutine_handle<> TaskScope::child_ended(detail::ChildPromise& child) noexcept {
  if (child.exception) {
    ++failures_;
    if (!error_) error_ = child.exception;
    stop_.request_stop();  // the siblings' cancellations resume them later, never inside this call
  }
  std::coroutine_handle<> h = child.self;
  children_.remove(child);
  std::coroutine_handle<> next = children_.size() == 0 && joiner_ ? std::exchange(joiner_, {}) : std::noop_coroutine();
  // Last: the frame's parameters may own this scope (a child keeping its session alive).
  h.destroy();
  return next;
}

}  // namespace corio
