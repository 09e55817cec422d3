// serve(): the accept loop of a TCP server on the current reactor, on a multishot accept (AcceptStream)
// where the kernel has it. Each accepted connection gets a slot
// from the limiter (or is closed at once: load shedding) and runs `handler(TcpStream)` detached. Running
// out of descriptors (EMFILE/ENFILE) does not stop the server: it counts, backs off briefly and goes on
// serving the connections it has. The loop ends when its task is stopped (its ambient stop token), which
// is how a server stops accepting while its connections finish.
#pragma once
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>

#include "net/connection_limiter.hpp"
#include "net/tcp_listener.hpp"
#include "runtime/reactor.hpp"
#include "runtime/time.hpp"

namespace corio::net {

struct ServerCounters {
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> out_of_descriptors{0};  // EMFILE/ENFILE from accept
  std::atomic<std::uint64_t> accept_errors{0};       // any other accept failure
};

namespace detail {
template <class Handler>
task<void> run_connection(Handler& handler, TcpStream conn, ConnectionLimiter::Permit permit) {
  // Two statements: the argument's temporary ends with the first, instead of living in this frame (every
  // byte here is paid per idle connection).
  auto served = handler(std::move(conn));
  co_await std::move(served);
  (void)permit;  // released when this frame ends
}
}  // namespace detail

// `handler` must outlive the loop and every connection it serves.
template <class Handler>
task<void> serve(const TcpListener& listener, Handler& handler, ConnectionLimiter& limiter, ServerCounters& counters) {
  AcceptStream accepts(listener);
  for (;;) {
    auto conn = co_await accepts.next();
    if (!conn) {
      const int code = conn.error().code;
      if (code == ECANCELED) co_return;  // stopped
      if (code == EMFILE || code == ENFILE) {
        counters.out_of_descriptors.fetch_add(1, std::memory_order_relaxed);
        co_await sleep_for(std::chrono::milliseconds(10));  // let connections close
      } else {
        counters.accept_errors.fetch_add(1, std::memory_order_relaxed);
      }
      continue;
    }
    counters.accepted.fetch_add(1, std::memory_order_relaxed);
    auto permit = limiter.try_acquire();
    if (!permit) continue;  // shed: the stream closes here
    spawn(detail::run_connection(handler, std::move(*conn), std::move(*permit)));
  }
}

}  // namespace corio::net
