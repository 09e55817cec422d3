#include "corio/net/server.hpp"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>

#include "corio/runtime/event.hpp"
#include "corio/runtime/message.hpp"
#include "corio/runtime/runtime.hpp"

namespace corio::net {

namespace detail {
// One reactor's listener and the connections it serves (touched on that reactor only). The connections are
// its children as a TaskScope's would be: they share its stop, join() waits for the last one, and
// destroy_connections() destroys what is left (the accept loop's frame going first).
struct ServerShard {
  ServerShard(unsigned reactor, std::optional<TcpListener> l, Server::Handler& h)
      : id(reactor), handler(&h), listener(std::move(l)) {}
  ServerShard(const ServerShard&) = delete;
  ServerShard& operator=(const ServerShard&) = delete;

  // A new connection, already counted in `load`: runs handler(connection) until its first suspension.
  void start(TcpStream&& stream, ConnectionLimiter::Permit permit) {
    Connection* c = nullptr;
    try {
      c = new Connection(std::move(stream), *this, std::move(permit));
    } catch (...) {
      load.fetch_sub(1, std::memory_order_relaxed);
      throw;
    }
    task<void> work;
    try {
      work = (*handler)(*c);
    } catch (...) {  // std::function's bad_function_call, a frame that could not be allocated
      c->threw_ = true;
      corio::detail::report_escaped(std::current_exception(), "connection handler");
      end(*c).resume();  // the joiner, should this have been the last
      return;
    }
    c->run(std::move(work));
  }
  void link(Connection& c) noexcept {
    c.next_ = connections;
    if (connections != nullptr) connections->prev_ = &c;
    connections = &c;
    ++count;
    net_metrics().active.add(1);
  }
  void unlink(Connection& c) noexcept {
    if (c.prev_ != nullptr) c.prev_->next_ = c.next_;
    else connections = c.next_;
    if (c.next_ != nullptr) c.next_->prev_ = c.prev_;
    --count;
  }
  // The connection's last task has ended (or was destroyed): it goes, and the joiner runs after the last.
  std::coroutine_handle<> end(Connection& c) noexcept {
    count_closed(c.threw_, stop.stop_requested());
    // Uncounted before its permit goes (in the delete, a release): whoever sees the limiter's active()
    // drop sees connections_per_reactor() drop too.
    load.fetch_sub(1, std::memory_order_relaxed);
    delete &c;
    return count == 0 && joiner ? std::exchange(joiner, {}) : std::noop_coroutine();
  }
  void destroy_connections() noexcept {
    // First: a connection's call on another reactor (submit_to) is stopped, and unwinds there.
    stop.request_stop();
    while (connections != nullptr) {
      Connection& c = *connections;
      std::exchange(c.task_, {}).destroy();
      (void)end(c);
    }
  }

  // Shutdown on this reactor: no more accepts, and the idle connections with nothing waiting to be read
  // are shut for reading (their read ends as at the end of the stream; unlike close(), it drops nothing).
  // One with bytes waiting has a request coming: it is served, and ends at its next idle().
  void drain() noexcept {
    draining = true;
    if (listener) listener->close();
    for (Connection* c = connections; c != nullptr; c = c->next_) {
      if (c->idle_ && c->stream_.fd() >= 0 && unread(c->stream_.fd()) == 0) ::shutdown(c->stream_.fd(), SHUT_RD);
    }
  }
  static int unread(int fd) noexcept {
    int n = 0;
    return ::ioctl(fd, FIONREAD, &n) == 0 ? n : 0;
  }

  // co_await join(): every connection has ended. A stop of the awaiting task stops them all.
  class Join {
   public:
    explicit Join(ServerShard& s) noexcept : shard_(s) {}
    Join(const Join&) = delete;
    Join& operator=(const Join&) = delete;
    ~Join() {
      if (shard_.joiner == me_) shard_.joiner = {};  // destroyed while joining (its task was)
    }
    bool await_ready() const noexcept { return shard_.count == 0; }
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
      shard_.joiner = me_ = h;
      if (const std::stop_token* token = corio::detail::stop_token_of(h); token != nullptr && token->stop_possible()) {
        relay_.emplace(*token, corio::detail::StopRelay{&shard_.stop});
      }
    }
    void await_resume() noexcept { relay_.reset(); }

   private:
    ServerShard& shard_;
    std::coroutine_handle<> me_;
    std::optional<std::stop_callback<corio::detail::StopRelay>> relay_;
  };
  Join join() noexcept { return Join(*this); }

