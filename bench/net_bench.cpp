// Micro-benchmarks of the TCP path on one reactor, over a real loopback connection: what one message costs
// in the runtime and net layers (the kernel's TCP work included).
//   build/release/bench/net-bench
#include <benchmark/benchmark.h>

#include "net/tcp_listener.hpp"
#include "runtime/runtime.hpp"

namespace {

using namespace corio;
using namespace corio::net;

// Echoes `size`-byte messages until the peer closes.
task<void> echo_exact(TcpStream conn, std::size_t size) {
  std::vector<char> buf(size);
  for (;;) {
    auto n = co_await conn.read_exact(buf);
    if (!n || *n < size) co_return;
    if (!co_await conn.write_all(buf)) co_return;
  }
}

// One 64-byte ping-pong per iteration: write_all, then read_exact of the echo.
void EchoRoundTrip(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto listener = TcpListener::bind(Address::loopback_v4(0));
  Runtime rt({.reactors = 1, .cpus = {0}});
  rt.run([&]() -> task<void> {
    auto client = co_await TcpStream::connect(listener->local_address());
    auto server = co_await listener->accept();
    spawn(echo_exact(std::move(*server), size));
    std::vector<char> msg(size, 'x'), back(size);
    for (auto _ : state) {
      (void)co_await client->write_all(msg);
      (void)co_await client->read_exact(back);
    }
    client->close();
  }());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}
BENCHMARK(EchoRoundTrip)->Arg(64)->Arg(4096)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
