#include "corio/http/client.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <cerrno>
#include <deque>
#include <optional>
#include <unordered_map>

#include "corio/http/chunked.hpp"
#include "corio/runtime/event.hpp"
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

Clock::time_point earliest(Clock::time_point a, Clock::duration from_now) {
  const Clock::time_point now = Clock::now();
  return a - now < from_now ? a : now + from_now;
}

}  // namespace

// One connection, plain or TLS, with the bytes it received past what was consumed.
struct Conn {
  std::string key;  // its pool: "http://host:port"
  std::optional<net::TcpStream> tcp;
  std::optional<tls::Stream> tls;
  std::string in;
  std::size_t begin = 0;
  Clock::time_point idle_since{};
  bool reused = false;

  int fd() const noexcept { return tls ? tls->tcp().fd() : tcp->fd(); }
  std::string_view pending() const noexcept { return std::string_view(in).substr(begin); }
  void consume(std::size_t n) noexcept { begin += n; }

  task<net::Result<std::size_t>> read_more(Clock::time_point deadline) {
    if (begin == in.size()) {
      in.clear();
      begin = 0;
    } else if (begin >= kReadChunk) {
      in.erase(0, begin);
      begin = 0;
    }
    const std::size_t old = in.size();
    in.resize(old + kReadChunk);
    const std::span<char> room(in.data() + old, kReadChunk);
    net::Result<std::size_t> n = std::size_t{0};
    if (tls) n = co_await tls->read_some(room, deadline);
    else n = co_await tcp->read_some(room).deadline(deadline);
    in.resize(old + (n ? *n : 0));
    co_return n;
  }
  task<net::Result<void>> write(std::string_view data, Clock::time_point deadline) {
    if (tls) co_return co_await tls->write_all(data, deadline);
    co_return co_await tcp->write_all(data, deadline);
  }
  // Whether the server closed it, reset it or sent something unasked while it sat in the pool.
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
    if (after != After::drop && c->tls && Reactor::current() != nullptr) spawn(say_goodbye(std::move(c)));
    c.reset();
    slot_freed(hp);
  }
  static task<void> say_goodbye(std::unique_ptr<Conn> c) { (void)co_await c->tls->shutdown(Clock::now() + 1s); }

  std::optional<std::unique_ptr<Conn>> take_idle(HostPool& hp) {
    while (!hp.idle.empty()) {
      std::unique_ptr<Conn> c = std::move(hp.idle.back());
      hp.idle.pop_back();
      --idle_total;
      if (Clock::now() - c->idle_since >= options.idle_timeout) {
        ++stats.closed_idle;
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
    auto c = co_await connect(url, key, deadline, t);
    if (!c) slot_freed(hosts[key]);
    else ++stats.dials;
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

struct ClientResponse::Exchange {
  std::shared_ptr<Client::State> state;
  std::unique_ptr<Conn> conn;
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

  // The body ended: the connection goes back to the pool (or is closed).
  void finish() {
    done = true;
    if (conn) state->release(std::move(conn), keep_alive && framing != BodyKind::until_close ? Client::State::After::reuse : Client::State::After::close);
  }
  void fail() {
    done = true;
    if (conn) state->release(std::move(conn), Client::State::After::drop);
  }

  task<net::Result<std::size_t>> read(std::span<char> buf);
};

task<net::Result<std::size_t>> ClientResponse::Exchange::read(std::span<char> buf) {
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
          fail();
          co_return failure(EPROTO, what, std::string("a malformed chunked body: ") + chunked->reason());
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
    if (!n) {
      fail();
      co_return n.error();
    }
    if (*n == 0) {
      if (framing == BodyKind::until_close) {
        finish();
        co_return std::size_t{0};
      }
      fail();
      co_return failure(EPIPE, what, "the connection closed before the end of the body");
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
      x->fail();
      co_return;
    }
  }
  ++x->state->stats.drained;
}

}  // namespace

ClientResponse::ClientResponse(std::unique_ptr<Exchange> x) : x_(std::move(x)) {}
ClientResponse::ClientResponse(ClientResponse&&) noexcept = default;
ClientResponse& ClientResponse::operator=(ClientResponse&&) noexcept = default;

ClientResponse::~ClientResponse() {
  if (!x_ || x_->done || !x_->conn) return;
  const bool small = x_->framing == BodyKind::chunked ||
                     (x_->framing == BodyKind::length && x_->remaining <= x_->state->options.max_drain);
  if (small && x_->keep_alive && Reactor::current() != nullptr) {
    spawn(drain(std::move(x_)));
  } else {
    x_->fail();
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
      x_->fail();
      co_return failure(EMSGSIZE, x_->what, "a body over max_body (" + std::to_string(limit) + " bytes)");
    }
    body.append(buf, *n);
  }
}

Client::Client(ClientOptions options) : state_(std::make_shared<State>(std::move(options))) {}

