// http-server: HTTP/1.1 on corio::http, with the TechEmpower endpoints, so that its numbers compare.
//   http-server [--listen 127.0.0.1:8080] [--reactors N] [--tls-cert PEM --tls-key KEY] [--root DIR] [--max-body BYTES]
//               [--max-in-flight N] [--max-utilisation PERCENT] [--idle-timeout S] [--header-timeout S]
//               [--body-timeout S] [--write-timeout S] [--drain-timeout S] [--backend uring|epoll]
//               [--metrics HOST:PORT] [--no-metrics]
//   GET  /plaintext   "Hello, World!" (text/plain)
//   GET  /json        {"message":"Hello, World!"} (application/json)
//   POST /echo        the request body back, Content-Length or chunked
//   GET  /stream?n=N[&pad=BYTES]  N chunks of a streamed (chunked) response, each padded
//   GET  /slow?ms=N   "done" after N ms (a request in progress, for drains and load shedding)
//   GET  /spin?ms=N   "done" after N ms of the reactor's CPU (a busy reactor, for --max-utilisation)
//   GET  /...         with --root DIR, the files under DIR (index.html for a directory, ETag, no escapes)
// SIGINT/SIGTERM stops accepting, ends idle keep-alive connections, lets requests in progress finish for
// --drain-timeout (their responses say "Connection: close"), then exits 0; a second signal stops at once,
// and a drain cut short (by it or by the timeout) exits 1.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "corio/http/metrics_endpoint.hpp"
#include "corio/http/server.hpp"
#include "corio/runtime/metrics.hpp"
#include "corio/http/static_files.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/signal_set.hpp"
#include "corio/runtime/time.hpp"
#include "examples/flags.hpp"

using corio::task;
using corio::http::Request;
using corio::http::Response;

