// Micro-benchmarks of the TCP path on one reactor, over a real loopback connection: what one message costs
// in the runtime and net layers (the kernel's TCP work included).
//   build/release/bench/net-bench
#include <benchmark/benchmark.h>

#include "corio/net/recv_stream.hpp"
#include "corio/net/tcp_listener.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"

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

// Drains what arrives until the peer closes.
task<void> drain(TcpStream conn) {
  std::vector<char> buf(1 << 20);
  for (;;) {
    auto n = co_await conn.read_some(buf);
    if (!n || *n == 0) co_return;
  }
}

// One send of range(0) bytes per iteration, plain (range(1) == 0) or zero-copy (1: IORING_OP_SEND_ZC,
// ending with the kernel's notification). Over loopback the kernel copies at delivery anyway, so this
// measures what zero-copy costs where it cannot help; on a NIC the crossover is the size where it wins.
void SendOnce(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const bool zc = state.range(1) != 0;
  auto listener = TcpListener::bind(Address::loopback_v4(0));
  Runtime rt({.reactors = 1, .cpus = {0}});
  rt.run([&]() -> task<void> {
    auto client = co_await TcpStream::connect(listener->local_address());
    auto server = co_await listener->accept();
    spawn(drain(std::move(*server)));
    std::vector<char> msg(size, 'z');
    for (auto _ : state) {
      std::size_t sent = 0;
      while (sent < size) {
        std::span<const char> rest = std::span<const char>(msg).subspan(sent);
        auto n = co_await Op<SendImpl>(*client, rest, SendMode{.zero_copy = zc});
        if (!n) co_return;
        sent += *n;
      }
    }
    client->close();
  }());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}
BENCHMARK(SendOnce)->ArgsProduct({{4096, 16384, 65536, 262144, 1048576}, {0, 1}})->UseRealTime();

}  // namespace

// An idle connection timed out: its receive is armed when its handler returns.
task<void> time_out(TcpStream conn, int* left) {
  RecvStream rx(conn);
  auto chunk = co_await rx.next(Clock::now());  // arms the receive, then the deadline fires next turn
  (void)chunk;
  --*left;
}  // rx and conn go with the receive still armed: this is the teardown measured

// Teardown of range(0) connections per iteration, each dropped with an armed (multishot) receive, as idle
// timeouts or a drain close them: from the handlers' start until every one has returned and the reactor
// has nothing left in flight. Reported as connections torn down per second (items/s).
void TeardownArmedReceives(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto listener = TcpListener::bind(Address::loopback_v4(0), {.backlog = n});
  Runtime rt({.reactors = 1, .cpus = {0}});
  rt.run([&]() -> task<void> {
    for (auto _ : state) {
      state.PauseTiming();
      std::vector<TcpStream> clients, servers;
      for (int i = 0; i < n; ++i) {
        auto c = co_await TcpStream::connect(listener->local_address());
        auto a = co_await listener->accept();
        clients.push_back(std::move(*c));
        servers.push_back(std::move(*a));
      }
      state.ResumeTiming();
      int left = n;
      for (TcpStream& s : servers) spawn(time_out(std::move(s), &left));
      while (left > 0 || Reactor::current()->backend().in_flight() > 0) co_await yield();
      state.PauseTiming();
      clients.clear();
      co_await sleep_for(std::chrono::milliseconds(1));
      state.ResumeTiming();
    }
  }());
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(TeardownArmedReceives)->Arg(1000)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
