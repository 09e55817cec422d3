// Reactor: one thread's event loop. It owns a backend (one io_uring), the thread's timers, its ready queue
// and its inbox of messages from other threads. Everything here runs on the reactor's own thread except
// post() and request_stop(), which any thread may call.
//   spawn(serve(conn));   // runs a detached task on the current reactor
#pragma once
#include <atomic>
#include <functional>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <vector>

#include "corio/runtime/backend.hpp"
#include "corio/runtime/message.hpp"
#include "corio/runtime/task.hpp"
#include "corio/runtime/timer_queue.hpp"

namespace corio {

class Runtime;

class Reactor {
 public:
  // Creates the backend: call on the thread that will run() it.
  Reactor(unsigned id, Runtime* runtime, const BackendOptions& options);
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // The reactor running on the calling thread, or nullptr.
  static Reactor* current() noexcept;

  unsigned id() const noexcept { return id_; }
  Runtime* runtime() const noexcept { return runtime_; }
  Backend& backend() noexcept { return *backend_; }
  TimerQueue& timers() noexcept { return timers_; }

  // Runs the loop until request_stop(), then destroys the detached tasks still suspended and waits for
  // every operation still in the kernel.
  void run();
  void request_stop() noexcept;

  // Runs `t` detached on this reactor, starting on the next loop turn.
  template <class T>
  void spawn(task<T> t) {
    auto h = t.release();
    adopt(h.promise(), h);
  }
  // Resumes `h` on the next loop turn.
  void schedule(std::coroutine_handle<> h) { ready_.push_back(h); }
  // Any thread: runs `m` on this reactor.
  void post(Message* m) noexcept;

  std::size_t detached_count() const noexcept { return detached_.size(); }
  // Runs `f` when the reactor stops, after its detached tasks are destroyed and before the operations
  // still in the kernel are waited for: per-reactor services (a resolver) end there, on this thread.
  void at_stop(std::function<void()> f) { at_stop_.push_back(std::move(f)); }
  // The fraction of the last ~100 ms this reactor's thread was on a CPU (its CPU time, the kernel's work
  // for it included, less busy polling that found nothing, read once per window); load shedding reads it. After a long sleep in the backend
  // (no turn ended the window), it is measured afresh. Call on the reactor's thread.
  double utilisation() const noexcept;
  // For metrics: loop turns, seconds since run() began and of them busy (this thread's CPU time, the
  // kernel's work for it included; call on the reactor's thread), messages run from other threads.
  std::uint64_t turns() const noexcept { return turns_; }
  double busy_seconds() const noexcept;
  double running_seconds() const noexcept;
  std::uint64_t messages() const noexcept { return messages_; }

 private:
  friend void detail::finish_detached(detail::PromiseBase&) noexcept;
  void adopt(detail::PromiseBase& p, std::coroutine_handle<> h);
  void run_ready();
  void run_messages() noexcept;
  void shutdown() noexcept;
  void wake() noexcept;
  bool spin(std::optional<std::chrono::nanoseconds>& timeout);
  Clock::duration busy_cpu() const noexcept;

  unsigned id_;
  Runtime* runtime_;
  std::unique_ptr<Backend> backend_;
  TimerQueue timers_;
  std::vector<std::coroutine_handle<>> ready_;
  std::vector<std::coroutine_handle<>> running_;
  detail::TaskList detached_;
  std::vector<std::function<void()>> at_stop_;
  MessageQueue inbox_;
  std::atomic<bool> wake_pending_{false};
  std::atomic<bool> stopping_{false};
  Clock::duration busy_poll_;
  std::atomic<bool> spinning_{false};  // busy polling: a post needs no wake-up
  Clock::duration spun_{};  // busy polling that found nothing: CPU time that is not work
  mutable Clock::duration busy_cpu_{};
  static Clock::duration thread_cpu_time() noexcept;
  Clock::time_point window_start_{};
  Clock::duration window_cpu_{};  // busy_cpu() at window_start_
  double utilisation_ = 0;
  std::uint64_t turns_ = 0;
  std::uint64_t messages_ = 0;
  Clock::time_point started_{};
  Clock::duration started_cpu_{};
};

// Runs `t` detached on the calling thread's reactor. An exception escaping it is reported on stderr with
// the reactor's id; it never stops the reactor.
template <class T>
void spawn(task<T> t) {
  Reactor::current()->spawn(std::move(t));
}

// Lets the other ready tasks and pending completions run, then resumes.
struct yield {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const { Reactor::current()->schedule(h); }
  void await_resume() const noexcept {}
};

}  // namespace corio
