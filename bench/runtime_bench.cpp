// Micro-benchmarks of the runtime core. Each benchmark's loop runs inside a coroutine on a reactor, so what
// is timed is the runtime's own path. NopRoundTrip/Corio and NopRoundTrip/RawLiburing run in the same
// binary, on the same CPU, on rings with the same flags: their ratio is the coroutine layer's overhead.
//   build/release/bench/runtime-bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "corio/runtime/channel.hpp"
#include "corio/runtime/metrics.hpp"
#include "corio/runtime/nop.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/sharded.hpp"
#include "corio/runtime/task_scope.hpp"
#include "corio/runtime/time.hpp"
#include "corio/runtime/when_all.hpp"

namespace {

using corio::task;

// Runs `body(state)` as a coroutine on reactor 0 of a runtime of `reactors` reactors, reactor i pinned to
// CPU i.
template <class Body>
void on_reactor(benchmark::State& state, Body body, unsigned reactors = 1, corio::BackendOptions backend = {}) {
  std::vector<int> cpus;
  for (unsigned i = 0; i < reactors; ++i) cpus.push_back(static_cast<int>(i));
  corio::Runtime rt({.reactors = reactors, .cpus = std::move(cpus), .backend = backend});
  rt.run(body(state));
}

task<int> ready_value(int v) { co_return v; }

void TaskCreateAndAwait(benchmark::State& state) {
  on_reactor(state, [](benchmark::State& s) -> task<void> {
    long sum = 0;
    for (auto _ : s) sum += co_await ready_value(1);
    benchmark::DoNotOptimize(sum);
  });
}
BENCHMARK(TaskCreateAndAwait)->UseRealTime();

// One counter add and one histogram observation on a reactor: what instrumenting a hot path costs.
void MetricsCounterAdd(benchmark::State& state) {
  static corio::metrics::Counter c("bench_counter_total", "A benchmark's counter.");
  on_reactor(state, [](benchmark::State& s) -> task<void> {
    for (auto _ : s) c.add();
    co_return;
  });
}
BENCHMARK(MetricsCounterAdd)->UseRealTime();

void MetricsHistogramObserve(benchmark::State& state) {
  static corio::metrics::Histogram h("bench_wait_seconds", "A benchmark's histogram.", corio::metrics::seconds_buckets());
  on_reactor(state, [](benchmark::State& s) -> task<void> {
    double v = 0.0001;
    for (auto _ : s) {
      h.observe(v);
      v = v < 1 ? v * 1.7 : 0.0001;  // across the buckets
    }
    benchmark::DoNotOptimize(v);
    co_return;
  });
}
BENCHMARK(MetricsHistogramObserve)->UseRealTime();

void SpawnAndRun(benchmark::State& state) {
  on_reactor(state, [](benchmark::State& s) -> task<void> {
    long done = 0;
    auto child = [&]() -> task<void> {
      ++done;
      co_return;
    };
    for (auto _ : s) {
      corio::spawn(child());
      co_await corio::yield();  // the spawned task runs before we are resumed
    }
    benchmark::DoNotOptimize(done);
  });
}
BENCHMARK(SpawnAndRun)->UseRealTime();

// `range(0)` tasks alive at once, each with a frame of its own, then all freed: the allocator under a
// server-like pattern (many connections' frames) rather than one frame reused.
void SpawnBurst(benchmark::State& state) {
  on_reactor(state, [](benchmark::State& s) -> task<void> {
    const long n = s.range(0);
    long running = 0;
    auto child = [&]() -> task<void> {
      char scratch[256];  // a frame of realistic size
      benchmark::DoNotOptimize(scratch);
      co_await corio::yield();
      --running;
    };
    for (auto _ : s) {
      running = n;
      for (long i = 0; i < n; ++i) corio::spawn(child());
      while (running > 0) co_await corio::yield();
    }
    s.SetItemsProcessed(s.iterations() * n);
  });
}
BENCHMARK(SpawnBurst)->Arg(1024)->Arg(16384)->UseRealTime();

void NopRoundTrip_Corio(benchmark::State& state) {
  on_reactor(state, [](benchmark::State& s) -> task<void> {
    for (auto _ : s) benchmark::DoNotOptimize(co_await corio::nop());
  });
}
BENCHMARK(NopRoundTrip_Corio)->UseRealTime();

void NopRoundTrip_RawLiburing(benchmark::State& state) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(0, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  io_uring ring;
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN;
  if (int err = io_uring_queue_init_params(256, &ring, &p); err < 0) {
    state.SkipWithError(std::strerror(-err));
    return;
  }
  io_uring_register_ring_fd(&ring);
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_nop(sqe);
    io_uring_submit_and_wait(&ring, 1);
    io_uring_cqe* cqe;
    if (io_uring_peek_cqe(&ring, &cqe) == 0) {
      benchmark::DoNotOptimize(cqe->res);
      io_uring_cqe_seen(&ring, cqe);
    }
  }
  io_uring_queue_exit(&ring);
}
BENCHMARK(NopRoundTrip_RawLiburing)->UseRealTime();

