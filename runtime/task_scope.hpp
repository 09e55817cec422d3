// TaskScope: a group of child tasks on one reactor that cannot outlive it (a "nursery").
//   corio::TaskScope scope;
//   for (auto& c : conns) scope.spawn(handle(std::move(c)));   // runs until its first suspension now
//   co_await scope.join();                                     // every child has ended
// Children share the scope's stop token: request_stop() (or a stop of the task awaiting join()) stops
// them all, and join() still waits for each to unwind. The first exception a child throws stops the
// others and is rethrown by join(); failures() counts them all. Leaving the scope without join()
// destroys the children still running there and then: their operations are cancelled, as for any
// destroyed frame, and none is left behind. spawn() (reactor.hpp) stays for work that belongs to no one.
#pragma once
#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <stop_token>

#include "runtime/child_task.hpp"

namespace corio {

class Reactor;

class TaskScope final : private detail::ChildGroup {
 public:
  TaskScope();
  ~TaskScope();
  TaskScope(const TaskScope&) = delete;
  TaskScope& operator=(const TaskScope&) = delete;

  // Starts `t` as a child, on this scope's reactor (throws std::logic_error from any other). Its value, if
  // any, is dropped.
  template <class T>
  void spawn(task<T> t) {
    adopt(discard(std::move(t)));
  }
  // Starts a coroutine written as a child (serve() uses it: one frame less per connection).
  void adopt(detail::ChildTask child);

  void request_stop() noexcept { stop_.request_stop(); }
  std::stop_token stop_token() const noexcept { return stop_.get_token(); }
  std::size_t size() const noexcept { return size_; }
  std::size_t failures() const noexcept { return failures_; }

  class [[nodiscard]] Join {
   public:
    explicit Join(TaskScope& s) noexcept : scope_(s) {}
    bool await_ready() const noexcept { return scope_.size_ == 0; }
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
      scope_.joiner_ = h;
      if (const std::stop_token* token = detail::stop_token_of(h); token != nullptr && token->stop_possible()) {
        relay_.emplace(*token, detail::StopRelay{&scope_.stop_});
      }
    }
    void await_resume() {
      relay_.reset();
      if (scope_.error_) std::rethrow_exception(std::exchange(scope_.error_, nullptr));
    }

   private:
    TaskScope& scope_;
    std::optional<std::stop_callback<detail::StopRelay>> relay_;
  };
  // Waits until every child has ended, those spawned meanwhile included; rethrows the first exception.
  Join join() noexcept { return Join(*this); }

 private:
  template <class T>
  static detail::ChildTask discard(task<T> t) {
    co_await std::move(t);
  }
  std::coroutine_handle<> child_ended(detail::ChildPromise& child) noexcept override;
  void unlink(detail::PromiseBase& p) noexcept;

  Reactor* home_;
  detail::PromiseBase* children_ = nullptr;  // linked through detached_prev / detached_next
  std::size_t size_ = 0;
  std::size_t failures_ = 0;
  std::exception_ptr error_;
  std::coroutine_handle<> joiner_;
  std::stop_source stop_;
};

}  // namespace corio
