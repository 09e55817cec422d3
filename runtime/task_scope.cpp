#include "runtime/task_scope.hpp"

#include <stdexcept>

#include "runtime/reactor.hpp"

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
  while (children_ != nullptr) {
    std::coroutine_handle<> h = children_->self;
    unlink(*children_);
    h.destroy();
  }
}

void TaskScope::adopt(detail::ChildTask child) {
  if (Reactor::current() != home_) throw std::logic_error("corio: TaskScope::spawn from another reactor");
  auto h = child.release();
  detail::ChildPromise& p = h.promise();
  p.self = h;
  p.detached_next = children_;
  if (children_ != nullptr) children_->detached_prev = &p;
  children_ = &p;
  ++size_;
  // The child may end inside; `this` is not touched after (its parent may be gone by then).
  detail::ChildTask::start(h, *this, 0, stop_.get_token());
}

void TaskScope::unlink(detail::PromiseBase& p) noexcept {
  if (p.detached_prev != nullptr) p.detached_prev->detached_next = p.detached_next;
  else children_ = p.detached_next;
  if (p.detached_next != nullptr) p.detached_next->detached_prev = p.detached_prev;
  p.detached_prev = p.detached_next = nullptr;
  --size_;
}

std::coroutine_handle<> TaskScope::child_ended(detail::ChildPromise& child) noexcept {
  if (child.exception) {
    ++failures_;
    if (!error_) error_ = child.exception;
    stop_.request_stop();  // the siblings' cancellations resume them later, never inside this call
  }
  std::coroutine_handle<> h = child.self;
  unlink(child);
  std::coroutine_handle<> next = size_ == 0 && joiner_ ? std::exchange(joiner_, {}) : std::noop_coroutine();
  // Last: the frame's parameters may own this scope (a child keeping its session alive).
  h.destroy();
  return next;
}

}  // namespace corio