// The NOP round trip on a ring with SQPOLL: submission costs no system call, completion still does.
void NopRoundTrip_Sqpoll(benchmark::State& state) {
  on_reactor(
      state,
      [](benchmark::State& s) -> task<void> {
        for (auto _ : s) benchmark::DoNotOptimize(co_await corio::nop());
      },
      1, {.sqpoll = true, .sqpoll_cpu = 1});
}
BENCHMARK(NopRoundTrip_Sqpoll)->UseRealTime();

// submit_to reactor 1 (CPU 1) and back, with busy polling of range(0) us on both reactors (0: off, each
// side sleeps in io_uring_enter and is woken by MSG_RING). The floor without corio is EventfdPingPong.
void SubmitToRoundTrip(benchmark::State& state) {
  corio::BackendOptions backend;
  backend.busy_poll = std::chrono::microseconds(state.range(0));
  on_reactor(
      state,
      [](benchmark::State& s) -> task<void> {
        int sum = 0;
        for (auto _ : s) sum += co_await corio::submit_to(1, [] { return 1; });
        benchmark::DoNotOptimize(sum);
      },
      2, backend);
}
BENCHMARK(SubmitToRoundTrip)->Arg(0)->Arg(50)->UseRealTime();

// Two threads pinned to CPUs 0 and 1 bouncing a count over two eventfds (blocking reads): the wake-up
// floor of this machine, without corio.
void EventfdPingPong(benchmark::State& state) {
  const int ping = ::eventfd(0, EFD_CLOEXEC);
  const int pong = ::eventfd(0, EFD_CLOEXEC);
  auto pin = [](int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  };
  std::thread peer([&] {
    pin(1);
    std::uint64_t v = 0;
    while (::read(ping, &v, sizeof v) == sizeof v && v != ~std::uint64_t{0} - 1) {
      (void)!::write(pong, &v, sizeof v);
    }
  });
  pin(0);
  std::uint64_t v = 1;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop
    (void)!::write(ping, &v, sizeof v);
    (void)!::read(pong, &v, sizeof v);
    v = 1;
  }
  v = ~std::uint64_t{0} - 1;  // the largest value an eventfd write accepts: the peer's signal to stop
  (void)!::write(ping, &v, sizeof v);
  peer.join();
  ::close(ping);
  ::close(pong);
}
BENCHMARK(EventfdPingPong)->UseRealTime();

// 64 NOPs in flight from 64 coroutines: what batching buys (one io_uring_enter per loop turn).
void NopBatched64(benchmark::State& state) {
  on_reactor(state, [](benchmark::State& s) -> task<void> {
    int running = 0;
    auto one = [&]() -> task<void> {
      co_await corio::nop();
      --running;
    };
    for (auto _ : s) {
      running = 64;
      for (int i = 0; i < 64; ++i) corio::spawn(one());
      while (running > 0) co_await corio::yield();
    }
    s.SetItemsProcessed(s.iterations() * 64);
  });
}
BENCHMARK(NopBatched64)->UseRealTime();

// Arm a timer that is already due and let the reactor fire it.
void TimerArmAndFire(benchmark::State& state) {
  on_reactor(state, [](benchmark::State& s) -> task<void> {
    for (auto _ : s) benchmark::DoNotOptimize(co_await corio::sleep_until(corio::Clock::time_point{}));
  });
}
BENCHMARK(TimerArmAndFire)->UseRealTime();

