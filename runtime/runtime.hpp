// Runtime: N reactors, one per thread, each pinned to a CPU (default: one per CPU the process may run on).
//   corio::Runtime rt;                                 // or Runtime({.reactors = 2, .cpus = {0, 1}})
//   int v = rt.run(main_task());                       // runs on reactor 0, blocks until it ends
//   co_await corio::submit_to(1, [] { return 42; });   // runs on reactor 1, result back here
//   co_await corio::submit_to(1, some_task());         // or a task, started on reactor 1
//   std::optional<int> r = co_await corio::run_blocking([] { return ::fsync(fd); });  // empty if stopped
#pragma once
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "corio/runtime/backend.hpp"
#include "corio/runtime/blocking_pool.hpp"
#include "corio/runtime/reactor.hpp"
#include "corio/runtime/remote_call.hpp"
#include "corio/runtime/task.hpp"

namespace corio {

struct RuntimeOptions {
  unsigned reactors = 0;       // 0: one per CPU in the process's affinity mask
  std::vector<int> cpus;       // reactor i runs on cpus[i % size]; empty: the affinity mask's CPUs
  bool pin = true;             // pin each reactor thread to its CPU
  unsigned blocking_threads = 4;
  BackendOptions backend;
};

class Runtime {
 public:
  // Starts the reactors, after raising the soft RLIMIT_NOFILE to the hard limit (and ignoring SIGPIPE if
  // it has its default action). Throws std::system_error
  // naming what failed (ring setup, pinning).
  explicit Runtime(RuntimeOptions options = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  unsigned size() const noexcept { return static_cast<unsigned>(reactors_.size()); }
  Reactor& reactor(unsigned id) { return *reactors_.at(id); }
  // The CPU reactor `id` is pinned to (-1 when not pinned).
  int cpu_of(unsigned id) const { return cpus_.at(id); }
  BlockingPool& blocking_pool() noexcept { return *blocking_; }

  // Runs `main` on reactor 0 and blocks the calling (non-reactor) thread until it ends; returns its value
  // or rethrows its exception.
  template <class T>
  T run(task<T> main);

  // Stops every reactor (their suspended tasks are destroyed) and joins the threads. Idempotent. Call
  // from outside the reactors; from a reactor, use request_stop(). Messages posted afterwards are
  // dropped when the runtime is destroyed.
  void stop();
  void request_stop() noexcept;

 private:
  void start_reactor(unsigned id, const BackendOptions& backend, std::promise<void>& ready);
  template <class T>
  static task<void> run_main(task<T> main, std::shared_ptr<std::promise<T>> done);

  std::vector<std::unique_ptr<Reactor>> reactors_;
  std::vector<int> cpus_;
  std::vector<std::thread> threads_;
  std::unique_ptr<BlockingPool> blocking_;
};

template <class T>
task<void> Runtime::run_main(task<T> main, std::shared_ptr<std::promise<T>> done) {
  struct BreakUnlessDone {
    std::promise<T>* done;
    ~BreakUnlessDone() {
      if (done != nullptr) {
        done->set_exception(std::make_exception_ptr(std::runtime_error("corio: runtime stopped before the main task ended")));
      }
    }
  } guard{done.get()};
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(main);
      done->set_value();
    } else {
      done->set_value(co_await std::move(main));
    }
  } catch (...) {
    done->set_exception(std::current_exception());
  }
  guard.done = nullptr;
}

template <class T>
T Runtime::run(task<T> main) {
  if (Reactor::current() != nullptr) throw std::logic_error("corio: Runtime::run called from a reactor thread");
  // Shared: the main task may still be unwinding on reactor 0 when this thread has its result.
  auto done = std::make_shared<std::promise<T>>();
  std::future<T> result = done->get_future();
  reactor(0).post(new detail::SpawnMessage(run_main(std::move(main), done)));
  return result.get();
}

// Runs `fn` on reactor `id` of the current runtime and yields its result (or the result of the task it
// returns) back on the calling reactor; an exception it throws is rethrown here. Stopping the caller (its
// token, with_timeout) stops the task on reactor `id` too, and its result still comes back.
template <class F>
auto submit_to(unsigned id, F fn) {
  using R = detail::call_result_t<F>;
  Reactor& target = Reactor::current()->runtime()->reactor(id);
  auto launch = [&target, fn = std::move(fn)](detail::CallState<R>* state) mutable {
    task<void> remote = detail::produce_remotely<R>(std::move(fn), detail::ProducerShare<R>(state));
    remote.set_stop_token(state->stop_token());
    target.post(new detail::SpawnMessage(std::move(remote)));
  };
  return detail::RemoteCall<R, decltype(launch), detail::StopMode::forward>(std::move(launch));
}

// Runs the task `t` (created here, not yet started) on reactor `id`; its result comes back here.
template <class T>
auto submit_to(unsigned id, task<T> t) {
  return submit_to(id, [t = std::move(t)]() mutable { return std::move(t); });
}

// Runs the blocking call `fn` on the runtime's blocking pool and resumes on the calling reactor with its
// result as std::optional (bool for a void fn): empty (false) when the caller was stopped first. A stop
// releases the caller at once; the call itself cannot be interrupted, and its result is dropped.
template <class F>
auto run_blocking(F fn) {
  using R = std::invoke_result_t<F&>;
  struct Job final : BlockingPool::Job {
    Job(F f, detail::ProducerShare<R> s) : fn(std::move(f)), state(std::move(s)) {}
    void run() noexcept override {
      state->set_from(fn);
      state.deliver();
    }
    F fn;
    detail::ProducerShare<R> state;  // dropped with a job never run (the pool shut down, or refused it)
  };
  BlockingPool& pool = Reactor::current()->runtime()->blocking_pool();
  auto launch = [&pool, fn = std::move(fn)](detail::CallState<R>* state) mutable {
    pool.post(std::make_unique<Job>(std::move(fn), detail::ProducerShare<R>(state)));
  };
  return detail::RemoteCall<R, decltype(launch), detail::StopMode::release>(std::move(launch));
}

}  // namespace corio