Client::~Client() {
  state_->closed = true;
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
  const std::string what = request.method + " " + request.url;
  if (!is_token(request.method)) co_return failure(EINVAL, "http: " + what, "the method is not a token");
  for (const auto& [name, value] : request.headers) {
    if (!is_token(name) || value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      co_return failure(EINVAL, "http: " + what, "header \"" + name + "\" is malformed (a name that is not a token, or CR, LF or NUL)");
    }
  }
  std::string key = (url->https ? "https://" : "http://") + url->host_port();
  std::transform(key.begin(), key.end(), key.begin(), [](char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; });

  State::HostPool& hp = st->hosts[key];
  std::uint64_t generation = 0;
  if (st->options.breaker.enabled) {
    if (!hp.breaker) hp.breaker.emplace(st->options.breaker);
    if (!hp.breaker->allow(Clock::now(), generation)) {
      ++st->stats.breaker_rejected;
      co_return failure(ECONNREFUSED, "http: " + what, "the circuit breaker for " + url->host_port() + " is open");
    }
  }
  auto outcome = [&](bool ok) {
    if (!hp.breaker) return;
    const auto opened = hp.breaker->opened();
    hp.breaker->record(ok, generation, Clock::now());
    st->stats.breaker_opened += hp.breaker->opened() - opened;
  };

  std::string out;
  out.append(request.method).append(" ").append(url->target).append(" HTTP/1.1\r\nHost: ").append(url->authority());
  out.append("\r\nUser-Agent: ").append(st->options.user_agent).append("\r\n");
  for (const auto& [name, value] : request.headers) out.append(name).append(": ").append(value).append("\r\n");
  if (request.chunked) {
    out.append("Transfer-Encoding: chunked\r\n\r\n");
    if (!request.body.empty()) {
      char size[20];
      auto r = std::to_chars(size, size + sizeof size, request.body.size(), 16);
      out.append(size, r.ptr).append("\r\n").append(request.body).append("\r\n");
    }
    out.append("0\r\n\r\n");
  } else {
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
      out.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
    }
    out.append("\r\n").append(request.body);
  }

  Timings t;
  for (int attempt = 0;; ++attempt) {
    auto conn = co_await st->acquire(*url, key, request.deadline, t);
    if (!conn) {
      outcome(false);
      co_return conn.error();
    }
    std::unique_ptr<Conn> c = std::move(*conn);
    t.reused = c->reused;
    auto x = std::make_unique<ClientResponse::Exchange>();
    x->state = st;
    x->deadline = request.deadline;
    x->started = started;
    x->what = "http: " + what;
    bool got_bytes = false;
    const Clock::time_point sent_at = Clock::now();
    net::Result<void> sent = co_await c->write(out, request.deadline);
    const Clock::time_point head_deadline = earliest(request.deadline, st->options.response_header_timeout);
    std::optional<net::Error> error;
    std::size_t head_end = 0;
    if (!sent) error = sent.error();
    while (!error) {
      std::size_t scanned = 0;
      head_end = find_head_end(c->pending(), scanned);
      if (head_end != 0) {
        // 1xx (100 Continue, 103 Early Hints) heads come before the real one: skipped.
        if (interim(c->pending())) {
          c->consume(head_end);
          continue;
        }
        break;
      }
      if (HeadError e = check_partial_head(c->pending(), st->options.limits); e.status != 0) {
        error = failure(EPROTO, x->what, std::string("the response head: ") + e.reason);
        break;
      }
      auto n = co_await c->read_more(head_deadline);
      if (!n) {
        error = n.error();
        if (error->timed_out() && head_deadline < request.deadline) {
          error = failure(ETIMEDOUT, x->what,
                          "no response head within " + millis(st->options.response_header_timeout) + " (response_header_timeout)");
        }
        break;
      }
      if (*n == 0) {
        error = failure(EPIPE, x->what, "the connection closed before the response");
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
      st->release(std::move(c), State::After::drop);
      if (replayable) {
        ++st->stats.retries;
        t.retried = true;
        continue;
      }
      outcome(false);
      if (error->context.rfind("http: ", 0) != 0) error->context = x->what + ": " + error->context;
      co_return *error;
    }
    if (!got_bytes) t.first_byte = Clock::now() - sent_at;  // the head was already buffered
    x->head.assign(c->pending().substr(0, head_end));
    c->consume(head_end);
    ClientResponse res(std::move(x));
    ClientResponse::Exchange& ex = *res.x_;
    if (HeadError e = parse_response_head(ex.head, res.head_, request.method, st->options.limits); e.status != 0) {
      st->release(std::move(c), State::After::drop);
      outcome(false);
      ex.done = true;
      co_return failure(EPROTO, ex.what, std::string("a malformed response head: ") + e.reason);
    }
    ex.conn = std::move(c);
    ex.framing = res.head_.framing;
    ex.remaining = res.head_.content_length;
    ex.keep_alive = res.head_.keep_alive;
    if (ex.framing == BodyKind::chunked) ex.chunked.emplace(st->options.max_body, st->options.limits);
    outcome(res.head_.status < 500);
    t.total = Clock::now() - started;
    res.timings_ = t;
    if (ex.framing == BodyKind::none || (ex.framing == BodyKind::length && ex.remaining == 0)) ex.finish();
    co_return res;
  }
}

}  // namespace corio::http
