// The machinery behind submit_to() and run_blocking(): a call whose result is produced on another thread
// and handed back to the awaiting coroutine on its own reactor. One heap allocation per call (the shared
// CallState); the awaiter may be destroyed before the result arrives, the producer may give up, and the
// home reactor may shut down first: whoever lets go last frees the state.
#pragma once
#include <atomic>
#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "runtime/message.hpp"
#include "runtime/reactor.hpp"

namespace corio::detail {

template <class T>
struct unwrap_task {
  using type = T;
};
template <class T>
struct unwrap_task<task<T>> {
  using type = T;
};
// What co_await submit_to(id, f) yields: f's result, or the result of the task f returns.
template <class F>
using call_result_t = typename unwrap_task<std::invoke_result_t<F&>>::type;

template <class R>
class CallState final : public Message {
 public:
  CallState(Reactor& home, std::coroutine_handle<> waiter) noexcept : home_(home), waiter_(waiter) {}

  // Producer side, any thread: store the outcome, then deliver() it or drop() the call.
  template <class F>
  void set_from(F&& produce) noexcept {
    try {
      if constexpr (std::is_void_v<R>) {
        std::forward<F>(produce)();
        value_.emplace();
      } else {
        value_.emplace(std::forward<F>(produce)());
      }
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  void set_error(std::exception_ptr e) noexcept { error_ = std::move(e); }
  void deliver() noexcept { home_.post(this); }
  void drop() noexcept { release(); }

  // Home side.
  void run() noexcept override {
    std::coroutine_handle<> waiter = waiter_;
    bool wanted = !abandoned_;
    release();
    if (wanted) waiter.resume();
  }
  void discard() noexcept override { release(); }
  void abandon() noexcept {
    abandoned_ = true;
    release();
  }
  R take() {
    if (error_) std::rethrow_exception(error_);
    if constexpr (!std::is_void_v<R>) return std::move(*value_);
  }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 private:
  using Stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
  std::atomic<int> refs_{2};  // the awaiter's and the producer's
  Reactor& home_;
  std::coroutine_handle<> waiter_;
  bool abandoned_ = false;
  std::optional<Stored> value_;
  std::exception_ptr error_;
};

// Awaits a CallState<R> that `launch(state)` sends off to its producer.
template <class R, class Launch>
class [[nodiscard]] RemoteCall {
 public:
  explicit RemoteCall(Launch launch) : launch_(std::move(launch)) {}
  RemoteCall(const RemoteCall&) = delete;
  RemoteCall& operator=(const RemoteCall&) = delete;
  ~RemoteCall() {
    if (state_ != nullptr) state_->abandon();
  }

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> waiter) {
    auto* state = new CallState<R>(*Reactor::current(), waiter);
    try {
      launch_(state);
    } catch (...) {
      state->release();  // ours; a launcher that fails after taking the producer's share drops that one
      throw;
    }
    state_ = state;
  }
  R await_resume() {
    struct Release {
      CallState<R>* s;
      ~Release() { s->release(); }
    } release{std::exchange(state_, nullptr)};
    return release.s->take();
  }

 private:
  Launch launch_;
  CallState<R>* state_ = nullptr;
};

// Runs a task detached on whichever reactor receives it.
class SpawnMessage final : public Message {
 public:
  explicit SpawnMessage(task<void> t) noexcept : task_(std::move(t)) {}
  void run() noexcept override {
    Reactor::current()->spawn(std::move(task_));
    delete this;
  }

 private:
  task<void> task_;
};

// Produces a CallState's result by running `fn` (or the task it returns) on the current reactor.
template <class R, class F>
task<void> produce_remotely(F fn, CallState<R>* state) {
  struct DropUnlessDelivered {
    CallState<R>* state;
    ~DropUnlessDelivered() {
      if (state != nullptr) state->drop();
    }
  } guard{state};
  try {
    if constexpr (std::is_same_v<std::invoke_result_t<F&>, task<R>>) {
      if constexpr (std::is_void_v<R>) {
        co_await fn();
        state->set_from([] {});
      } else {
        R value = co_await fn();
        state->set_from([&]() -> R { return std::move(value); });
      }
    } else {
      state->set_from(fn);
    }
  } catch (...) {
    state->set_error(std::current_exception());
  }
  guard.state = nullptr;
  state->deliver();
}

}  // namespace corio::detail
