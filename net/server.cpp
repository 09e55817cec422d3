#include "corio/net/server.hpp"

#include <sys/ioctl.h>
#include <sys/socket.h>

#include "corio/runtime/runtime.hpp"

namespace corio::net {

namespace detail {
// One reactor's listener and the connections it serves (touched on that reactor only).
struct ServerShard {
  explicit ServerShard(TcpListener l) : listener(std::move(l)) {}
  void link(Connection& c) noexcept {
    c.next_ = connections;
    if (connections != nullptr) connections->prev_ = &c;
    connections = &c;
  }
  void unlink(Connection& c) noexcept {
    if (c.prev_ != nullptr) c.prev_->next_ = c.next_;
    else connections = c.next_;
    if (c.next_ != nullptr) c.next_->prev_ = c.prev_;
  }
  // Shutdown on this reactor: no more accepts, and the idle connections with nothing waiting to be read
  // are shut for reading (their read ends as at the end of the stream; unlike close(), it drops nothing).
  // One with bytes waiting has a request coming: it is served, and ends at its next idle().
  void drain() noexcept {
    draining = true;
    listener.close();
    for (Connection* c = connections; c != nullptr; c = c->next_) {
      if (c->idle_ && c->stream_.fd() >= 0 && unread(c->stream_.fd()) == 0) ::shutdown(c->stream_.fd(), SHUT_RD);
    }
  }
  static int unread(int fd) noexcept {
    int n = 0;
    return ::ioctl(fd, FIONREAD, &n) == 0 ? n : 0;
  }
  TcpListener listener;
  Connection* connections = nullptr;
  bool draining = false;
};
}  // namespace detail

Connection::Connection(TcpStream stream, detail::ServerShard& shard) noexcept : stream_(std::move(stream)), shard_(&shard) {
  shard.link(*this);
}

Connection::~Connection() { shard_->unlink(*this); }

bool Connection::draining() const noexcept { return shard_->draining; }

bool Connection::idle() noexcept {
  idle_ = true;
  return !shard_->draining;
}

struct Server::State {
  State(Handler h, std::uint32_t max_conns, const Address& at) : handler(std::move(h)), limiter(max_conns), address(at) {}
  Handler handler;
  ConnectionLimiter limiter;
  ServerCounters counters;
  Address address;
  std::vector<std::unique_ptr<detail::ServerShard>> shards;  // by reactor
};

namespace {
// Half-closes, then reads and drops what the client sends for up to a second (a frame of its own: every
// connection's frame would otherwise carry the buffer).
[[gnu::noinline]] task<void> linger(TcpStream& s) {  // noinline: never elided into the caller's frame
  if (!s.shutdown_write()) co_return;
  char sink[4096];
  const auto until = Clock::now() + std::chrono::seconds(1);
  for (;;) {
    auto n = co_await s.read_some(sink).deadline(until);
    if (!n || *n == 0) break;
  }
}

// `stream` is the accept loop's: the child starts at once (TaskScope::adopt) and takes it before its first
// suspension, so the frame holds no second copy (every idle connection keeps this frame).
corio::detail::ChildTask run_connection(Server::Handler& handler, detail::ServerShard& shard, TcpStream&& stream,
                                        ConnectionLimiter::Permit permit) {
  Connection conn(std::move(stream), shard);
  detail::net_metrics().active.add(1);
  bool threw = false;
  // One co_await for both the handler and, after a drain that left a request unread, linger(): a close
  // with unread bytes would reset the connection and could destroy the replies just written. (One await
  // site keeps the frame, which every idle connection holds, in a smaller size class.)
  task<void> work = handler(conn);
  for (bool handled = false;; handled = true) {
    try {
      co_await std::move(work);
    } catch (...) {
      threw = true;
      corio::detail::report_escaped(std::current_exception(), "connection handler");
    }
    if (handled || !shard.draining || !conn.stream().is_open() || detail::ServerShard::unread(conn.stream().fd()) == 0) break;
    work = linger(conn.stream());
  }
  detail::count_closed(threw, (co_await current_stop_token()).stop_requested());
  (void)permit;
}

task<void> join(TaskScope& scope) { co_await scope.join(); }

// Stopped (close()) or not, a listener is closed on its own reactor as soon as its loop ends.
task<void> close_after(task<void> loop, TcpListener& listener) {
  co_await std::move(loop);
  listener.close();
}

task<void> close_on_signal(Server& server, SignalSet& signals) {
  if (co_await signals.next() > 0) server.close();
}
}  // namespace

Result<std::unique_ptr<Server>> Server::start(const Address& at, Handler handler, ServerOptions options) {
  auto state = std::make_shared<State>(std::move(handler), options.max_conns, at);
  const unsigned reactors = Reactor::current()->runtime()->size();
  for (unsigned i = 0; i < reactors; ++i) {
    // Only the first may find the port taken by someone else; the others join it.
    auto l = TcpListener::bind(state->address, {.reuseport = true, .share_port = i > 0 || options.share_port,
                                                .accepted = options.accepted});
    if (!l) return l.error();
    state->address = l->local_address();
    state->shards.push_back(std::make_unique<detail::ServerShard>(std::move(*l)));
  }
  std::unique_ptr<Server> server(new Server(state));
  for (unsigned i = 0; i < reactors; ++i) server->loops_.spawn(serve_on(state, i));
  return server;
}

Server::Server(std::shared_ptr<State> state) : state_(std::move(state)) {}

Server::~Server() = default;

const Address& Server::address() const noexcept { return state_->address; }
const ServerCounters& Server::counters() const noexcept { return state_->counters; }
const ConnectionLimiter& Server::limiter() const noexcept { return state_->limiter; }

task<void> Server::serve_on(std::shared_ptr<State> state, unsigned reactor) {
  State& s = *state;
  detail::ServerShard& shard = *s.shards[reactor];
  // The loop's own copy of `state` keeps what it uses alive, even if this task is destroyed first.
  auto start = [state, &shard](TcpStream&& conn, ConnectionLimiter::Permit permit) {
    return run_connection(state->handler, shard, std::move(conn), std::move(permit));
  };
  co_await submit_to(reactor, close_after(detail::accept_loop(shard.listener, s.limiter, s.counters, std::move(start)),
                                          shard.listener));
}

task<bool> Server::shutdown(Clock::time_point deadline) {
  for (unsigned i = 0; i < state_->shards.size(); ++i) {
    co_await submit_to(i, [state = state_, i] { state->shards[i]->drain(); });
  }
  const bool joined = co_await with_timeout(deadline - Clock::now(), join(loops_));
  co_return joined && !closed_;
}

task<SignalStop> shutdown_on_signal(Server& server, SignalSet& signals, Clock::duration drain) {
  const int signal = co_await signals.next();
  if (signal < 0) co_return SignalStop{signal, false};  // stopped, or the read failed: the server is untouched
  TaskScope second;
  second.spawn(close_on_signal(server, signals));
  const bool in_time = co_await server.shutdown(Clock::now() + drain);
  second.request_stop();
  co_await second.join();
  co_return SignalStop{signal, in_time};
}

}  // namespace corio::net
