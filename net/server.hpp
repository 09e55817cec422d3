// serve(): the accept loop of a TCP server on the current reactor, on a multishot accept (AcceptStream)
// where the kernel has it. Each accepted connection gets a slot
// from the limiter (or is closed at once: load shedding) and runs `handler(TcpStream)` detached. Accept
// errors do not stop the server: running out of descriptors (EMFILE/ENFILE) backs off briefly while the
// connections it has go on; any other error backs off from 1 ms, doubling to 1 s while it persists, and is
// reported once per streak with its errno text, never a busy loop. The loop ends when its task is stopped
// (its ambient stop token) or the listener is closed, which is how a server stops accepting while its
// connections finish.
#pragma once
#include <algorithm>
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
  using std::chrono::milliseconds;
  AcceptStream accepts(listener);
  milliseconds backoff{0};  // while other accept errors persist
  for (;;) {
    auto conn = co_await accepts.next();
    if (!conn) {
      const int code = conn.error().code;
      if (code == ECANCELED) co_return;  // stopped, or the listener closed
      if (code == EMFILE || code == ENFILE) {
        counters.out_of_descriptors.fetch_add(1, std::memory_order_relaxed);
        co_await sleep_for(milliseconds(10));  // let connections close
        continue;
      }
      counters.accept_errors.fetch_add(1, std::memory_order_relaxed);
      if (backoff.count() == 0) {
        std::fprintf(stderr, "corio: %s; backing off while it persists\n", conn.error().message().c_str());
      }
      backoff = std::clamp(backoff * 2, milliseconds(1), milliseconds(1000));
      co_await sleep_for(backoff);
      continue;
    }
    backoff = milliseconds(0);
    counters.accepted.fetch_add(1, std::memory_order_relaxed);
    auto permit = limiter.try_acquire();
    if (!permit) continue;  // shed: the stream closes here
    spawn(detail::run_connection(handler, std::move(*conn), std::move(*permit)));
  }
}

}  // namespace corio::net
