// TLS costs on one reactor over loopback (client and server both on it, so each number is both sides):
// full handshakes vs resumed ones (TLS 1.3, ECDSA P-256, X25519), and a 64 B / 4 KiB echo round trip over
// TLS against the same over plain TCP; TLS with records in user space (OpenSSL) and handed to the kernel
// (kTLS, where the kernel has it: the label says which ran).
//   build/release/bench/tls-bench
#include <benchmark/benchmark.h>

#include "corio/net/tcp_listener.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/tls/stream.hpp"

namespace {

using namespace corio;
using namespace std::chrono_literals;

std::string cert(const char* name) { return std::string(CORIO_BENCH_CERTS) + "/" + name; }

tls::Context server_ctx(tls::KernelTls kernel = tls::KernelTls::when_available) {
  return std::move(*tls::Context::server({.cert_file = cert("server.pem"), .key_file = cert("server.key"), .kernel_tls = kernel}));
}
tls::Context client_ctx(bool resume, tls::KernelTls kernel = tls::KernelTls::when_available) {
  return std::move(*tls::Context::client(
      {.ca_file = cert("ca.pem"), .session_cache_size = resume ? 1024u : 0u, .kernel_tls = kernel}));
}

task<void> accept_loop(const net::TcpListener& l, const tls::Context& ctx) {
  for (;;) {
    auto tcp = co_await l.accept();
    if (!tcp) co_return;
    auto s = co_await tls::Stream::accept(ctx, std::move(*tcp));
    if (!s) continue;
    char buf[8192];
    for (;;) {
      auto n = co_await s->read_some(buf);
      if (!n || *n == 0) break;
      if (!co_await s->write_all(std::span<const char>(buf, *n))) break;
    }
  }
}

// One client connection per iteration: handshake, one byte each way (TLS 1.3 tickets arrive with it),
// close_notify.
void Handshake(benchmark::State& state) {
  const bool resumed = state.range(0) != 0;
  auto listener = net::TcpListener::bind(net::Address::loopback_v4(0));
  tls::Context server = server_ctx();
  tls::Context client = client_ctx(resumed);
  Runtime rt({.reactors = 1, .cpus = {0}});
  int reused = 0;
  rt.run([&]() -> task<void> {
    spawn(accept_loop(*listener, server));
    for (auto _ : state) {
      auto tcp = co_await net::TcpStream::connect(listener->local_address());
      auto s = co_await tls::Stream::connect(client, std::move(*tcp), "localhost");
      if (!s) co_return;
      reused += s->session_reused();
      char c = 'x';
      (void)co_await s->write_all(std::span(&c, 1));
      (void)co_await s->read_some(std::span(&c, 1));
      // A session whose connection ends without close_notify is not resumable (OpenSSL drops it).
      (void)co_await s->shutdown();
    }
  }());
  state.counters["reused"] = benchmark::Counter(reused, benchmark::Counter::kAvgIterations);
  state.counters["handshakes/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(Handshake)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);

// range(1): 0 plain TCP, 1 TLS with user-space records, 2 TLS handed to the kernel where it can be.
void EchoRoundTrip(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const bool tls = state.range(1) != 0;
  const auto kernel = state.range(1) == 2 ? tls::KernelTls::when_available : tls::KernelTls::off;
  auto listener = net::TcpListener::bind(net::Address::loopback_v4(0));
  tls::Context server = server_ctx(kernel);
  tls::Context client = client_ctx(true, kernel);
  Runtime rt({.reactors = 1, .cpus = {0}});
  rt.run([&]() -> task<void> {
    spawn(accept_loop(*listener, server));
    auto tcp = co_await net::TcpStream::connect(listener->local_address());
    std::vector<char> msg(size, 'x'), back(size);
    if (!tls) {
      // The plain twin: the server above speaks TLS, so talk to a plain echo task instead.
      auto plain = net::TcpListener::bind(net::Address::loopback_v4(0));
      auto c = co_await net::TcpStream::connect(plain->local_address());
      auto srv = co_await plain->accept();
      spawn([](net::TcpStream s, std::size_t n) -> task<void> {
        std::vector<char> b(n);
        for (;;) {
          auto r = co_await s.read_exact(b);
          if (!r || *r < n) co_return;
          if (!co_await s.write_all(b)) co_return;
        }
      }(std::move(*srv), size));
      for (auto _ : state) {
        (void)co_await c->write_all(msg);
        (void)co_await c->read_exact(back);
      }
      co_return;
    }
    auto s = co_await tls::Stream::connect(client, std::move(*tcp), "localhost");
    bool labelled = false;
    for (auto _ : state) {
      (void)co_await s->write_all(msg);
      std::size_t got = 0;
      while (got < size) {
        auto n = co_await s->read_some(std::span(back).subspan(got));
        if (!n || *n == 0) co_return;
        got += *n;
      }
      if (!labelled) {  // after the first read: a client hands receiving over then
        labelled = true;
        state.SetLabel(s->kernel_tx() && s->kernel_rx() ? "kernel TLS" : "user-space records");
      }
    }
  }());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}
BENCHMARK(EchoRoundTrip)->ArgsProduct({{64, 4096}, {0, 1, 2}})->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
