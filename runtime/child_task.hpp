// The machinery under when_all, when_any and TaskScope: a ChildTask is a coroutine run on behalf of a group
// on the group's reactor, and tells the group when it ends (its exception, if any, in its promise). Join
// runs a fixed set of children and resumes its parent when the last one has ended.
#pragma once
#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <span>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <variant>

#include "corio/runtime/task.hpp"
#include "corio/runtime/waiter.hpp"

namespace corio::detail {

struct ChildPromise;
class ChildTask;

class ChildGroup {
 public:
  // `child` ended; returns the coroutine to run next (its parent, or noop_coroutine()).
  virtual std::coroutine_handle<> child_ended(ChildPromise& child) noexcept = 0;

 protected:
  ~ChildGroup() = default;
};

struct ChildPromise : PromiseBase {
  ChildGroup* group = nullptr;
  std::size_t index = 0;

  ChildTask get_return_object() noexcept;
  struct Final {
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<ChildPromise> h) noexcept {
      return h.promise().group->child_ended(h.promise());
    }
    void await_resume() const noexcept {}
  };
  Final final_suspend() const noexcept { return {}; }
  void return_void() const noexcept {}
};

// Owns a child's frame until started into a group that takes it (TaskScope) or ends with it (Join).
class ChildTask {
 public:
  using promise_type = ChildPromise;
  using handle_type = std::coroutine_handle<ChildPromise>;
  explicit ChildTask(handle_type h) noexcept : handle_(h) {}
  ChildTask(ChildTask&& o) noexcept : handle_(std::exchange(o.handle_, {})) {}
  ChildTask& operator=(ChildTask&&) = delete;
  ~ChildTask() {
    if (handle_) handle_.destroy();
  }
  handle_type handle() const noexcept { return handle_; }
  handle_type release() noexcept { return std::exchange(handle_, {}); }
  // Runs the child until its first suspension, as member `index` of `group`, stopped by `token`.
  static void start(handle_type h, ChildGroup& group, std::size_t index, std::stop_token token) {
    ChildPromise& p = h.promise();
    p.group = &group;
    p.index = index;
    p.stop_token = std::move(token);
    h.resume();
  }

 private:
  handle_type handle_;
};

inline ChildTask ChildPromise::get_return_object() noexcept {
  return ChildTask(std::coroutine_handle<ChildPromise>::from_promise(*this));
}

// What a child's value becomes in a group's result: void is std::monostate.
template <class T>
using child_result_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
ChildTask run_into(task<T> t, std::optional<child_result_t<T>>& out) {
  if constexpr (std::is_void_v<T>) {
    co_await std::move(t);
    out.emplace();
  } else {
    out.emplace(co_await std::move(t));
  }
}

// Requests a stop of `source` (the parent's stop reaching a group's children).
struct StopRelay {
  std::stop_source* source;
  void operator()() const noexcept { source->request_stop(); }
};

// co_await Join(policy, children): runs every child concurrently, stopping the others when one fails
// (all) or when the first ends (first), and resumes once every child has ended. A stop of the awaiting
// task stops the children.
class Join final : private ChildGroup {
 public:
  enum class Policy { all, first };
  static constexpr std::size_t kNone = ~std::size_t{0};

  Join(Policy policy, std::span<ChildTask> children) : children_(children), policy_(policy) {}

  bool await_ready() const noexcept { return children_.empty(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> parent) {
    parent_ = parent;
    if (const std::stop_token* token = stop_token_of(parent); token != nullptr && token->stop_possible()) {
      relay_.emplace(*token, StopRelay{&stop_});
    }
    pending_ = children_.size() + 1;  // held by this loop, so no child resumes the parent inside it
    for (std::size_t i = 0; i < children_.size(); ++i) {
      if (winner_ != kNone) {  // decided already (a child ended, or failed, at once): the rest never start
        pending_ -= children_.size() - i;
        break;
      }
      ChildTask::start(children_[i].handle(), *this, i, stop_.get_token());
    }
    return --pending_ != 0;
  }
  void await_resume() noexcept { relay_.reset(); }

  // The child that ended first (Policy::first), and the exception that ended the group, if any.
  std::size_t winner() const noexcept { return winner_; }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::coroutine_handle<> child_ended(ChildPromise& child) noexcept override {
    if (policy_ == Policy::first ? winner_ == kNone : child.exception && !error_) {
      winner_ = child.index;
      error_ = child.exception;
      stop_.request_stop();  // the siblings' cancellations resume them later, never inside this call
    }
    return --pending_ == 0 ? parent_ : std::noop_coroutine();
  }

  std::span<ChildTask> children_;
  Policy policy_;
  std::size_t pending_ = 0;
  std::size_t winner_ = kNone;
  std::exception_ptr error_;
  std::coroutine_handle<> parent_;
  std::stop_source stop_;
  std::optional<std::stop_callback<StopRelay>> relay_;
};

}  // namespace corio::detail
