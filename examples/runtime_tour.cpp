// runtime-tour: starts one pinned reactor per CPU, says what the kernel gave each, and measures the
// runtime's basic costs on this machine: kernel round trips, cross-reactor calls, timers, blocking jobs.
//   runtime-tour [--reactors N] [--seconds S] [--backend uring|epoll]
#include <optional>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "corio/runtime/nop.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"
#include "examples/flags.hpp"

using namespace std::chrono_literals;
using corio::Clock;
using corio::task;

namespace {

struct Row {
  std::string what;
  double per_second;
  double ns_each;
};

Row rate(std::string what, long count, Clock::time_point t0) {
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  auto n = static_cast<double>(count);
  return Row{std::move(what), n / s, s * 1e9 / n};
}

// One coroutine, one NOP at a time: the full path user -> ring -> kernel -> completion -> coroutine.
task<Row> nop_round_trips(Clock::duration budget) {
  long n = 0;
  auto t0 = Clock::now();
  while (Clock::now() - t0 < budget) {
    for (int i = 0; i < 1000; ++i) co_await corio::nop();
    n += 1000;
  }
  co_return rate("NOP round trip, 1 in flight", n, t0);
}

// 64 coroutines at once: completions arrive in batches, one io_uring_enter per loop turn.
task<Row> nop_batched(Clock::duration budget) {
  long n = 0;
  int running = 64;
  auto t0 = Clock::now();
  auto worker = [&]() -> task<void> {
    while (Clock::now() - t0 < budget) {
      for (int i = 0; i < 100; ++i) co_await corio::nop();
      n += 100;
    }
    --running;
  };
  for (int i = 0; i < 64; ++i) corio::spawn(worker());
  while (running > 0) co_await corio::sleep_for(1ms);
  co_return rate("NOP, 64 coroutines in flight", n, t0);
}

task<Row> cross_reactor(Clock::duration budget) {
  long n = 0;
  auto t0 = Clock::now();
  while (Clock::now() - t0 < budget) {
    for (int i = 0; i < 100; ++i) n += co_await corio::submit_to(1, [] { return 1; });
  }
  co_return rate("submit_to reactor 1 and back", n, t0);
}

task<Row> timers() {
  constexpr int kTimers = 100'000;
  int fired = 0;
  auto t0 = Clock::now();
  auto sleeper = [&](Clock::time_point when) -> task<void> {
    co_await corio::sleep_until(when);
    ++fired;
  };
  for (int i = 0; i < kTimers; ++i) corio::spawn(sleeper(t0 + std::chrono::microseconds(i % 1000)));
  while (fired < kTimers) co_await corio::yield();
  co_return rate("100,000 sleeps: spawn, arm, fire", kTimers, t0);
}

task<Row> blocking_jobs(Clock::duration budget) {
  long n = 0;
  auto t0 = Clock::now();
  while (Clock::now() - t0 < budget) {
    std::optional<int> one = co_await corio::run_blocking([] { return 1; });  // empty only if stopped
    n += one.value_or(0);
  }
  co_return rate("run_blocking round trip", n, t0);
}

task<std::vector<Row>> tour(corio::Runtime& rt, Clock::duration budget) {
  std::vector<Row> rows;
  rows.push_back(co_await nop_round_trips(budget));
  rows.push_back(co_await nop_batched(budget));
  if (rt.size() > 1) rows.push_back(co_await cross_reactor(budget));
  rows.push_back(co_await timers());
  rows.push_back(co_await blocking_jobs(budget));
  co_return rows;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned reactors = 0;
  double seconds = 1.0;
  corio::BackendOptions backend;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reactors") == 0 && i + 1 < argc) {
      reactors = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    } else if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds = std::strtod(argv[++i], nullptr);
    } else if (std::strcmp(argv[i], "--backend") == 0 && i + 1 < argc && corio::parse_backend_kind(argv[i + 1])) {
      backend.kind = *corio::parse_backend_kind(argv[++i]);
    } else if (std::strcmp(argv[i], "--enable") == 0 && i + 1 < argc && corio::examples::parse_enable(argv[i + 1], backend)) {
      ++i;  // e.g. --enable busy-poll: the cross-reactor call without wake-ups
    } else {
      std::fprintf(stderr, "usage: %s [--reactors N] [--seconds S] [--backend uring|epoll] [--enable %s]\n", argv[0],
                   corio::kOptInFeatureNames);
      return 2;
    }
  }
  if (seconds <= 0 || seconds > 60) {
    std::fprintf(stderr, "runtime-tour: --seconds must be in (0, 60], got %g\n", seconds);
    return 2;
  }
  try {
    corio::Runtime rt({.reactors = reactors, .backend = backend});
    std::printf("corio runtime tour: %u reactors\n\n", rt.size());
    std::printf("| reactor | cpu | backend |\n|---|---|---|\n");
    for (unsigned i = 0; i < rt.size(); ++i) {
      std::string backend = rt.run([&]() -> task<std::string> {
        co_return co_await corio::submit_to(i, [] { return corio::Reactor::current()->backend().describe(); });
      }());
      std::printf("| %u | %d | %s |\n", i, rt.cpu_of(i), backend.c_str());
    }
    auto budget = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    std::vector<Row> rows = rt.run(tour(rt, budget));
    std::printf("\n| measurement (reactor 0) | per second | ns each |\n|---|---:|---:|\n");
    for (const Row& r : rows) std::printf("| %s | %.0f | %.0f |\n", r.what.c_str(), r.per_second, r.ns_each);
    std::printf("\nThe echo servers, load generator and the comparison with epoll, Go and Asio come with the\n"
                "net/ and bench/ layers; bench/README.md says how to run the micro-benchmarks.\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "runtime-tour: %s\n", e.what());
    return 1;
  }
  return 0;
}
