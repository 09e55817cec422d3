// task<T>: a lazy, move-only coroutine. It starts when awaited, hands control to its awaiter by symmetric
// transfer (no stack growth however deep the chain), and rethrows its exception in the awaiter.
//   task<int> answer() { co_return 42; }   ...   int v = co_await answer();
// Each task carries the stop token of its awaiter (the ambient cancellation that operations observe).
#pragma once
#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "corio/runtime/frame_allocator.hpp"

namespace corio {

template <class T = void>
class task;

namespace detail {

struct PromiseBase;

// Told when a task it owns (own()) ends, in place of an awaiter: it takes the task's exception, if any,
// destroys the frame and returns the coroutine to run next (noop_coroutine() for none). net::Server's
// connections are owned so: the handler's frame is the only one a connection keeps.
class TaskOwner {
 public:
  virtual std::coroutine_handle<> task_ended(PromiseBase& task) noexcept = 0;

 protected:
  ~TaskOwner() = default;
};

// What every corio coroutine frame holds besides its result.
struct PromiseBase {
  std::coroutine_handle<> continuation;  // resumed when this task ends; null when nobody awaits it
  std::stop_token stop_token;            // ambient cancellation, inherited from the awaiter
  std::exception_ptr exception;
  // A task nobody awaits is either detached (spawn, a scope's child: linked in a TaskList, so that whoever
  // holds the list can destroy it; `self` set) or owned (`owner` told when it ends; `self` null).
  union {
    PromiseBase* detached_prev = nullptr;
    TaskOwner* owner;
  };
  PromiseBase* detached_next = nullptr;
  std::coroutine_handle<> self;  // set for detached tasks only

  std::suspend_always initial_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { exception = std::current_exception(); }

  static void* operator new(std::size_t size) { return allocate_frame(size); }
  static void operator delete(void* p, std::size_t size) noexcept { free_frame(p, size); }
};

// Task frames that no awaiter owns (a reactor's detached tasks, a scope's children), linked through their
// promises so that whoever holds the list can destroy what is left.
class TaskList {
 public:
  void push(PromiseBase& p, std::coroutine_handle<> h) noexcept {
    p.self = h;
    p.detached_prev = nullptr;
    p.detached_next = head_;
    if (head_ != nullptr) head_->detached_prev = &p;
    head_ = &p;
    ++size_;
  }
  void remove(PromiseBase& p) noexcept {
    if (p.detached_prev != nullptr) p.detached_prev->detached_next = p.detached_next;
    else head_ = p.detached_next;
    if (p.detached_next != nullptr) p.detached_next->detached_prev = p.detached_prev;
    p.detached_prev = p.detached_next = nullptr;
    --size_;
  }
  // Destroys every frame still listed (each leaves the list first).
  void destroy_all() noexcept {
    while (head_ != nullptr) {
      std::coroutine_handle<> h = head_->self;
      remove(*head_);
      h.destroy();
    }
  }
  std::size_t size() const noexcept { return size_; }

 private:
  PromiseBase* head_ = nullptr;
  std::size_t size_ = 0;
};

// Ends a detached task: reports an escaped exception, unlinks it from its reactor and frees the frame.
void finish_detached(PromiseBase& promise) noexcept;
// Reports on stderr an exception that escaped `what` ("detached task"), naming the reactor.
void report_escaped(const std::exception_ptr& e, const char* what) noexcept;

struct FinalAwaiter {
  bool await_ready() const noexcept { return false; }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
    PromiseBase& p = h.promise();
    if (p.continuation) return p.continuation;
    if (!p.self) return p.owner->task_ended(p);
    finish_detached(p);
    return std::noop_coroutine();
  }
  void await_resume() const noexcept {}
};

template <class T>
struct Promise : PromiseBase {
  std::optional<T> value;
  task<T> get_return_object() noexcept;
  FinalAwaiter final_suspend() const noexcept { return {}; }
  template <class U>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value.emplace(std::forward<U>(v));
  }
  T take() {
    if (exception) std::rethrow_exception(exception);
    return std::move(*value);
  }
};

template <>
struct Promise<void> : PromiseBase {
  task<void> get_return_object() noexcept;
  FinalAwaiter final_suspend() const noexcept { return {}; }
  void return_void() const noexcept {}
  void take() const {
    if (exception) std::rethrow_exception(exception);
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] task {
 public:
  static_assert(!std::is_reference_v<T>, "task<T&> is not supported: return a pointer or std::reference_wrapper");
  using promise_type = detail::Promise<T>;
  using handle_type = std::coroutine_handle<promise_type>;

  task() noexcept = default;
  explicit task(handle_type h) noexcept : handle_(h) {}
  task(task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      if (handle_) handle_.destroy();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() {
    if (handle_) handle_.destroy();
  }

  bool valid() const noexcept { return static_cast<bool>(handle_); }
  // Gives this task its own stop token instead of inheriting its awaiter's (with_timeout uses this).
  void set_stop_token(std::stop_token token) noexcept { handle_.promise().stop_token = std::move(token); }
  handle_type release() noexcept { return std::exchange(handle_, {}); }

  struct Awaiter {
    handle_type handle;
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> awaiter) noexcept {
      promise_type& p = handle.promise();
      p.continuation = awaiter;
      if constexpr (std::is_base_of_v<detail::PromiseBase, P>) {
        if (!p.stop_token.stop_possible()) p.stop_token = awaiter.promise().stop_token;
      }
      return handle;
    }
    T await_resume() { return handle.promise().take(); }
  };
  Awaiter operator co_await() && noexcept { return Awaiter{handle_}; }
  Awaiter operator co_await() & noexcept { return Awaiter{handle_}; }

 private:
  handle_type handle_;
};

template <class T>
task<T> detail::Promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline task<void> detail::Promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}

namespace detail {
// Hands `t` to `owner`, stopped by `token`: nobody awaits it; resume the handle to start it. Should the owner
// go before the task ends, it destroys the frame through the handle.
template <class T>
std::coroutine_handle<> own(task<T> t, TaskOwner& owner, std::stop_token token) noexcept {
  auto h = t.release();
  PromiseBase& p = h.promise();
  p.owner = &owner;
  p.stop_token = std::move(token);
  return h;
}
}  // namespace detail

// Awaitable that yields the calling task's ambient stop token.
struct CurrentStopToken {
  std::stop_token token;
  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    token = h.promise().stop_token;
    return false;
  }
  std::stop_token await_resume() noexcept { return std::move(token); }
};
inline CurrentStopToken current_stop_token() noexcept { return {}; }

}  // namespace corio