// The number in `name=` of a query ("n=3&pad=10"), or `fallback`.
unsigned long query_number(std::string_view query, std::string_view name, unsigned long fallback, unsigned long max) {
  while (!query.empty()) {
    const std::string_view pair = query.substr(0, query.find('&'));
    unsigned long v = 0;
    if (pair.size() > name.size() && pair.starts_with(name) && pair[name.size()] == '=' &&
        corio::examples::parse_number(std::string(pair.substr(name.size() + 1)).c_str(), max, v)) {
      return v;
    }
    query.remove_prefix(std::min(query.size(), pair.size() + 1));
  }
  return fallback;
}

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:8080", cert, key, root, backend = "uring", metrics_at;
  unsigned long reactors = 0, max_body = 1 << 20, in_flight = 0, utilisation = 0, idle = 60, header = 10, body = 30,
                write = 30, drain = 5;
  const char* usage =
      "[--listen ADDR] [--reactors N] [--tls-cert PEM --tls-key KEY] [--root DIR] [--max-body BYTES] [--max-in-flight N] "
      "[--max-utilisation PERCENT] [--idle-timeout S] [--header-timeout S] [--body-timeout S] [--write-timeout S] "
      "[--drain-timeout S] "
      "[--backend uring|epoll] [--metrics HOST:PORT] [--no-metrics]";
  // --no-metrics takes no value: every update becomes a no-op (to measure what metrics cost).
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--no-metrics") {
      corio::metrics::set_enabled(false);
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      break;
    }
  }
  if (!corio::examples::parse_pairs(argc, argv, {{"--listen", listen}, {"--tls-cert", cert}, {"--tls-key", key}, {"--root", root}, {"--backend", backend},
                                     {"--metrics", metrics_at}},
                                    {{"--reactors", reactors, 1024}, {"--max-body", max_body, 1ul << 34},
                                     {"--max-in-flight", in_flight, 1'000'000}, {"--max-utilisation", utilisation, 100},
                                     {"--idle-timeout", idle, 86400, 1}, {"--header-timeout", header, 3600, 1},
                                     {"--body-timeout", body, 3600, 1}, {"--write-timeout", write, 3600, 1},
                                     {"--drain-timeout", drain, 3600}},
                                    usage)) {
    return 2;
  }
  corio::BackendOptions backend_options;
  if (!corio::examples::parse_backend(backend.c_str(), backend_options.kind)) {
    std::fprintf(stderr, "http-server: --backend: not a valid value: \"%s\"\n", backend.c_str());
    return 2;
  }
  auto addr = corio::net::Address::parse(listen);
  if (!addr) {
    std::fprintf(stderr, "http-server: --listen: %s\n", addr.error().message().c_str());
    return 2;
  }
  std::optional<corio::net::Address> metrics_addr;
  if (!metrics_at.empty()) {
    auto m = corio::net::Address::parse(metrics_at);
    if (!m) {
      std::fprintf(stderr, "http-server: --metrics: %s\n", m.error().message().c_str());
      return 2;
    }
    metrics_addr = *m;
  }
  if (cert.empty() != key.empty()) {
    std::fprintf(stderr, "http-server: --tls-cert and --tls-key go together\n");
    return 2;
  }
  std::optional<corio::tls::Context> tls;
  if (!cert.empty()) {
    auto ctx = corio::tls::Context::server({.cert_file = cert, .key_file = key, .alpn = {"http/1.1"}});
    if (!ctx) {
      std::fprintf(stderr, "http-server: %s\n", ctx.error().message().c_str());
      return 1;
    }
    tls.emplace(std::move(*ctx));
  }

  corio::http::Router routes;
  routes.get("/plaintext", [](Request&, Response& res) -> task<void> {
    res.body = "Hello, World!";
    co_return;
  });
  routes.get("/json", [](Request&, Response& res) -> task<void> {
    res.content_type = "application/json";
    res.body = R"({"message":"Hello, World!"})";
    co_return;
  });
  routes.post("/echo", [](Request& req, Response& res) -> task<void> {
    res.content_type = "application/octet-stream";
    res.body.swap(req.body);
    co_return;
  });
  routes.get("/stream", [](Request& req, Response& res) -> task<void> {
    const unsigned long n = query_number(req.query, "n", 3, 100000), pad = query_number(req.query, "pad", 0, 1 << 20);
    for (unsigned long i = 0; i < n; ++i) {
      if (!co_await res.write("chunk " + std::to_string(i) + std::string(pad, '.') + "\n")) co_return;
    }
  });

  routes.get("/slow", [](Request& req, Response& res) -> task<void> {
    const unsigned long ms = query_number(req.query, "ms", 100, 60000);
    co_await corio::sleep_for(std::chrono::milliseconds(ms));
    res.body = "done";
  });

  routes.get("/spin", [](Request& req, Response& res) -> task<void> {
    const unsigned long ms = query_number(req.query, "ms", 10, 1000);
    // The thread's CPU time, not the clock's: a reactor sharing its core still spends the whole N ms.
    auto cpu = [] {
      timespec ts{};
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
    };
    const auto until = cpu() + std::chrono::milliseconds(ms);
    while (cpu() < until) {
    }
    res.body = "done";
    co_return;
  });

  try {
    if (!root.empty()) routes.prefix("GET", "/", corio::http::static_files(root));
    corio::SignalSet signals({SIGINT, SIGTERM});  // before the runtime: its threads inherit the mask
    corio::Runtime rt({.reactors = static_cast<unsigned>(reactors), .backend = backend_options});
    return rt.run([&]() -> task<int> {
      auto server = corio::http::Server::start(*addr, routes.handler(),
                                               {.max_body = max_body,
                                                .header_timeout = std::chrono::seconds(header),
                                                .idle_timeout = std::chrono::seconds(idle),
                                                .body_timeout = std::chrono::seconds(body),
                                                .write_timeout = std::chrono::seconds(write),
                                                .max_in_flight = static_cast<std::uint32_t>(in_flight),
                                                .max_utilisation = static_cast<double>(utilisation) / 100,
                                                .tls = tls ? &*tls : nullptr});
      if (!server) {
        std::fprintf(stderr, "http-server: %s\n", server.error().message().c_str());
        co_return 1;
      }
      std::unique_ptr<corio::http::Server> metrics;
      if (metrics_addr) {
        auto m = corio::http::serve_metrics(*metrics_addr);
        if (!m) {
          std::fprintf(stderr, "http-server: --metrics: %s\n", m.error().message().c_str());
          co_return 1;
        }
        metrics = std::move(*m);
        std::fprintf(stderr, "http-server: metrics on http://%s/metrics\n", metrics->address().to_string().c_str());
      }
      std::printf("listening on %s\n", (*server)->address().to_string().c_str());
      if (tls) std::fprintf(stderr, "http-server: HTTPS (ALPN http/1.1)\n");
      std::fflush(stdout);
      auto stop = co_await corio::net::shutdown_on_signal((*server)->net(), signals, std::chrono::seconds(drain));
      if (metrics) (void)co_await metrics->shutdown(corio::Clock::now() + std::chrono::seconds(1));
      const auto& c = (*server)->counters();
      std::fprintf(stderr, "http-server: %s: stopped%s; requests %llu, shed %llu, refused %llu, tls failures %llu\n",
                   stop.signal > 0 ? strsignal(stop.signal) : "signal read failed", stop.in_time ? "" : " (drain cut short)",
                   static_cast<unsigned long long>(c.requests.load()), static_cast<unsigned long long>(c.shed.load()),
                   static_cast<unsigned long long>(c.refused.load()), static_cast<unsigned long long>(c.tls_failures.load()));
      co_return stop.in_time ? 0 : 1;
    }());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http-server: %s\n", e.what());
    return 1;
  }
}
