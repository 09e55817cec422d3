// serve(): the accept loop of a TCP server on the current reactor, on a multishot accept (AcceptStream)
// where the kernel has it. Each accepted connection gets a slot from the limiter (or is closed at once:
// load shedding) and runs `handler(TcpStream)` as a child of serve()'s own TaskScope: an exception it
// throws is reported on stderr and touches no other connection. Accept errors do not stop the server:
// running out of descriptors (EMFILE/ENFILE) backs off briefly while the connections it has go on; any
// other error backs off from 1 ms, doubling to 1 s while it persists, and is reported once per streak with
// its errno text, never a busy loop.
// Two ways to end it, as Go's Shutdown and Close: close the listener (TcpListener::close(), on this
// reactor) and serve() stops accepting and returns once its connections have finished; stop its task
// (its ambient stop token, with_timeout) and every connection is stopped too. Either way no connection
// outlives serve().
#pragma once
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <new>
#include <vector>

#include "corio/net/connection_limiter.hpp"
#include "corio/net/error.hpp"
#include "corio/net/net_metrics.hpp"
#include "corio/net/socket_options.hpp"
#include "corio/runtime/log.hpp"
#include "corio/net/tcp_listener.hpp"
#include "corio/runtime/reactor.hpp"
#include "corio/runtime/signal_set.hpp"
#include "corio/runtime/task_scope.hpp"
#include "corio/runtime/time.hpp"

namespace corio::net {

struct ServerCounters {
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> out_of_descriptors{0};  // EMFILE/ENFILE from accept
  std::atomic<std::uint64_t> accept_errors{0};       // any other accept failure
};

namespace detail {
// One connection, as a child of serve()'s scope: the handler's task (the stream already in its frame) and
// the permit, released when this frame ends.
template <class Served>
corio::detail::ChildTask run_connection(Served served, ConnectionLimiter::Permit permit) {
  net_metrics().active.add(1);
  bool threw = false;
  try {
    co_await std::move(served);
  } catch (...) {
    threw = true;
    corio::detail::report_escaped(std::current_exception(), "connection handler");
  }
  count_closed(threw, (co_await current_stop_token()).stop_requested());
  (void)permit;
}

// The loop under serve() and Server: calls `start(TcpStream&&, Permit)` for each connection it admits, and
// returns when stopped or when the listener closes (the connections are the caller's to join).
template <class Start>
task<void> accept_loop(const TcpListener& listener, ConnectionLimiter& limiter, ServerCounters& counters, Start start) {
  using std::chrono::milliseconds;
  AcceptStream accepts(listener);
  milliseconds backoff{0};  // while other accept errors persist
  for (;;) {
    auto conn = co_await accepts.next();
    if (!conn) {
      const int code = conn.error().code;
      if (code == ECANCELED) break;  // stopped, or the listener closed
      if (code == EMFILE || code == ENFILE) {
        counters.out_of_descriptors.fetch_add(1, std::memory_order_relaxed);
        net_metrics().out_of_descriptors.add();
        log::limited(log::Level::error, "accept EMFILE", std::chrono::seconds(10), "%s; waiting for connections to close",
                     conn.error().message().c_str());
        co_await sleep_for(milliseconds(10));  // let connections close
        continue;
      }
      counters.accept_errors.fetch_add(1, std::memory_order_relaxed);
      net_metrics().accept_errors.add();
      if (backoff.count() == 0) {
        log::write(log::Level::error, "%s; backing off while it persists", conn.error().message().c_str());
      }
      backoff = std::clamp(backoff * 2, milliseconds(1), milliseconds(1000));
      co_await sleep_for(backoff);
      continue;
    }
    backoff = milliseconds(0);
    counters.accepted.fetch_add(1, std::memory_order_relaxed);
    net_metrics().accepted.add();
    auto permit = limiter.try_acquire();
    if (!permit) {
      net_metrics().shed.add();
      continue;  // shed: the stream closes here
    }
    // No memory for this connection (its Connection, frame or hand-off): it is dropped, closed here, and
    // the loop goes on for the next one rather than ending the reactor's accepts.
    try {
      start(std::move(*conn), std::move(*permit));
    } catch (const std::bad_alloc&) {
      try {  // the report may need memory too: without it the connection is still dropped
        log::limited(log::Level::error, "accept ENOMEM", std::chrono::seconds(10),
                     "accept: connection dropped: out of memory");
      } catch (...) {
      }
    }
  }
}
}  // namespace detail

// `handler` must outlive the loop and every connection it serves.
template <class Handler>
task<void> serve(const TcpListener& listener, Handler& handler, ConnectionLimiter& limiter, ServerCounters& counters) {
  TaskScope connections;
  co_await detail::accept_loop(listener, limiter, counters, [&](TcpStream&& conn, ConnectionLimiter::Permit permit) {
    connections.adopt(detail::run_connection(handler(std::move(conn)), std::move(permit)));
  });
  // A stop (now or later) reaches the connections through the join; a closed listener lets them finish.
  co_await connections.join();
}

struct ServerOptions {
  // How a connection finds its reactor. reuse_port: a listener on every reactor (SO_REUSEPORT), the kernel
  // picking one by a hash of the connection's addresses, which leaves reactors unevenly loaded when the
  // connections are few or long-lived. least_loaded: one listener, on the first reactor, hands each
  // connection to the reactor serving the fewest of this server's (a message to that reactor: a hop more
  // per connection).
  enum class Accept : std::uint8_t { reuse_port, least_loaded };

