#include "corio/runtime/reactor.hpp"

#include <algorithm>
#include <ctime>
#include <exception>

#include "corio/runtime/log.hpp"

namespace corio {

namespace {
thread_local Reactor* this_thread_reactor = nullptr;
}

Reactor::Reactor(unsigned id, Runtime* runtime, const BackendOptions& options)
    : id_(id), runtime_(runtime), backend_(make_backend(options)), busy_poll_(options.busy_poll) {}

Reactor::~Reactor() {
  while (Message* m = inbox_.pop()) m->discard();
}

Reactor* Reactor::current() noexcept { return this_thread_reactor; }

void Reactor::adopt(detail::PromiseBase& p, std::coroutine_handle<> h) {
  detached_.push(p, h);
  ready_.push_back(h);
}

void detail::report_escaped(const std::exception_ptr& e, const char* what) noexcept {
  const unsigned id = Reactor::current() != nullptr ? Reactor::current()->id() : ~0u;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log::write(log::Level::error, "reactor %u: %s ended with exception: %s", id, what, ex.what());
  } catch (...) {
    log::write(log::Level::error, "reactor %u: %s ended with a non-std exception", id, what);
  }
}

void detail::finish_detached(PromiseBase& p) noexcept {
  if (p.exception) report_escaped(p.exception, "detached task");
  Reactor::current()->detached_.remove(p);
  p.self.destroy();
}

void Reactor::post(Message* m) noexcept {
  inbox_.push(m);
  // Only the first post after the reactor drained its inbox needs to wake it, and only if it is not busy
  // polling: a spinning reactor sees wake_pending_ (spin() checks it again after it stops spinning).
  if (!wake_pending_.exchange(true) && !spinning_.load()) wake();
}

void Reactor::request_stop() noexcept {
  stopping_.store(true);
  wake();
}

void Reactor::wake() noexcept {
  Reactor* here = current();
  if (here == this) return;
  if (here != nullptr && here->backend_->wake_peer(*backend_)) return;
  backend_->wake();
}

void Reactor::run_ready() {
  // Tasks scheduled while these run wait for the next turn, after completions had a chance.
  running_.swap(ready_);
  for (std::coroutine_handle<> h : running_) h.resume();
  running_.clear();
}

void Reactor::run_messages() noexcept {
  if (!wake_pending_.load(std::memory_order_relaxed) || !wake_pending_.exchange(false)) return;
  while (Message* m = inbox_.pop()) {
    ++messages_;
    m->run();
  }
}

Clock::duration Reactor::thread_cpu_time() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// Spins are counted in wall time (no system call on the way to the work found): a preempted spin may count
// more than it cost, so the result is kept from going back.
Clock::duration Reactor::busy_cpu() const noexcept {
  busy_cpu_ = std::max(busy_cpu_, thread_cpu_time() - spun_);
  return busy_cpu_;
}

double Reactor::utilisation() const noexcept {
  const Clock::time_point now = Clock::now();
  if (now - window_start_ < std::chrono::milliseconds(200)) return utilisation_;
  return std::clamp(std::chrono::duration<double>(busy_cpu() - window_cpu_) / std::chrono::duration<double>(now - window_start_),
                    0.0, 1.0);
}

double Reactor::busy_seconds() const noexcept {
  // Read on the reactor's own thread (a scrape runs there): its CPU time.
  return std::chrono::duration<double>(busy_cpu() - started_cpu_).count();
}

double Reactor::running_seconds() const noexcept { return std::chrono::duration<double>(Clock::now() - started_).count(); }

// Busy polling: polls the backend without sleeping until something arrives (true) or busy_poll_ (or the
// next timer) passes; `timeout` is then cut by the time spun. The rounds that found nothing count as idle.
bool Reactor::spin(std::optional<std::chrono::nanoseconds>& timeout) {
  const Clock::time_point start = Clock::now();
  Clock::time_point end = start + busy_poll_;
  if (timeout && start + *timeout < end) end = start + *timeout;
  const std::uint64_t completed = backend_->stats().completed;
  spinning_.store(true);
  Clock::time_point round = start;
  for (;;) {
    if (backend_->may_have_events()) backend_->poll(std::chrono::nanoseconds::zero());
    if (backend_->stats().completed != completed || !ready_.empty() || wake_pending_.load(std::memory_order_relaxed) ||
        stopping_.load(std::memory_order_relaxed)) {
      break;
    }
    const Clock::time_point now = Clock::now();
    if (now >= end) {
      spinning_.store(false);
      if (wake_pending_.load()) break;  // posted while spinning_ was still set: no wake-up is coming
      spun_ += now - start;
      if (timeout) timeout = std::max(*timeout - (now - start), std::chrono::nanoseconds::zero());
      return false;
    }
    round = now;
  }
  spinning_.store(false, std::memory_order_relaxed);
  spun_ += round - start;
  return true;
}

void Reactor::run() {
  this_thread_reactor = this;
  started_ = Clock::now();
  started_cpu_ = window_cpu_ = busy_cpu();
  while (!stopping_.load(std::memory_order_acquire)) {
    ++turns_;
    run_ready();
    run_messages();
    const Clock::time_point now = Clock::now();  // one read per turn; completions run later, inside poll()
    if (!timers_.empty()) timers_.fire_due(now);
    std::optional<std::chrono::nanoseconds> timeout;
    if (!ready_.empty() || wake_pending_.load(std::memory_order_relaxed)) {
      timeout = std::chrono::nanoseconds::zero();
    } else if (auto next = timers_.next_deadline()) {
      timeout = *next <= now ? std::chrono::nanoseconds::zero() : *next - now;  // no overflow for time_point::min()
    }
    if (timeout && timeout->count() == 0) {
      if (backend_->may_have_events()) backend_->poll(timeout);
    } else if (busy_poll_.count() == 0 || !spin(timeout)) {
      backend_->poll(timeout);
    }
    // Busy is the thread's CPU time, the kernel's work for it included: with io_uring much of a server's
    // work (sends, receives) runs inside io_uring_enter, so the time spent in poll() is not idle time.
    if (now - window_start_ >= std::chrono::milliseconds(100)) {
      const Clock::duration cpu = busy_cpu();
      utilisation_ = std::clamp(std::chrono::duration<double>(cpu - window_cpu_) / std::chrono::duration<double>(now - window_start_),
                                0.0, 1.0);
      window_start_ = now;
      window_cpu_ = cpu;
    }
  }
  shutdown();
  this_thread_reactor = nullptr;
}

void Reactor::shutdown() noexcept {
  ready_.clear();
  detached_.destroy_all();
  while (!at_stop_.empty()) {  // last registered, first ended; one may register another
    std::function<void()> f = std::move(at_stop_.back());
    at_stop_.pop_back();
    f();
  }
  ready_.clear();  // what those woke cannot run any more
  wake_pending_.store(false);
  while (Message* m = inbox_.pop()) m->discard();
  // At least one submission: closes queued by the destroyed tasks are counted nowhere else.
  backend_->poll(std::chrono::nanoseconds::zero());
  while (backend_->in_flight() > 0) backend_->poll(std::nullopt);
}

}  // namespace corio
