#include <algorithm>
#include "examples/server_main.hpp"

#include "examples/flags.hpp"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "corio/net/server.hpp"
#include "corio/runtime/read.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/task_scope.hpp"

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
                 "       [--drain-timeout SECONDS] [--backend uring|epoll] [--disable FEATURE,...]%s%s\n"
                 "features: %s\n",
                 name, with_frames ? " [--max-frame BYTES]" : "", own.c_str(), kFeatureNames);
    return std::nullopt;
  };
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--reuse-port") {
      f.reuse_port = true;
      continue;
    }
    const bool known = flag == "--listen" || flag == "--backend" || flag == "--disable" || flag == "--reactors" ||
                       flag == "--max-conns" || flag == "--idle-timeout" || flag == "--drain-timeout" ||
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
    else if (flag == "--backend") ok = parse_backend(value, f.backend.kind);
    else if (flag == "--disable") ok = parse_disable(value, f.backend);
    else if (flag == "--reactors") ok = parse_number(value, 1024, n), f.reactors = static_cast<unsigned>(n);
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

// Waits for SIGINT or SIGTERM (blocked in every thread, read from a signalfd through the ring).
task<int> next_signal(int sigfd) {
  signalfd_siginfo info{};
  int n = co_await corio::read(sigfd, std::span(reinterpret_cast<char*>(&info), sizeof info));
  co_return n == sizeof info ? static_cast<int>(info.ssi_signo) : -1;
}

task<void> serve_on(unsigned reactor, const net::TcpListener& listener, Handler& handler,
                    net::ConnectionLimiter& limiter, net::ServerCounters& counters) {
  co_await submit_to(reactor, net::serve(listener, handler, limiter, counters));
}

task<void> join(TaskScope& scope) { co_await scope.join(); }

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

  // Blocked before any thread starts, so every reactor inherits the mask and the signalfd sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  int sigfd = signalfd(-1, &signals, SFD_CLOEXEC);
  if (sigfd < 0) {
    std::fprintf(stderr, "%s: signalfd: %s\n", name, std::strerror(errno));
    return 1;
  }

  try {
    // Declared before the runtime: the reactors' tasks use them until the runtime is gone.
    std::vector<std::unique_ptr<net::TcpListener>> listeners;
    Handler handler = make_handler(*flags);
    net::ConnectionLimiter limiter(flags->max_conns);
    net::ServerCounters counters;
    Runtime rt({.reactors = flags->reactors, .backend = flags->backend});
    // One listener per reactor on one port; the first fixes the port when 0 was asked for.
    net::Address at = *addr;
    for (unsigned i = 0; i < rt.size(); ++i) {
      // Only the first may find the port taken by someone else; the others join it.
      auto l = net::TcpListener::bind(at, {.reuseport = true, .share_port = i > 0 || flags->reuse_port});
      if (!l) {
        std::fprintf(stderr, "%s: %s%s\n", name, l.error().message().c_str(),
                     l.error().code == EADDRINUSE ? "; --reuse-port shares the port with it" : "");
        return 1;
      }
      at = l->local_address();
      listeners.push_back(std::make_unique<net::TcpListener>(std::move(*l)));
    }
    std::printf("listening on %s\n", at.to_string().c_str());
    std::fflush(stdout);

    int signo = rt.run([&]() -> task<int> {
      if (hooks.start) co_await hooks.start();
      // One serve() per reactor, all children of this scope: stopping it reaches every connection.
      TaskScope servers;
      for (unsigned i = 0; i < rt.size(); ++i) servers.spawn(serve_on(i, *listeners[i], handler, limiter, counters));
      int sig = co_await next_signal(sigfd);
      // Drain: stop accepting, let the connections in progress finish for at most the drain timeout,
      // then stop the rest; every serve() returns once its connections are gone.
      for (unsigned i = 0; i < rt.size(); ++i) co_await submit_to(i, [&, i] { listeners[i]->close(); });
      co_await with_timeout(flags->drain_timeout, join(servers));
      if (hooks.stop) co_await hooks.stop();
      co_return sig;
    }());
    std::fprintf(stderr, "%s: %s: stopped; accepted %llu, shed %llu, open at exit %u, out of descriptors %llu\n",
                 name, signo > 0 ? strsignal(signo) : "signal read failed",
                 static_cast<unsigned long long>(counters.accepted.load()),
                 static_cast<unsigned long long>(limiter.shed()), limiter.active(),
                 static_cast<unsigned long long>(counters.out_of_descriptors.load()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
  ::close(sigfd);
  return 0;
}

}  // namespace corio::examples