  std::uint32_t max_conns = 0;  // beyond it connections are closed at once (shed); 0: no limit
  bool share_port = false;      // join a port another server listens on (a rolling restart)
  Accept accept = Accept::reuse_port;
  SocketOptions accepted;       // applied to every accepted socket
};

namespace detail {
struct ServerShard;
}

// A connection as a Server's handler sees it: its stream, and whether it is between requests. A handler
// that has requests calls idle() before waiting for the next one and busy() once it is here; one that
// calls neither (a byte stream such as echo) stays busy, and shutdown() lets it run until its deadline.
// (It owns the handler's task: the handler's frame is the only coroutine frame an idle connection keeps.)
class Connection final : private corio::detail::TaskOwner {
 public:
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  TcpStream& stream() noexcept { return stream_; }
  // Call before reading the next request from stream(). False once the server is shutting down: end the
  // connection. When shutdown() starts, an idle connection with nothing to read has its socket shut for
  // reading, so that its read ends as at the end of the stream; one whose next request has begun to
  // arrive is left to serve it. (A request whose first bytes arrive as the shutdown begins can still be
  // cut short, as in Go; clients retry.) Only a read of stream() is woken so: a handler that waits on
  // something else, or has moved the stream out (into a TLS stream, say), should not call idle().
  bool idle() noexcept;
  // Call when a request has arrived: shutdown() lets it finish, until its deadline.
  void busy() noexcept { idle_ = false; }
  // Whether the server is shutting down: a handler may say so to its client ("Connection: close").
  bool draining() const noexcept;
  // The reactor (its id) this connection was given to, where its handler runs.
  unsigned reactor() const noexcept;

 private:
  friend struct detail::ServerShard;
  Connection(TcpStream&& stream, detail::ServerShard& shard, ConnectionLimiter::Permit permit) noexcept;
  ~Connection();
  void run(task<void> work) noexcept;
  std::coroutine_handle<> task_ended(corio::detail::PromiseBase& task) noexcept override;

  TcpStream stream_;
  detail::ServerShard* shard_;
  Connection* prev_ = nullptr;
  Connection* next_ = nullptr;
  std::coroutine_handle<> task_;  // the handler's, then linger()'s after a drain
  ConnectionLimiter::Permit permit_;
  bool idle_ = false;
  bool threw_ = false;
  bool lingered_ = false;
};

// Server: serve() on one listener per reactor of the current runtime (SO_REUSEPORT, one port), or one
// listener handing connections to the least loaded reactor (ServerOptions::accept), each connection's
// handler a child of its reactor's accept loop, and Go's Shutdown semantics.
//   auto server = Server::start(*Address::parse("127.0.0.1:7000"), [](Connection& c) -> task<void> {...});
//   bool in_time = co_await (*server)->shutdown(Clock::now() + 5s);
// Create, shut down and destroy it on one reactor. Destroying it without shutdown() stops everything at
// once, as leaving a TaskScope does.
class Server {
 public:
  using Handler = std::function<task<void>(Connection&)>;

  // Binds the listeners (port 0: one port chosen for all) and starts accepting. A port some other socket
  // listens on is refused (EADDRINUSE) unless options.share_port.
  static Result<std::unique_ptr<Server>> start(const Address& at, Handler handler, ServerOptions options = {});
  ~Server();

  const Address& address() const noexcept;
  const ServerCounters& counters() const noexcept;
  const ConnectionLimiter& limiter() const noexcept;
  // The connections each reactor serves now, by reactor id (those handed to it and on their way included):
  // how evenly the load is spread. Any thread.
  std::vector<std::uint32_t> connections_per_reactor() const;

  // Stops accepting (the listeners close: new connections are refused), ends the connections that are
  // idle now (see Connection::idle) or become idle, lets busy ones finish until `deadline`, then stops
  // them. Returns once every connection has ended: true when all ended by themselves, by the deadline.
  // A connection ended with a request unread half-closes and lets its client read the replies for up to a
  // second before the close, which would otherwise reset the connection.
  task<bool> shutdown(Clock::time_point deadline);
  // Stops every connection now and closes the listeners (Go's Close): ends a shutdown() in progress
  // early (it then returns false), or stops all without one.
  void close() noexcept {
    closed_ = true;
    loops_.request_stop();
  }

 private:
  struct State;
  explicit Server(std::shared_ptr<State> state);
  static task<void> serve_on(std::shared_ptr<State> state, unsigned reactor);
  static task<void> serve_shard(std::shared_ptr<State> state, detail::ServerShard& shard);
  std::shared_ptr<State> state_;  // shared with the accept loops, which may outlive this object briefly
  TaskScope loops_;
  bool closed_ = false;
};

// The graceful stop a server process needs: waits for a signal from `signals`, then shuts `server` down with
// `drain` as the deadline; a second signal during the drain stops what is still busy at once (close()).
// If the wait itself is stopped (or the read fails), it returns at once and leaves the server alone.
struct SignalStop {
  int signal;    // the first signal's number (-errno if the wait was stopped or the read failed)
  bool in_time;  // every connection ended by itself before the deadline, with no second signal
};
task<SignalStop> shutdown_on_signal(Server& server, SignalSet& signals, Clock::duration drain);

}  // namespace corio::net