  const unsigned id;  // the reactor's
  Server::Handler* const handler;
  std::optional<TcpListener> listener;  // none on the reactors a least_loaded server hands connections to
  // Connections given to this reactor (any thread reads it): running, or handed off and on their way.
  std::atomic<std::uint32_t> load{0};
  Connection* connections = nullptr;
  std::size_t count = 0;
  std::stop_source stop;           // the connections' ambient stop token
  std::coroutine_handle<> joiner;  // awaiting join()
  Event handoffs_done;             // the acceptor's last hand-off to this reactor has arrived
  bool closed = false;             // joined: a hand-off arriving now is closed
  bool draining = false;
};

// A connection the acceptor hands to another reactor (least_loaded), as a message to it. `keep` (the
// server's state) keeps the shard alive until it arrives. The descriptor travels bare: a reactor that
// shuts down first closes it without its backend.
class Handoff final : public Message {
 public:
  Handoff(std::shared_ptr<void> keep, ServerShard& to, TcpStream&& stream, ConnectionLimiter::Permit permit) noexcept
      : keep_(std::move(keep)), to_(&to), peer_(stream.peer()), fd_(stream.release()), permit_(std::move(permit)) {}
  void run() noexcept override {
    ServerShard& to = *to_;
    if (to.closed) {
      discard();  // the shard was stopped and joined before this arrived
      return;
    }
    try {
      to.start(TcpStream(std::exchange(fd_, -1), peer_), std::move(permit_));
    } catch (...) {  // no memory for the connection: the stream closed on the way out
      corio::detail::report_escaped(std::current_exception(), "connection hand-off");
    }
    delete this;
  }
  void discard() noexcept override {
    if (fd_ >= 0) ::close(fd_);
    to_->load.fetch_sub(1, std::memory_order_relaxed);
    delete this;
  }

 private:
  std::shared_ptr<void> keep_;
  ServerShard* to_;
  Address peer_;
  int fd_;
  ConnectionLimiter::Permit permit_;
};

// Sent after the acceptor's last hand-off (a reactor's messages run in the order they were posted).
class HandoffsDone final : public Message {
 public:
  HandoffsDone(std::shared_ptr<void> keep, ServerShard& to) noexcept : keep_(std::move(keep)), to_(&to) {}
  void run() noexcept override {
    to_->handoffs_done.set();
    delete this;
  }

 private:
  std::shared_ptr<void> keep_;
  ServerShard* to_;
};

ServerShard& least_loaded(const std::vector<std::unique_ptr<ServerShard>>& shards) noexcept {
  ServerShard* best = shards.front().get();
  std::uint32_t least = best->load.load(std::memory_order_relaxed);
  for (const auto& s : shards) {
    if (const std::uint32_t l = s->load.load(std::memory_order_relaxed); l < least) {
      least = l;
      best = s.get();
    }
  }
  return *best;
}
}  // namespace detail

Connection::Connection(TcpStream&& stream, detail::ServerShard& shard, ConnectionLimiter::Permit permit) noexcept
    : stream_(std::move(stream)), shard_(&shard), permit_(std::move(permit)) {
  shard.link(*this);
}

Connection::~Connection() { shard_->unlink(*this); }

bool Connection::draining() const noexcept { return shard_->draining; }

unsigned Connection::reactor() const noexcept { return shard_->id; }

bool Connection::idle() noexcept {
  idle_ = true;
  return !shard_->draining;
}

void Connection::run(task<void> work) noexcept {
  task_ = corio::detail::own(std::move(work), *this, shard_->stop.get_token());
  task_.resume();  // may end inside (task_ended): `this` is not touched after
}

namespace {
// Half-closes, then reads and drops what the client sends for up to a second (a frame of its own: every
// connection's frame would otherwise carry the buffer).
task<void> linger(TcpStream& s) {
  if (!s.shutdown_write()) co_return;
  char sink[4096];
  const auto until = Clock::now() + std::chrono::seconds(1);
  for (;;) {
    auto n = co_await s.read_some(sink).deadline(until);
    if (!n || *n == 0) break;
  }
}
}  // namespace

std::coroutine_handle<> Connection::task_ended(corio::detail::PromiseBase& task) noexcept {
  if (task.exception) {
    threw_ = true;
    corio::detail::report_escaped(task.exception, lingered_ ? "connection linger" : "connection handler");
  }
  std::exchange(task_, {}).destroy();
  // After a drain that left a request unread: a close with unread bytes would reset the connection and
  // could destroy the replies just written.
  if (!lingered_ && shard_->draining && stream_.is_open() && detail::ServerShard::unread(stream_.fd()) > 0) {
    lingered_ = true;
    try {
      task_ = corio::detail::own(linger(stream_), *this, shard_->stop.get_token());
      return task_;
    } catch (...) {  // no frame for it: close now
      task_ = {};
    }
  }
  return shard_->end(*this);
}

