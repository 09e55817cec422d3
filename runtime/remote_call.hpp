// The machinery behind submit_to() and run_blocking(): a call whose result is produced on another thread
// and handed back to the awaiting coroutine on its own reactor. One heap allocation per call (the shared
// CallState); the awaiter may be destroyed before the result arrives, the producer may give up, and the
// home reactor may shut down first: whoever lets go last frees the state. A stop of the awaiting task
// crosses over: it stops the task running on the other reactor (submit_to), or releases the awaiter at
// once and drops the blocking job's result when it comes (run_blocking).
#pragma once
#include <atomic>
#include <coroutine>
#include <exception>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <variant>

#include "corio/runtime/cancel_hook.hpp"
#include "corio/runtime/message.hpp"
#include "corio/runtime/reactor.hpp"
#include "corio/runtime/timer_queue.hpp"

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

// The awaiting side of a call, told on its home reactor that the result is there.
class CallAwaiter {
 public:
  virtual void arrived() noexcept = 0;

 protected:
  ~CallAwaiter() = default;
};

template <class R>
class CallState final : public Message {
 public:
  CallState(Reactor& home, CallAwaiter& awaiter) noexcept : home_(home), awaiter_(&awaiter) {}

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
  // The producer's stop token: stopped when the awaiter is (once enable_stop() was called).
  std::stop_token stop_token() const noexcept { return stop_.get_token(); }

  // Home side.
  void enable_stop() { stop_ = std::stop_source(); }
  void request_stop() noexcept { stop_.request_stop(); }
  void run() noexcept override {
    CallAwaiter* awaiter = awaiter_;
    release();
    if (awaiter != nullptr) awaiter->arrived();
  }
  void discard() noexcept override { release(); }
  // The awaiter is gone (destroyed, or released by a stop): a result that comes later is dropped.
  void abandon() noexcept {
    awaiter_ = nullptr;
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
  CallAwaiter* awaiter_;
  std::stop_source stop_{std::nostopstate};  // no shared state unless the awaiter can be stopped
  std::optional<Stored> value_;
  std::exception_ptr error_;
};

// What a stop of the awaiting task does to a call in flight.
enum class StopMode {
  forward,  // stops the producer (a task on another reactor), then waits for what it returns
  release,  // resumes the awaiter at once with "stopped"; the producer's late result is dropped
};

// Awaits a CallState<R> that `launch(state)` sends off to its producer. With StopMode::release it yields
// std::optional<R> (bool for void): empty (false) when stopped first.
template <class R, class Launch, StopMode kStopMode>
class [[nodiscard]] RemoteCall final : private CallAwaiter, private CancelHook, private TimerEntry {
 public:
  explicit RemoteCall(Launch launch) : launch_(std::move(launch)) {}
  RemoteCall(const RemoteCall&) = delete;
  RemoteCall& operator=(const RemoteCall&) = delete;
  ~RemoteCall() {
    detach();
    if (TimerEntry::armed()) home_->timers().disarm(*this);
    if (state_ != nullptr) {
      if constexpr (kStopMode == StopMode::forward) state_->request_stop();  // nobody waits for it now
      state_->abandon();
    }
  }

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> waiter) {
    const std::stop_token* token = nullptr;
    if constexpr (std::is_base_of_v<PromiseBase, P>) token = &waiter.promise().stop_token;
    if (token != nullptr && token->stop_requested()) {
      stopped_ = true;
      if constexpr (kStopMode == StopMode::release) return false;  // never started
    }
    home_ = Reactor::current();
    waiter_ = waiter;
    auto* state = new CallState<R>(*home_, *this);
    try {
      if (kStopMode == StopMode::forward && token != nullptr && token->stop_possible()) {
        state->enable_stop();
        if (stopped_) state->request_stop();
      }
      launch_(state);
    } catch (...) {
      state->release();  // ours; a launcher that fails after taking the producer's share drops that one
      throw;
    }
    state_ = state;
    if (token != nullptr && !stopped_) watch(*token, *home_);
    return true;
  }
  auto await_resume() {
    if constexpr (kStopMode == StopMode::release) {
      using Out = std::conditional_t<std::is_void_v<R>, bool, std::optional<R>>;
      if (stopped_) return Out{};
      if constexpr (std::is_void_v<R>) {
        take();
        return true;
      } else {
        return Out(take());
      }
    } else {
      return take();
    }
  }

 private:
  R take() {
    struct Release {
      CallState<R>* s;
      ~Release() { s->release(); }
    } release{std::exchange(state_, nullptr)};
    return release.s->take();
  }
  void arrived() noexcept override {
    if (unwatch()) waiter_.resume();
  }
  void cancel_on_home() noexcept override {
    if (state_ == nullptr) return;
    if constexpr (kStopMode == StopMode::forward) {
      state_->request_stop();  // the producer's operations and sleeps end; its result comes back as usual
    } else {
      stopped_ = true;
      std::exchange(state_, nullptr)->abandon();
      // Not resumed from here (we may be inside request_stop()): on the next loop turn.
      home_->timers().arm(*this, Clock::time_point::min());
    }
  }
  void resume_after_cancel() noexcept override { waiter_.resume(); }
  void fire() noexcept override { waiter_.resume(); }

  Launch launch_;
  CallState<R>* state_ = nullptr;
  Reactor* home_ = nullptr;
  std::coroutine_handle<> waiter_;
  bool stopped_ = false;
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

// The producer's share of a CallState, held by the producing task's frame as a parameter: a frame destroyed
// before it delivers, even one never started (its reactor stopped with the call still queued), drops it.
template <class R>
class ProducerShare {
 public:
  explicit ProducerShare(CallState<R>* state) noexcept : state_(state) {}
  ProducerShare(ProducerShare&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  ProducerShare(const ProducerShare&) = delete;
  ProducerShare& operator=(const ProducerShare&) = delete;
  ProducerShare& operator=(ProducerShare&&) = delete;
  ~ProducerShare() {
    if (state_ != nullptr) state_->drop();
  }
  CallState<R>* operator->() const noexcept { return state_; }
  void deliver() noexcept { std::exchange(state_, nullptr)->deliver(); }

 private:
  CallState<R>* state_;
};

// Produces a CallState's result by running `fn` (or the task it returns) on the current reactor.
template <class R, class F>
task<void> produce_remotely(F fn, ProducerShare<R> state) {
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
  state.deliver();
}

}  // namespace corio::detail
