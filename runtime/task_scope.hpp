// TaskScope: a group of child tasks on one reactor that cannot outlive it (a "nursery").
//   corio::TaskScope scope;
//   for (auto& c : conns) scope.spawn(handle(std::move(c)));   // runs until its first suspension now
//   co_await scope.join();                                     // every child has ended
// Children share the scope's stop token: request_stop() (or a stop of the task awaiting join(), or of the
// parent token given to the constructor) stops them all, and join() still waits for each to unwind. A
// stopped scope stays stopped: children spawned later start stopped. The first exception a child throws
// stops the others and is rethrown by join(); failures() counts them all. One task at a time may await
// join(). Leaving the scope without join() stops the children and destroys them there and then: their
// operations are cancelled, as for any destroyed frame, and none is left on this reactor. (A call a child
// had in flight elsewhere, submit_to or run_blocking, is told to stop but finishes on its own thread, so
// what it captured by reference must not live in the child's frame.) spawn() (reactor.hpp) stays for
// work that belongs to no one.
#pragma once
#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <stop_token>

#include "corio/runtime/child_task.hpp"

namespace corio {

class Reactor;

class TaskScope final : private detail::ChildGroup {
 public:
  TaskScope();
  // Stopped whenever `parent` is (the spawning task's token: co_await current_stop_token()), not only
  // while that task is in join().
  explicit TaskScope(const std::stop_token& parent);
  ~TaskScope();
  TaskScope(const TaskScope&) = delete;
  TaskScope& operator=(const TaskScope&) = delete;

  // Starts `t` as a child, on this scope's reactor (throws std::logic_error from any other). Its value, if
  // any, is dropped.
  template <class T>
  void spawn(task<T> t) {
    adopt(discard(std::move(t)));
  }
  // Starts a coroutine written as a child (serve() uses it: one frame less per connection). Like spawn(),
  // it runs the child now, until its first suspension, before returning: a child may take its arguments
  // by reference from the caller's frame until then (net::Server's connections do).
  void adopt(detail::ChildTask child);

  void request_stop() noexcept { stop_.request_stop(); }
  std::stop_token stop_token() const noexcept { return stop_.get_token(); }
  std::size_t size() const noexcept { return children_.size(); }
  std::size_t failures() const noexcept { return failures_; }

  class [[nodiscard]] Join {
   public:
    explicit Join(TaskScope& s) noexcept : scope_(s) {}
    Join(const Join&) = delete;
    Join& operator=(const Join&) = delete;
    ~Join() {
      if (scope_.joiner_ == me_) scope_.joiner_ = {};  // destroyed while joining (its task was)
    }
    bool await_ready() const noexcept { return scope_.size() == 0; }
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
      if (scope_.joiner_) throw std::logic_error("corio: TaskScope::join() awaited by two tasks at once");
      scope_.joiner_ = me_ = h;
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
    std::coroutine_handle<> me_;
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

  Reactor* home_;
  detail::TaskList children_;
  std::size_t failures_ = 0;
  std::exception_ptr error_;
  std::coroutine_handle<> joiner_;
  std::stop_source stop_;
  std::optional<std::stop_callback<detail::StopRelay>> parent_relay_;
};

}  // namespace corio