// Insert into a heap already holding `range(0)` timers, then remove: the cost with many pending.
void TimerQueueArmDisarm(benchmark::State& state) {
  struct Entry final : corio::TimerEntry {
    void fire() noexcept override {}
  };
  corio::TimerQueue q;
  std::vector<Entry> pending(static_cast<std::size_t>(state.range(0)));
  auto t0 = corio::Clock::now();
  for (std::size_t i = 0; i < pending.size(); ++i) q.arm(pending[i], t0 + std::chrono::microseconds(i * 7 % 100'000));
  Entry e;
  long i = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop
    q.arm(e, t0 + std::chrono::microseconds(++i * 13 % 100'000));
    q.disarm(e);
  }
  for (auto& p : pending) q.disarm(p);
}
BENCHMARK(TimerQueueArmDisarm)->Arg(0)->Arg(1000)->Arg(100'000);

// when_all over `range(0)` tasks that end at once: the vector, a child frame per task and the join. Items
// are tasks, so items/s gives the per-task cost.
void WhenAllReady(benchmark::State& state) {
  on_reactor(state, [](benchmark::State& s) -> task<void> {
    const auto n = static_cast<std::size_t>(s.range(0));
    long sum = 0;
    for (auto _ : s) {
      std::vector<task<int>> tasks;
      tasks.reserve(n);
      for (std::size_t i = 0; i < n; ++i) tasks.push_back(ready_value(1));
      std::vector<int> values = co_await corio::when_all(std::move(tasks));
      sum += values.back();
    }
    benchmark::DoNotOptimize(sum);
    s.SetItemsProcessed(s.iterations() * s.range(0));
  });
}
BENCHMARK(WhenAllReady)->Arg(1)->Arg(16)->Arg(256)->UseRealTime();

// One item per iteration from a producer through a `Chan` of capacity `range(0)` to the benchmark loop on
// reactor 0. The producer runs on `producer_reactor` (there through submit_to) and sends until the channel
// is closed; the scope's join keeps it from outliving the channel it sends on.
template <class Chan>
task<void> pass_items(benchmark::State& s, unsigned producer_reactor) {
  Chan ch(static_cast<std::size_t>(s.range(0)));
  auto produce = [&]() -> task<void> {
    for (int i = 0;; ++i) {
      if (co_await ch.send(i)) co_return;  // EPIPE: closed
    }
  };
  auto produce_there = [&]() -> task<void> { co_await corio::submit_to(producer_reactor, produce()); };
  corio::TaskScope scope;
  scope.spawn(producer_reactor == 0 ? produce() : produce_there());
  long sum = 0;
  for (auto _ : s) {
    corio::Received<int> got = co_await ch.recv();
    sum += *got;
  }
  ch.close();
  co_await scope.join();
  benchmark::DoNotOptimize(sum);
}

// Capacity 1: nearly every item parks and wakes a task; capacity 64: the producer runs ahead in batches.
void ChannelPingPong(benchmark::State& state) {
  on_reactor(state, [](benchmark::State& s) { return pass_items<corio::Channel<int>>(s, 0); });
}
BENCHMARK(ChannelPingPong)->Arg(1)->Arg(64)->UseRealTime();

// The same on one reactor through the mutex variant: what its lock costs when nothing crosses reactors.
void SharedChannelOneReactor(benchmark::State& state) {
  on_reactor(state, [](benchmark::State& s) { return pass_items<corio::SharedChannel<int>>(s, 0); });
}
BENCHMARK(SharedChannelOneReactor)->Arg(1)->Arg(64)->UseRealTime();

// Producer on reactor 1 (CPU 1), consumer on reactor 0 (CPU 0): wakes cross CPUs as messages.
void SharedChannelAcrossReactors(benchmark::State& state) {
  on_reactor(state, [](benchmark::State& s) { return pass_items<corio::SharedChannel<int>>(s, 1); }, 2);
}
BENCHMARK(SharedChannelAcrossReactors)->Arg(1)->Arg(64)->UseRealTime();

struct Counter {
  long n = 0;
};

// invoke_on(shard) from reactor 0 of a 2-reactor runtime: shard 0 is called inline, shard 1 by a hop to
// reactor 1 and back.
task<void> invoke_loop(benchmark::State& s, unsigned shard) {
  corio::Sharded<Counter> counters;
  co_await counters.start();
  long last = 0;
  for (auto _ : s) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop
    last = co_await counters.invoke_on(shard, [](Counter& c) { return ++c.n; });
  }
  benchmark::DoNotOptimize(last);
  co_await counters.stop();
}

void ShardedInvokeLocal(benchmark::State& state) {
  on_reactor(state, [](benchmark::State& s) { return invoke_loop(s, 0); }, 2);
}
BENCHMARK(ShardedInvokeLocal)->UseRealTime();

void ShardedInvokeRemote(benchmark::State& state) {
  on_reactor(state, [](benchmark::State& s) { return invoke_loop(s, 1); }, 2);
}
BENCHMARK(ShardedInvokeRemote)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
