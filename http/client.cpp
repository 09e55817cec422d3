#include "corio/http/client.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <cerrno>
#include <deque>
#include <limits>
#include <stdexcept>
#include <optional>
#include <unordered_map>

#include "corio/http/chunked.hpp"
#include "corio/runtime/event.hpp"
#include "corio/runtime/metrics.hpp"
#include "corio/runtime/reactor.hpp"
#include "corio/tls/stream.hpp"

namespace corio::http {

namespace {

using namespace std::chrono_literals;

constexpr std::size_t kReadChunk = std::size_t{16} * 1024;

std::string millis(Clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

net::Error failure(int code, std::string context, std::string_view why) {
  return net::explained_error(code, std::move(context), why);
}

bool idempotent(std::string_view method) {
  for (std::string_view m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
    if (method == m) return true;
  }
  return false;
}

// A 1xx head other than 101 (100 Continue, 103 Early Hints): the real response follows it.
bool interim(std::string_view head) noexcept {
  if (head.size() < 12 || !head.starts_with("HTTP/1.")) return false;
  const std::string_view status = head.substr(9, 3);
  return status[0] == '1' && status != "101";
}

// corio_http_client_*: the phases of each request (Go's httptrace, as histograms), pool hits and misses,
// retries, and the breakers.
struct ClientMetrics {
  static metrics::Histogram phase(const char* name) {
    return metrics::Histogram("corio_http_client_phase_seconds", "Seconds of each phase of a request (dns, connect, tls, first_byte).",
                              metrics::seconds_buckets(), {{"phase", name}});
  }
  metrics::Histogram dns = phase("dns"), connect = phase("connect"), tls = phase("tls"), first_byte = phase("first_byte");
  metrics::Counter hits{"corio_http_client_pool_hits_total", "Requests sent on a pooled connection."};
  metrics::Counter misses{"corio_http_client_pool_misses_total", "Requests that dialed a new connection."};
  metrics::Counter retries{"corio_http_client_retries_total", "Idempotent requests sent again after their pooled connection closed."};
  metrics::Counter breaker_opened{"corio_http_client_breaker_opened_total", "Times a host's circuit breaker opened."};
  metrics::Counter breaker_rejected{"corio_http_client_breaker_rejected_total", "Requests failed at once by an open breaker."};
  metrics::Gauge breakers_open{"corio_http_client_breakers_open", "Hosts whose circuit breaker is open or half-open."};
};

ClientMetrics& client_metrics() {
  static ClientMetrics m;
  return m;
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

Clock::time_point earliest(Clock::time_point a, Clock::duration from_now) {
  const Clock::time_point now = Clock::now();
  return a - now < from_now ? a : now + from_now;
}

}  // namespace

// One connection, plain or TLS, with the bytes it received past what was consumed. Bytes count as
// received only once a read completes, so a read whose frame is destroyed leaves nothing behind.
struct Conn {
  std::string key;  // its pool: "http://host:port"
  std::optional<net::TcpStream> tcp;
  std::optional<tls::Stream> tls;
  std::vector<char> in;
  std::size_t begin = 0, end = 0;  // [begin, end) received, not consumed
  Clock::time_point idle_since{};
  bool reused = false;

  int fd() const noexcept { return tls ? tls->tcp().fd() : tcp->fd(); }
  std::string_view pending() const noexcept { return {in.data() + begin, end - begin}; }
  void consume(std::size_t n) noexcept { begin += n; }

  task<net::Result<std::size_t>> read_more(Clock::time_point deadline) {
    if (begin == end) {
      begin = end = 0;
    } else if (begin >= kReadChunk) {
      std::memmove(in.data(), in.data() + begin, end - begin);
      end -= begin;
      begin = 0;
    }
    if (in.size() < end + kReadChunk) in.resize(end + kReadChunk);
    const std::span<char> room(in.data() + end, kReadChunk);
    net::Result<std::size_t> n = std::size_t{0};
    if (tls) n = co_await tls->read_some(room, deadline);
    else n = co_await tcp->read_some(room).deadline(deadline);
    if (n) end += *n;
    co_return n;
  }
  task<net::Result<void>> write(std::string_view data, Clock::time_point deadline) {
    if (tls) co_return co_await tls->write_all(data, deadline);
    co_return co_await tcp->write_all(data, deadline);
  }
  // Whether the server closed it, reset it or sent something unasked while it sat in the pool. (TLS: what
  // tls::Stream already decrypted or buffered is not seen here; the next exchange's framing checks catch it.)
  bool spoiled_while_idle() const noexcept {
    if (!pending().empty()) return true;
    char c;
    const ssize_t n = ::recv(fd(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
  }
};

struct Client::State : std::enable_shared_from_this<Client::State> {
  explicit State(ClientOptions o) : options(std::move(o)) {}
  ClientOptions options;
  ClientStats stats;

  // A request queued at max_conns_per_host: handed a connection, or leave to dial one. Leaves the queue
  // (giving back what it was handed) if its task ends first.
  struct Waiter {
    State* state = nullptr;
    std::string key;
    Event ready;
    std::unique_ptr<Conn> handed;
    bool may_dial = false;
    bool queued = false;
    ~Waiter();
  };
  struct HostPool {
    std::vector<std::unique_ptr<Conn>> idle;  // most recently used last
    std::size_t open = 0;                     // dialing, in use and idle: what max_conns_per_host bounds
    std::deque<Waiter*> waiters;
    std::optional<CircuitBreaker> breaker;
  };
  std::unordered_map<std::string, HostPool> hosts;
  std::size_t idle_total = 0;
  bool closed = false;  // the Client is gone: nothing goes back to the pool
  bool sweeping = false;
  Event sweep_kick;

  // A connection slot of `hp` is free: the first waiter may dial.
  void slot_freed(HostPool& hp) {
    --hp.open;
    if (hp.waiters.empty()) return;
    Waiter* w = hp.waiters.front();
    hp.waiters.pop_front();
    w->queued = false;
    w->may_dial = true;
    ++hp.open;
    w->ready.set();
  }

  // What becomes of a connection whose exchange ended: pooled (or closed if the pool is full), closed
  // (TLS with close_notify, so that its session stays resumable), or dropped as it is (it failed).
  enum class After { reuse, close, drop };
  void release(std::unique_ptr<Conn> c, After after) {
    HostPool& hp = hosts[c->key];
    if (after == After::reuse && !c->pending().empty()) after = After::drop;  // bytes nobody asked for
    if (after == After::reuse && !closed) {
      c->reused = true;
      if (!hp.waiters.empty()) {
        Waiter* w = hp.waiters.front();
        hp.waiters.pop_front();
        w->queued = false;
        w->handed = std::move(c);
        w->ready.set();
        return;
      }
      if (hp.idle.size() < options.max_idle_per_host && idle_total < options.max_idle) {
        c->idle_since = Clock::now();
        hp.idle.push_back(std::move(c));
        ++idle_total;
        start_sweeper();
        return;
      }
    }
    retire(std::move(c), after != After::drop);
    slot_freed(hp);
  }
  // Closes a connection: a TLS one that did not fail says close_notify first, so that its session stays
  // resumable.
  static void retire(std::unique_ptr<Conn> c, bool graceful) {
    if (graceful && c->tls && Reactor::current() != nullptr) spawn(say_goodbye(std::move(c)));
  }
  static task<void> say_goodbye(std::unique_ptr<Conn> c) { (void)co_await c->tls->shutdown(Clock::now() + 1s); }

  std::optional<std::unique_ptr<Conn>> take_idle(HostPool& hp) {
    while (!hp.idle.empty()) {
      std::unique_ptr<Conn> c = std::move(hp.idle.back());
      hp.idle.pop_back();
      --idle_total;
      if (Clock::now() - c->idle_since >= options.idle_timeout) {
        ++stats.closed_idle;
        retire(std::move(c), true);
      } else if (c->spoiled_while_idle()) {
        ++stats.closed_by_peer;
      } else {
        return c;
      }
      c.reset();
      slot_freed(hp);
    }
    return std::nullopt;
  }

  // Closes pooled connections as their idle_timeout passes; runs while any is pooled.
  void start_sweeper() {
    if (sweeping || Reactor::current() == nullptr) return;
    sweeping = true;
    spawn(sweep(shared_from_this()));  // it holds the state until it ends
  }
  static task<void> sweep(std::shared_ptr<State> self) {
    while (!self->closed && self->idle_total > 0) {
      Clock::time_point next = Clock::time_point::max();
      const Clock::time_point now = Clock::now();
      for (auto& [key, hp] : self->hosts) {
        for (std::size_t i = 0; i < hp.idle.size();) {
          const Clock::time_point expires = hp.idle[i]->idle_since + self->options.idle_timeout;
          if (expires <= now || hp.idle[i]->spoiled_while_idle()) {
            (expires <= now ? self->stats.closed_idle : self->stats.closed_by_peer)++;
            retire(std::move(hp.idle[i]), expires <= now);
            hp.idle.erase(hp.idle.begin() + static_cast<std::ptrdiff_t>(i));
            --self->idle_total;
            self->slot_freed(hp);
          } else {
            next = std::min(next, expires);
            ++i;
          }
        }
      }
      self->sweep_kick.reset();
      // Also looks again every second: a server's close is seen then, not only at the next request.
      (void)co_await self->sweep_kick.wait(std::min(next, Clock::now() + 1s));
    }
    self->sweeping = false;
  }

  task<net::Result<std::unique_ptr<Conn>>> acquire(const Url& url, const std::string& key, Clock::time_point deadline,
                                                   Timings& t) {
    HostPool& hp = hosts[key];
    if (auto c = take_idle(hp)) {
      ++stats.reuses;
      client_metrics().hits.add();
      co_return std::move(*c);
    }
    if (options.max_conns_per_host != 0 && hp.open >= options.max_conns_per_host) {
      ++stats.waits;
      Waiter w{.state = this, .key = key, .queued = true};
      hp.waiters.push_back(&w);
      const Clock::time_point until = earliest(deadline, options.wait_timeout);
      const std::error_code ec = co_await w.ready.wait(until);
      if (w.handed) {
        ++stats.reuses;
        client_metrics().hits.add();
        co_return std::move(w.handed);
      }
      if (!w.may_dial) {
        co_return failure(ec ? ec.value() : ETIMEDOUT, "http: waiting for a connection to " + url.host_port(),
                          ec && ec.value() == ECANCELED
                              ? "stopped"
                              : "all " + std::to_string(options.max_conns_per_host) + " (max_conns_per_host) stayed in use");
      }
      w.may_dial = false;  // the slot is ours now
    } else {
      ++hp.open;
    }
    // Given back if the dial fails, or if this frame is destroyed while dialing.
    struct SlotHold {
      State* state;
      HostPool* hp;
      ~SlotHold() {
        if (hp != nullptr) state->slot_freed(*hp);
      }
    } hold{this, &hp};
    auto c = co_await connect(url, key, deadline, t);
    if (c) {
      hold.hp = nullptr;
      ++stats.dials;
      client_metrics().misses.add();
    }
    co_return c;
  }

  task<net::Result<std::unique_ptr<Conn>>> connect(const Url& url, const std::string& key, Clock::time_point deadline,
                                                   Timings& t) {
    net::DialOptions d = options.dial;
    if (deadline != Clock::time_point::max()) d.timeout = std::min(d.timeout, deadline - Clock::now());
    net::DialTrace trace;
    auto tcp = co_await net::dial(url.host_port(), d, &trace);
    t.dns = trace.resolve;
    t.connect = trace.connect;
    if (!tcp) co_return tcp.error();
    auto c = std::make_unique<Conn>();
    c->key = key;
    if (!url.https) {
      c->tcp.emplace(std::move(*tcp));
      co_return c;
    }
    if (options.tls == nullptr) {
      co_return failure(EINVAL, "http: " + url.host_port(), "an https:// URL needs ClientOptions::tls (a client tls::Context)");
    }
    const Clock::time_point began = Clock::now();
    auto s = co_await tls::Stream::connect(*options.tls, std::move(*tcp), url.host, earliest(deadline, options.tls_handshake_timeout));
    t.tls = Clock::now() - began;
    if (!s) co_return s.error();
    t.tls_resumed = s->session_reused();
    c->tls.emplace(std::move(*s));
    co_return c;
  }
};

Client::State::Waiter::~Waiter() {
  if (state == nullptr) return;
  HostPool& hp = state->hosts[key];
  if (queued) hp.waiters.erase(std::find(hp.waiters.begin(), hp.waiters.end(), this));
  if (handed) state->release(std::move(handed), After::reuse);  // handed over as its task ended: back to the pool
  if (may_dial) state->slot_freed(hp);
}

// A connection out of the pool, in one exchange: given back with release(); dropped as failed (its slot
// freed) if whoever holds it is destroyed first.
struct Lease {
  using After = Client::State::After;
  Lease() = default;
  Lease(std::shared_ptr<Client::State> s, std::unique_ptr<Conn> c) noexcept : state(std::move(s)), conn(std::move(c)) {}
  Lease(Lease&&) noexcept = default;
  Lease& operator=(Lease&& o) noexcept {
    release(After::drop);
    state = std::move(o.state);
    conn = std::move(o.conn);
    return *this;
  }
  ~Lease() { release(After::drop); }
  void release(After after) {
    if (conn) state->release(std::move(conn), after);
  }
  Conn* operator->() const noexcept { return conn.get(); }
  explicit operator bool() const noexcept { return conn != nullptr; }

  std::shared_ptr<Client::State> state;
  std::unique_ptr<Conn> conn;
};

struct ClientResponse::Exchange {
  std::shared_ptr<Client::State> state;
  Lease conn;
  std::string head;  // the response head's bytes: the views of ClientResponse::head_ point here
  BodyKind framing = BodyKind::none;
  std::uint64_t remaining = 0;  // Content-Length bytes still to come
  bool keep_alive = true;
  std::optional<ChunkedDecoder> chunked;
  bool chunked_done = false;
  std::string decoded;  // chunked data not yet read out
  std::size_t decoded_at = 0;
  bool done = false;
  Clock::time_point deadline = Clock::time_point::max();
  Clock::time_point started{};
  std::string what;  // "GET http://host:port/path", for errors

  std::optional<net::Error> error;  // how the body failed: every later read says it again

  // The body ended: the connection goes back to the pool (or is closed).
  void finish() {
    done = true;
    conn.release(keep_alive && framing != BodyKind::until_close ? Lease::After::reuse : Lease::After::close);
  }
  net::Error fail(net::Error e) {
    done = true;
    conn.release(Lease::After::drop);
    if (e.context.rfind("http: ", 0) != 0) e.context = what + ": " + e.context;
    error = e;
    return e;
  }

  task<net::Result<std::size_t>> read(std::span<char> buf);
};

task<net::Result<std::size_t>> ClientResponse::Exchange::read(std::span<char> buf) {
  if (error) co_return *error;
  if (done || buf.empty()) co_return std::size_t{0};
  for (;;) {
    if (framing == BodyKind::none) {
      finish();
      co_return std::size_t{0};
    }
    if (framing == BodyKind::length && remaining == 0) {
      finish();
      co_return std::size_t{0};
    }
    if (framing == BodyKind::chunked) {
      if (decoded_at < decoded.size()) {
        const std::size_t n = std::min(buf.size(), decoded.size() - decoded_at);
        std::memcpy(buf.data(), decoded.data() + decoded_at, n);
        decoded_at += n;
        if (decoded_at == decoded.size()) decoded.clear(), decoded_at = 0;
        co_return n;
      }
      if (chunked_done) {
        finish();
        co_return std::size_t{0};
      }
      if (!conn->pending().empty()) {
        std::size_t used = 0;
        const auto s = chunked->feed(conn->pending(), decoded, used);
        conn->consume(used);
        if (s == ChunkedDecoder::Status::error) {
          co_return fail(failure(EPROTO, what, std::string("a malformed chunked body: ") + chunked->reason()));
        }
        chunked_done = s == ChunkedDecoder::Status::done;
        continue;
      }
    } else if (!conn->pending().empty()) {
      std::size_t n = std::min(buf.size(), conn->pending().size());
      if (framing == BodyKind::length) n = static_cast<std::size_t>(std::min<std::uint64_t>(n, remaining));
      std::memcpy(buf.data(), conn->pending().data(), n);
      conn->consume(n);
      remaining -= framing == BodyKind::length ? n : 0;
      co_return n;
    }
    auto n = co_await conn->read_more(deadline);
    if (!n) co_return fail(n.error());
    if (*n == 0) {
      if (framing == BodyKind::until_close) {
        finish();
        co_return std::size_t{0};
      }
      co_return fail(failure(EPIPE, what, "the connection closed before the end of the body"));
    }
  }
}

namespace {

// A response dropped before its end: read on, up to max_drain, so that the connection can be reused.
task<void> drain(std::unique_ptr<ClientResponse::Exchange> x) {
  std::vector<char> sink(kReadChunk);
  std::uint64_t read = 0;
  x->deadline = earliest(x->deadline, 5s);
  while (!x->done) {
    auto n = co_await x->read(sink);
    if (!n) co_return;  // failed: closed
    read += *n;
    if (!x->done && read > x->state->options.max_drain) {
      (void)x->fail(failure(EMSGSIZE, x->what, "dropped: more than max_drain left"));
      co_return;
    }
  }
  ++x->state->stats.drained;
}

}  // namespace

ClientResponse::ClientResponse(std::unique_ptr<Exchange> x) : x_(std::move(x)) {}
ClientResponse::ClientResponse(ClientResponse&&) noexcept = default;

ClientResponse& ClientResponse::operator=(ClientResponse&& o) noexcept {
  if (this != &o) {
    abandon();
    x_ = std::move(o.x_);
    head_ = std::move(o.head_);  // its views point into the exchange, which moved with x_
    timings_ = o.timings_;
  }
  return *this;
}

ClientResponse::~ClientResponse() { abandon(); }

// A body not read to its end: drained in the background if it is small enough, else its connection closed.
void ClientResponse::abandon() noexcept {
  if (!x_ || x_->done || !x_->conn) return;
  const bool small = x_->framing == BodyKind::chunked ||
                     (x_->framing == BodyKind::length && x_->remaining <= x_->state->options.max_drain);
  if (small && x_->keep_alive && Reactor::current() != nullptr) {
    spawn(drain(std::move(x_)));
  } else {
    x_->done = true;
    x_->conn.release(Lease::After::drop);
  }
}

bool ClientResponse::body_done() const noexcept { return !x_ || x_->done; }

task<net::Result<std::size_t>> ClientResponse::read(std::span<char> buf) {
  auto n = co_await x_->read(buf);
  if (x_->done) timings_.total = Clock::now() - x_->started;
  co_return n;
}

task<net::Result<std::string>> ClientResponse::text() {
  std::string body;
  const std::uint64_t limit = x_->state->options.max_body;
  char buf[kReadChunk];
  for (;;) {
    auto n = co_await read(buf);
    if (!n) co_return n.error();
    if (*n == 0) co_return body;
    if (body.size() + *n > limit) {
      co_return x_->fail(failure(EMSGSIZE, x_->what, "a body over max_body (" + std::to_string(limit) + " bytes)"));
    }
    body.append(buf, *n);
  }
}

namespace {
ClientOptions checked(ClientOptions o) {
  const BreakerOptions& b = o.breaker;
  if (b.enabled && (b.trials == 0 || b.window == 0 || b.min_requests == 0 || b.min_requests > b.window ||
                    !(b.failure_ratio > 0 && b.failure_ratio <= 1))) {
    throw std::invalid_argument("http::Client: breaker options need trials, window and min_requests >= 1, "
                                "min_requests <= window and 0 < failure_ratio <= 1");
  }
  return o;
}
}  // namespace

Client::Client(ClientOptions options) : state_(std::make_shared<State>(checked(std::move(options)))) {}

Client::~Client() {
  state_->closed = true;
  for (auto& [key, hp] : state_->hosts) {  // its breakers stop counting as open
    if (hp.breaker && hp.breaker->state(Clock::now()) != CircuitBreaker::State::closed) client_metrics().breakers_open.add(-1);
  }
  for (auto& [key, hp] : state_->hosts) {
    state_->idle_total -= hp.idle.size();
    hp.open -= hp.idle.size();
    hp.idle.clear();
  }
  state_->sweep_kick.set();
}

const ClientStats& Client::stats() const noexcept { return state_->stats; }
std::size_t Client::idle_connections() const noexcept { return state_->idle_total; }

CircuitBreaker::State Client::breaker_state(std::string_view host_port) const {
  for (const char* scheme : {"http://", "https://"}) {
    auto it = state_->hosts.find(scheme + std::string(host_port));
    if (it != state_->hosts.end() && it->second.breaker) return it->second.breaker->state(Clock::now());
  }
  return CircuitBreaker::State::closed;
}

task<net::Result<ClientResponse>> Client::send(ClientRequest request) {
  std::shared_ptr<State> st = state_;  // the state outlives this call even if the Client does not
  const Clock::time_point started = Clock::now();
  ++st->stats.requests;
  auto url = Url::parse(request.url);
  if (!url) co_return url.error();
  const std::string what = "http: " + request.method + " " + request.url;
  if (!is_token(request.method)) co_return failure(EINVAL, what, "the method is not a token");
  bool close_after = false;
  for (const auto& [name, value] : request.headers) {
    if (!is_token(name) || value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      co_return failure(EINVAL, what, "header \"" + name + "\" is malformed (a name that is not a token, or CR, LF or NUL)");
    }
    for (std::string_view own : {"host", "content-length", "transfer-encoding"}) {
      if (equals_ignore_case(name, own)) co_return failure(EINVAL, what, "header \"" + name + "\" is the client's to set");
    }
    close_after = close_after || (equals_ignore_case(name, "connection") && value.find("close") != std::string::npos);
  }
  std::string key = (url->https ? "https://" : "http://") + url->host_port();
  std::transform(key.begin(), key.end(), key.begin(), [](char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; });

  // The breaker hears how this request went, even if its frame is destroyed first (as a failure).
  struct Outcome {
    State* st = nullptr;
    CircuitBreaker* breaker = nullptr;
    std::uint64_t generation = 0;
    void operator()(bool ok) {
      if (breaker == nullptr) return;
      const auto opened = breaker->opened();
      const bool was_closed = breaker->state(Clock::now()) == CircuitBreaker::State::closed;
      breaker->record(ok, generation, Clock::now());
      const bool is_closed = breaker->state(Clock::now()) == CircuitBreaker::State::closed;
      st->stats.breaker_opened += breaker->opened() - opened;
      client_metrics().breaker_opened.add(breaker->opened() - opened);
      if (was_closed != is_closed) client_metrics().breakers_open.add(is_closed ? -1 : 1);
      breaker = nullptr;
    }
    ~Outcome() { (*this)(false); }
  } outcome{.st = st.get()};
  State::HostPool& hp = st->hosts[key];
  if (st->options.breaker.enabled) {
    if (!hp.breaker) hp.breaker.emplace(st->options.breaker);
    if (!hp.breaker->allow(Clock::now(), outcome.generation)) {
      ++st->stats.breaker_rejected;
      client_metrics().breaker_rejected.add();
      co_return failure(ECONNREFUSED, what, "the circuit breaker for " + url->host_port() + " is open");
    }
    outcome.breaker = &*hp.breaker;
  }

  // The head, and the body with it unless it is large (then it goes from the request, uncopied).
  constexpr std::size_t kCopyBody = std::size_t{64} * 1024;
  std::string out;
  out.append(request.method).append(" ").append(url->target).append(" HTTP/1.1\r\nHost: ").append(url->authority());
  out.append("\r\nUser-Agent: ").append(st->options.user_agent).append("\r\n");
  for (const auto& [name, value] : request.headers) out.append(name).append(": ").append(value).append("\r\n");
  std::string_view tail;  // sent after `out`
  if (request.chunked) {
    out.append("Transfer-Encoding: chunked\r\n\r\n");
    if (!request.body.empty()) {
      char size[20];
      auto r = std::to_chars(size, size + sizeof size, request.body.size(), 16);
      out.append(size, r.ptr).append("\r\n");
    }
  } else {
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
      out.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
    }
    out.append("\r\n");
  }
  if (request.body.size() <= kCopyBody) out.append(request.body);
  else tail = request.body;
  const std::string_view trailer = request.chunked ? (request.body.empty() ? "0\r\n\r\n" : "\r\n0\r\n\r\n") : "";
  if (tail.empty()) out.append(trailer);

  Timings t;
  for (int attempt = 0;; ++attempt) {
    auto acquired = co_await st->acquire(*url, key, request.deadline, t);
    if (!acquired) co_return acquired.error();
    Lease c(st, std::move(*acquired));
    t.reused = c->reused;
    auto x = std::make_unique<ClientResponse::Exchange>();
    x->state = st;
    x->deadline = request.deadline;
    x->started = started;
    x->what = what;
    bool got_bytes = false;
    const Clock::time_point sent_at = Clock::now();
    // response_header_timeout covers sending the request too: a server that never reads cannot hold it.
    const Clock::time_point head_deadline = earliest(request.deadline, st->options.response_header_timeout);
    net::Result<void> sent = co_await c->write(out, head_deadline);
    if (sent && !tail.empty()) sent = co_await c->write(tail, head_deadline);
    if (sent && !tail.empty() && !trailer.empty()) sent = co_await c->write(trailer, head_deadline);
    std::optional<net::Error> error;
    std::size_t head_end = 0, scanned = 0;
    if (!sent) error = sent.error();
    while (!error) {
      head_end = find_head_end(c->pending(), scanned);
      if (head_end != 0) {
        // 1xx heads (100 Continue, 103 Early Hints) come before the real one: skipped.
        if (interim(c->pending())) {
          c->consume(head_end);
          scanned = 0;
          continue;
        }
        break;
      }
      if (c->pending().size() > st->options.limits.max_head_bytes) {
        error = failure(EPROTO, what, "a response head over " + std::to_string(st->options.limits.max_head_bytes) + " bytes");
        break;
      }
      auto n = co_await c->read_more(head_deadline);
      if (!n) {
        error = n.error();
        if (error->timed_out() && head_deadline < request.deadline) {
          error = failure(ETIMEDOUT, what,
                          "no response head within " + millis(st->options.response_header_timeout) + " (response_header_timeout)");
        }
        break;
      }
      if (*n == 0) {
        error = failure(EPIPE, what, "the connection closed before the response");
        break;
      }
      if (!got_bytes) {
        got_bytes = true;
        t.first_byte = Clock::now() - sent_at;
      }
    }
    if (error) {
      const bool replayable = c->reused && !got_bytes && idempotent(request.method) && attempt == 0 &&
                              (error->code == EPIPE || error->code == ECONNRESET || error->code == ECONNABORTED);
      c.release(State::After::drop);
      if (replayable) {
        ++st->stats.retries;
        client_metrics().retries.add();
        t.retried = true;
        continue;
      }
      if (error->context.rfind("http: ", 0) != 0) error->context = what + ": " + error->context;
      co_return *error;
    }
    if (!got_bytes) t.first_byte = Clock::now() - sent_at;  // the head was already buffered
    x->head.assign(c->pending().substr(0, head_end));
    c->consume(head_end);
    ClientResponse res(std::move(x));
    ClientResponse::Exchange& ex = *res.x_;
    if (HeadError e = parse_response_head(ex.head, res.head_, request.method, st->options.limits); e.status != 0) {
      ex.done = true;
      co_return failure(EPROTO, what, std::string("a malformed response head: ") + e.reason);  // `c` is dropped
    }
    ex.conn = std::move(c);
    ex.framing = res.head_.framing;
    ex.remaining = res.head_.content_length;
    // 101 Switching Protocols: the connection is no longer HTTP/1.1; it is never pooled.
    ex.keep_alive = res.head_.keep_alive && !close_after && res.head_.status != 101;
    // read() streams any length; text() applies max_body itself.
    if (ex.framing == BodyKind::chunked) ex.chunked.emplace(std::numeric_limits<std::uint64_t>::max(), st->options.limits);
    outcome(res.head_.status < 500);
    ClientMetrics& cm = client_metrics();
    if (!t.reused) {
      if (t.dns > Clock::duration::zero()) cm.dns.observe(seconds(t.dns));  // zero for an address: nothing resolved
      cm.connect.observe(seconds(t.connect));
      if (url->https) cm.tls.observe(seconds(t.tls));
    }
    cm.first_byte.observe(seconds(t.first_byte));
    t.total = Clock::now() - started;
    res.timings_ = t;
    if (ex.framing == BodyKind::none || (ex.framing == BodyKind::length && ex.remaining == 0)) ex.finish();
    co_return res;
  }
}

}  // namespace corio::http
