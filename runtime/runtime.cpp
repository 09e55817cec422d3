#include "corio/runtime/runtime.hpp"

#include <pthread.h>
#include <sched.h>
#include <csignal>
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

#include "corio/runtime/log.hpp"

namespace corio {

namespace {

std::vector<int> affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) {
    throw std::system_error(errno, std::generic_category(), "sched_getaffinity");
  }
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

void pin_this_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int err = pthread_setaffinity_np(pthread_self(), sizeof set, &set); err != 0) {
    throw std::system_error(err, std::generic_category(), "pthread_setaffinity_np(cpu " + std::to_string(cpu) + ")");
  }
}

// A write to a closed peer must be an EPIPE value, never the end of the process. Sends pass MSG_NOSIGNAL,
// but WRITE_FIXED cannot; like Go's runtime, ignore SIGPIPE unless the application chose a handler.
void ignore_sigpipe() noexcept {
  struct sigaction old {};
  if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
}

// As Go's runtime does: a server should hold tens of thousands of sockets without the user tuning ulimit.
void raise_open_file_limit() noexcept {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

}  // namespace

namespace detail {
void register_runtime_metrics();  // runtime_metrics.cpp
}

Runtime::Runtime(RuntimeOptions options) : blocking_(std::make_unique<BlockingPool>(options.blocking_threads)) {
  detail::register_runtime_metrics();
  raise_open_file_limit();
  ignore_sigpipe();
  std::vector<int> cpus = options.cpus.empty() ? affinity_cpus() : options.cpus;
  unsigned n = options.reactors != 0 ? options.reactors : static_cast<unsigned>(cpus.size());
  if (n == 0) throw std::invalid_argument("corio: Runtime needs at least one reactor");
  if (options.pin && n > cpus.size()) {
    log::write(log::Level::warning, "%u reactors pinned to %zu CPUs: some share a CPU and take turns on it", n,
               cpus.size());
  }
  reactors_.resize(n);
  for (unsigned i = 0; i < n; ++i) cpus_.push_back(options.pin ? cpus[i % cpus.size()] : -1);

  std::vector<std::promise<void>> ready(n);
  for (unsigned i = 0; i < n; ++i) {
    threads_.emplace_back([this, i, &options, &ready] { start_reactor(i, options.backend, ready[i]); });
  }
  std::exception_ptr failure;
  for (auto& r : ready) {
    try {
      r.get_future().get();
    } catch (...) {
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) {
    stop();
    std::rethrow_exception(failure);
  }
}

void Runtime::start_reactor(unsigned id, const BackendOptions& backend, std::promise<void>& ready) {
  try {
    if (cpus_[id] >= 0) pin_this_thread(cpus_[id]);
    reactors_[id] = std::make_unique<Reactor>(id, this, backend);
  } catch (...) {
    ready.set_exception(std::current_exception());
    return;
  }
  ready.set_value();
  reactors_[id]->run();
}

Runtime::~Runtime() {
  stop();
  // Only now: until the runtime is destroyed, a thread that posted to a reactor may still be inside post().
  reactors_.clear();
}

void Runtime::request_stop() noexcept {
  for (auto& r : reactors_) {
    if (r) r->request_stop();
  }
}

void Runtime::stop() {
  request_stop();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  // Blocking jobs may still be delivering to the reactors: finish them before the reactors go.
  blocking_.reset();
}

}  // namespace corio
