// What a lookup costs through net::Resolver: a cache hit against a query to a DNS server on loopback
// (dnsmasq, started here; A and AAAA asked together), on one reactor.
//   build/release/bench/dns-bench
#include <benchmark/benchmark.h>

#include "corio/net/resolver.hpp"
#include "corio/runtime/runtime.hpp"
#include "tests/net/dnsmasq.hpp"

namespace {

using namespace corio;
using namespace corio::net;

void resolve_loop(benchmark::State& state, std::size_t cache_entries) {
  corio::testing::Dnsmasq dns;
  if (!dns.running()) {
    state.SkipWithError("dnsmasq did not start (apt-get install dnsmasq-base)");
    return;
  }
  Runtime rt({.reactors = 1, .cpus = {0}});
  rt.run([&]() -> task<void> {
    auto r = Resolver::create({.servers = {dns.server()}, .hosts_file = false, .max_ttl = std::chrono::seconds(3600),
                               .cache_entries = cache_entries});
    if (!r) {
      state.SkipWithError(r.error().message().c_str());
      co_return;
    }
    for (auto _ : state) {
      auto got = co_await (*r)->resolve("long.test", 80);
      if (!got) {
        state.SkipWithError(got.error().message().c_str());
        break;
      }
      benchmark::DoNotOptimize(got->data());
    }
    state.counters["queries"] = static_cast<double>((*r)->stats().queries);
  }());
}

void ResolveCached(benchmark::State& state) { resolve_loop(state, 4096); }
void ResolveUncached(benchmark::State& state) { resolve_loop(state, 0); }

BENCHMARK(ResolveCached)->UseRealTime();
BENCHMARK(ResolveUncached)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
