#include "examples/server_main.hpp"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

#include "examples/flags.hpp"
#include "corio/http/metrics_endpoint.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/signal_set.hpp"

namespace corio::examples {

namespace {

std::optional<ServerFlags> parse_flags(int argc, char** argv, const char* name, bool with_frames,
                                       const std::vector<std::string>& extra) {
  ServerFlags f;
  auto usage = [&] {
    std::string own;
    for (const std::string& e : extra) own += " [" + e + " VALUE]";
    std::fprintf(stderr,
                 "usage: %s [--listen ADDR] [--reuse-port] [--reactors N] [--max-conns N] [--idle-timeout SECONDS]\n"
                 "       [--drain-timeout SECONDS] [--backend uring|epoll] [--disable FEATURE,...] [--enable FEATURE,...]\n"
                 "       [--accept reuse-port|least-loaded] [--metrics HOST:PORT]%s%s\n"
                 "features to disable: %s\nfeatures to enable: %s\n",
                 name, with_frames ? " [--max-frame BYTES]" : "", own.c_str(), kFeatureNames, kOptInFeatureNames);
    return std::nullopt;
  };
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--reuse-port") {
      f.reuse_port = true;
      continue;
    }
    const bool known = flag == "--listen" || flag == "--backend" || flag == "--disable" || flag == "--enable" ||
                       flag == "--reactors" ||
                       flag == "--max-conns" || flag == "--accept" || flag == "--idle-timeout" || flag == "--drain-timeout" || flag == "--metrics" ||
                       (with_frames && flag == "--max-frame") ||
                       std::find(extra.begin(), extra.end(), flag) != extra.end();
    if (!known || i + 1 >= argc) {
      std::fprintf(stderr, "%s: %s: %s\n", name, flag.c_str(), known ? "missing value" : "unknown flag");
      return usage();
    }
    const char* value = argv[++i];
    unsigned long n = 0;
    bool ok = true;
    if (flag == "--listen") f.listen = value;
    else if (flag == "--metrics") ok = net::Address::parse(value).ok(), f.metrics = value;
    else if (flag == "--backend") ok = parse_backend(value, f.backend.kind);
    else if (flag == "--disable") ok = parse_disable(value, f.backend);
    else if (flag == "--enable") ok = parse_enable(value, f.backend);
    else if (flag == "--accept") {
      const std::string_view v = value;
      ok = v == "reuse-port" || v == "least-loaded";
      f.accept = v == "least-loaded" ? net::ServerOptions::Accept::least_loaded : net::ServerOptions::Accept::reuse_port;
    }    else if (flag == "--reactors") ok = parse_number(value, 1024, n), f.reactors = static_cast<unsigned>(n);
    else if (flag == "--max-conns") ok = parse_number(value, 10'000'000, n), f.max_conns = static_cast<std::uint32_t>(n);
    else if (flag == "--idle-timeout") ok = parse_number(value, 86400, n), f.idle_timeout = std::chrono::seconds(n);
    else if (flag == "--drain-timeout") ok = parse_number(value, 3600, n), f.drain_timeout = std::chrono::seconds(n);
    else if (with_frames && flag == "--max-frame") ok = parse_number(value, 1ul << 30, n), f.max_frame = static_cast<std::uint32_t>(n);
    else f.extra[flag] = value;
    if (!ok) {
      std::fprintf(stderr, "%s: %s: not a valid value: \"%s\"\n", name, flag.c_str(), value);
      return std::nullopt;
    }
  }
  return f;
}

}  // namespace

int run_server(int argc, char** argv, const char* name, bool with_frames,
               const std::function<Handler(const ServerFlags&)>& make_handler, const std::vector<std::string>& extra,
               const ServerHooks& hooks) {
  auto flags = parse_flags(argc, argv, name, with_frames, extra);
  if (!flags) return 2;
  auto addr = net::Address::parse(flags->listen);
  if (!addr) {
    std::fprintf(stderr, "%s: --listen: %s\n", name, addr.error().message().c_str());
    return 2;
  }

  try {
    // Before the runtime, so that its threads inherit the blocked signals.
    SignalSet signals({SIGINT, SIGTERM});
    Handler handler = make_handler(*flags);
    Runtime rt({.reactors = flags->reactors, .backend = flags->backend});
    return rt.run([&]() -> task<int> {
      if (hooks.start) co_await hooks.start();
      auto server = net::Server::start(*addr, handler, {.max_conns = flags->max_conns, .share_port = flags->reuse_port, .accept = flags->accept});
      if (!server) {
        std::fprintf(stderr, "%s: %s%s\n", name, server.error().message().c_str(),
                     server.error().code == EADDRINUSE ? "; --reuse-port shares the port with it" : "");
        if (hooks.stop) co_await hooks.stop();
        co_return 1;
      }
      std::unique_ptr<http::Server> metrics;
      if (!flags->metrics.empty()) {
        auto m = http::serve_metrics(*net::Address::parse(flags->metrics));
        if (!m) {
          std::fprintf(stderr, "%s: --metrics: %s\n", name, m.error().message().c_str());
          co_return 1;
        }
        metrics = std::move(*m);
        std::fprintf(stderr, "%s: metrics on http://%s/metrics\n", name, metrics->address().to_string().c_str());
      }
      std::printf("listening on %s\n", (*server)->address().to_string().c_str());
      std::fflush(stdout);
      // Drain: stop accepting, end idle connections, let busy ones finish for at most the drain timeout.
      auto stop = co_await net::shutdown_on_signal(**server, signals, flags->drain_timeout);
      if (metrics) (void)co_await metrics->shutdown(Clock::now() + std::chrono::seconds(1));
      if (hooks.stop) co_await hooks.stop();
      const net::ServerCounters& counters = (*server)->counters();
      const net::ConnectionLimiter& limiter = (*server)->limiter();
      std::fprintf(stderr, "%s: %s: stopped%s; accepted %llu, shed %llu, open at exit %u, out of descriptors %llu\n",
                   name, stop.signal > 0 ? strsignal(stop.signal) : "signal read failed",
                   stop.in_time ? "" : " (drain cut short)", static_cast<unsigned long long>(counters.accepted.load()),
                   static_cast<unsigned long long>(limiter.shed()), limiter.active(),
                   static_cast<unsigned long long>(counters.out_of_descriptors.load()));
      co_return stop.in_time ? 0 : 1;  // cut short: connections were dropped
    }());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace corio::examples