struct Server::State {
  State(Handler h, const ServerOptions& o, const Address& at)
      : handler(std::move(h)), limiter(o.max_conns), address(at), accept(o.accept) {}
  Handler handler;
  ConnectionLimiter limiter;
  ServerCounters counters;
  Address address;
  ServerOptions::Accept accept;
  std::vector<std::unique_ptr<detail::ServerShard>> shards;  // by reactor
};

namespace {
task<void> join(TaskScope& scope) { co_await scope.join(); }

// Stopped (close()) or not, a listener is closed on its own reactor as soon as its loop ends.
task<void> close_after(task<void> loop, std::optional<TcpListener>& listener) {
  co_await std::move(loop);
  if (listener) listener->close();
}

task<void> close_on_signal(Server& server, SignalSet& signals) {
  if (co_await signals.next() > 0) server.close();
}
}  // namespace

Result<std::unique_ptr<Server>> Server::start(const Address& at, Handler handler, ServerOptions options) {
  auto state = std::make_shared<State>(std::move(handler), options, at);
  const unsigned reactors = Reactor::current()->runtime()->size();
  for (unsigned i = 0; i < reactors; ++i) {
    std::optional<TcpListener> listener;
    if (i == 0 || options.accept == ServerOptions::Accept::reuse_port) {
      // Only the first may find the port taken by someone else; the others join it.
      auto l = TcpListener::bind(state->address, {.reuseport = true, .share_port = i > 0 || options.share_port,
                                                  .accepted = options.accepted});
      if (!l) return l.error();
      state->address = l->local_address();
      listener.emplace(std::move(*l));
    }
    state->shards.push_back(std::make_unique<detail::ServerShard>(i, std::move(listener), state->handler));
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

std::vector<std::uint32_t> Server::connections_per_reactor() const {
  std::vector<std::uint32_t> n;
  for (const auto& s : state_->shards) n.push_back(s->load.load(std::memory_order_relaxed));
  return n;
}

task<void> Server::serve_on(std::shared_ptr<State> state, unsigned reactor) {
  detail::ServerShard& shard = *state->shards[reactor];
  co_await submit_to(reactor, close_after(serve_shard(state, shard), shard.listener));
}

// One reactor's accept loop (or, on a reactor a least_loaded server hands connections to, the wait for the
// last hand-off), then the join of its connections. `state` (this frame's own copy) keeps what they use
// alive; should this frame be destroyed first, the connections left are destroyed with it.
task<void> Server::serve_shard(std::shared_ptr<State> state, detail::ServerShard& shard) {
  struct Reap {
    detail::ServerShard& shard;
    ~Reap() {
      shard.destroy_connections();
      shard.closed = true;
    }
  } reap{shard};
  if (!shard.listener) {
    (void)co_await shard.handoffs_done.wait();  // or stopped
  } else if (state->accept == ServerOptions::Accept::least_loaded) {
    Reactor& here = *Reactor::current();
    co_await detail::accept_loop(*shard.listener, state->limiter, state->counters,
                                 [&](TcpStream&& conn, ConnectionLimiter::Permit permit) {
                                   detail::ServerShard& to = detail::least_loaded(state->shards);
                                   if (&to == &shard) {
                                     to.load.fetch_add(1, std::memory_order_relaxed);
                                     shard.start(std::move(conn), std::move(permit));
                                     return;
                                   }
                                   // Counted once the hand-off exists: a failed allocation leaves no count.
                                   auto* handoff = new detail::Handoff(state, to, std::move(conn), std::move(permit));
                                   to.load.fetch_add(1, std::memory_order_relaxed);
                                   here.runtime()->reactor(to.id).post(handoff);
                                 });
    for (const auto& to : state->shards) {
      if (to.get() != &shard) here.runtime()->reactor(to->id).post(new detail::HandoffsDone(state, *to));
    }
  } else {
    co_await detail::accept_loop(*shard.listener, state->limiter, state->counters,
                                 [&](TcpStream&& conn, ConnectionLimiter::Permit permit) {
                                   shard.load.fetch_add(1, std::memory_order_relaxed);
                                   shard.start(std::move(conn), std::move(permit));
                                 });
  }
  // A stop (now or later) reaches the connections through the join; a closed listener lets them finish.
  co_await shard.join();
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
