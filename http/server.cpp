#include "corio/http/server.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <ctime>

#include "corio/http/chunked.hpp"
#include "corio/net/recv_stream.hpp"
#include "corio/runtime/log.hpp"
#include "corio/runtime/metrics.hpp"
#include "corio/runtime/reactor.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/tls/stream.hpp"

namespace corio::http {

namespace {
// Per reactor: the requests in handlers now (load shedding), on its own cache line.
struct alignas(64) Shard {
  std::uint32_t in_flight = 0;
};
}  // namespace

// corio_http_*, labelled with the server's name: requests by method and status class, their seconds
// (head received to response queued), refusals and shed requests.
struct HttpMetrics {
  static constexpr std::array<std::string_view, 8> kMethods = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "other"};
  explicit HttpMetrics(const std::string& server)
      : seconds("corio_http_request_seconds", "Seconds from a request's head (parsed) to its response queued, body read included.",
                metrics::seconds_buckets(), {{"server", server}}),
        shed_in_flight("corio_http_shed_total", "Requests answered 503 by load shedding, by why.",
                       {{"server", server}, {"reason", "max_in_flight"}}),
        shed_busy("corio_http_shed_total", "Requests answered 503 by load shedding, by why.",
                  {{"server", server}, {"reason", "max_utilisation"}}) {
    for (std::size_t m = 0; m < kMethods.size(); ++m) {
      for (int c = 0; c < 5; ++c) {
        requests.emplace_back("corio_http_requests_total", "Requests answered, by method and status class.",
                              metrics::Labels{{"server", server}, {"method", std::string(kMethods[m])},
                                              {"code", std::to_string(c + 1) + "xx"}});
      }
    }
    for (int c = 0; c < 5; ++c) {
      refused.emplace_back("corio_http_refused_total", "Requests the server answered itself (400, 408, 413, 503, ...), by status class.",
                           metrics::Labels{{"server", server}, {"code", std::to_string(c + 1) + "xx"}});
    }
  }
  void answered(std::string_view method, int status) noexcept {
    std::size_t m = 0;
    while (m + 1 < kMethods.size() && kMethods[m] != method) ++m;
    requests[m * 5 + static_cast<std::size_t>(std::clamp(status / 100, 1, 5) - 1)].add();
  }
  std::vector<metrics::Counter> requests;  // by method, then class
  std::vector<metrics::Counter> refused;   // by class
  metrics::Histogram seconds;
  metrics::Counter shed_in_flight, shed_busy;
};

struct Server::State {
  State(Handler h, const ServerOptions& o, unsigned reactors)
      : handler(std::move(h)), options(o), shards(reactors), metrics(o.name) {}
  Handler handler;
  ServerOptions options;
  ServerCounters counters;
  std::vector<Shard> shards;
  HttpMetrics metrics;
};

namespace {

using namespace std::chrono_literals;

constexpr std::size_t kFlushAt = std::size_t{64} * 1024;  // pipelined responses leave once this much is ready

// "HTTP/1.1 200 OK\r\nServer: corio\r\nDate: Tue, 01 Dec 2026 18:00:00 GMT\r\n", kept per thread: the
// date is formatted once a second, the status line again only when the status differs from the last.
std::string_view status_lines(int status) noexcept {
  thread_local char text[192];
  thread_local std::size_t date_at = 0, len = 0;
  thread_local int last_status = 0;
  thread_local std::time_t last = -1;
  thread_local char date[64];
  thread_local std::size_t date_len = 0;
  const std::time_t now = std::time(nullptr);
  bool copy_date = false;
  if (now != last || date_len == 0) {
    std::tm g{};
    gmtime_r(&now, &g);
    date_len = std::strftime(date, sizeof date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &g);
    last = now;
    copy_date = true;
  }
  if (status != last_status || date_at == 0) {
    const std::string_view reason = reason_phrase(status);
    constexpr std::string_view version = "HTTP/1.1 ", server = "\r\nServer: corio\r\n";
    char* p = text;
    std::memcpy(p, version.data(), version.size());
    p = std::to_chars(p + version.size(), p + 20, status).ptr;
    *p++ = ' ';
    const std::size_t n = std::min(reason.size(), std::size_t{64});  // the longest is 31 bytes
    std::memcpy(p, reason.data(), n);
    std::memcpy(p + n, server.data(), server.size());
    date_at = static_cast<std::size_t>(p + n + server.size() - text);
    last_status = status;
    copy_date = true;
  }
  if (copy_date) {
    std::memcpy(text + date_at, date, date_len);
    len = date_at + date_len;
  }
  return {text, len};
}

// Appends a response head's pieces to a string with one resize (std::string::append per piece is a
// call each; the literals here are copied inline).
class HeadWriter {
 public:
  HeadWriter(std::string& out, std::size_t most) : out_(out), start_(out.size()) {
    out_.resize(start_ + most);
    p_ = out_.data() + start_;
  }
  HeadWriter(const HeadWriter&) = delete;
  HeadWriter& operator=(const HeadWriter&) = delete;
  ~HeadWriter() { out_.resize(static_cast<std::size_t>(p_ - out_.data())); }
  template <std::size_t N>
  void literal(const char (&s)[N]) noexcept {
    std::memcpy(p_, s, N - 1);
    p_ += N - 1;
  }
  void text(std::string_view s) noexcept {
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  void number(std::uint64_t n) noexcept { p_ = std::to_chars(p_, p_ + 20, n).ptr; }

 private:
  std::string& out_;
  std::size_t start_;
  char* p_;
};

void append_number(std::string& out, std::uint64_t n, int base = 10) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n, base);
  out.append(buf, r.ptr);
}

bool no_body_status(int status) noexcept { return status < 200 || status == 204 || status == 304; }

// Plain TCP: bytes arrive through a RecvStream (one multishot receive into the reactor's pool buffers,
// its deadlines on the reactor's timer queue) and are copied into the connection's buffer; a response
// goes out with a send that never waits, and only what did not fit waits, with the write timeout. No
// request costs a kernel timer.
struct TcpTransport {
  explicit TcpTransport(const net::TcpStream& stream) : s(stream), rx(stream) {}
  const net::TcpStream& s;
  net::RecvStream rx;
  RecvBuffer pending;  // received, not yet copied out

  task<net::Result<std::size_t>> read(std::span<char> b, Clock::time_point d) {
    if (pending.empty()) {
      auto got = co_await rx.next(d);
      if (!got) co_return got.error();
      if (got->empty()) co_return std::size_t{0};
      pending = std::move(*got);
    }
    const std::size_t n = std::min(b.size(), pending.size());
    std::memcpy(b.data(), pending.bytes().data(), n);
    pending.consume(n);
    if (pending.empty()) pending = RecvBuffer();  // back to the pool
    co_return n;
  }
  // Waits for bytes without taking them: what is buffered (0 at end of stream).
  task<net::Result<std::size_t>> wait(Clock::time_point d) {
    if (pending.empty()) {
      auto got = co_await rx.next(d);
      if (!got) co_return got.error();
      pending = std::move(*got);
    }
    co_return pending.size();
  }
  task<net::Result<void>> write(std::span<const char> b, Clock::duration timeout) {
    auto sent = co_await s.try_write(b);
    if (!sent) co_return sent.error();
    if (*sent == b.size()) co_return net::Result<void>{};
    auto rest = co_await s.write_all(b.subspan(*sent), Clock::now() + timeout);
    if (!rest && rest.error().timed_out()) s.reset_on_close();  // it stopped reading: drop what it left
    co_return rest;
  }
  // After a refusal: no more from us, and what the client still sends is read and dropped for a moment, so
  // that our answer is not lost to a reset (a close with unread bytes).
  task<void> linger() {
    (void)s.shutdown_write();
    const auto until = Clock::now() + 1s;
    for (std::size_t dropped = 0; dropped < (1u << 20);) {
      auto got = co_await rx.next(until);
      if (!got || got->empty()) break;
      dropped += got->size();
    }
  }
};

struct TlsTransport {
  explicit TlsTransport(tls::Stream& stream) noexcept : s(stream) {}
  tls::Stream& s;
  auto read(std::span<char> b, Clock::time_point d) const { return s.read_some(b, d); }
  task<net::Result<void>> write(std::span<const char> b, Clock::duration timeout) const {
    auto sent = co_await s.write_all(b, Clock::now() + timeout);
    if (!sent && sent.error().timed_out()) s.tcp().reset_on_close();
    co_return sent;
  }
  task<void> linger() const { (void)co_await s.shutdown(Clock::now() + 1s); }
};

template <class Transport>
class HttpConnection final : public detail::BodySink {
 public:
  template <class Stream>
  HttpConnection(Stream& stream, net::Connection& conn, Server::State& state)
      : t_(stream),
        conn_(conn),
        state_(state),
        opt_(state.options),
        cap_(std::max<std::size_t>(std::size_t{16} * 1024, opt_.limits.max_head_bytes + 4096)) {}

  void set_peer(const net::Address& peer) noexcept { req_.peer = &peer; }
  task<void> run();
  task<net::Result<void>> send_chunk(std::string_view data) override;

 private:
  std::string_view buffered() const noexcept { return {in_.get() + begin_, end_ - begin_}; }
  task<bool> flush();
  task<void> refuse(int status, const char* reason);
  task<bool> read_head(std::size_t& head_end);
  task<bool> read_body(std::size_t head_end, std::size_t& consumed);
  void append_head(int status, std::string_view content_type, const std::string& headers, bool chunked,
                   std::uint64_t length);
  void append_response();

  Transport t_;
  net::Connection& conn_;
  Server::State& state_;
  const ServerOptions& opt_;
  std::size_t cap_;
  std::unique_ptr<char[]> in_;  // allocated when bytes come, released while idle (plain TCP)
  std::size_t begin_ = 0, end_ = 0;
  std::string out_;
  Request req_;
  Response res_;
  bool keep_ = true;
  bool head_sent_ = false;
  bool broken_ = false;  // a write failed: the connection ends after the handler
  std::uint64_t streamed_ = 0;  // body bytes written by the handler
};

template <class T>
task<bool> HttpConnection<T>::flush() {
  if (out_.empty()) co_return true;
  auto sent = co_await t_.write(out_, opt_.write_timeout);
  out_.clear();
  if (out_.capacity() > 4 * kFlushAt) std::string().swap(out_);
  broken_ = broken_ || !sent;
  co_return static_cast<bool>(sent);
}

template <class T>
task<void> HttpConnection<T>::refuse(int status, const char* reason) {
  state_.counters.refused.fetch_add(1, std::memory_order_relaxed);
  state_.metrics.refused[static_cast<std::size_t>(std::clamp(status / 100, 1, 5) - 1)].add();
  log::limited(log::Level::debug, "http refused", std::chrono::seconds(10), "http: %s: %d %s", req_.peer->to_string().c_str(),
               status, reason);
  res_.reset(nullptr);
  res_.status = status;
  res_.body.append(reason).push_back('\n');
  if (status == 503) {
    res_.header("Retry-After", std::to_string(opt_.retry_after.count()));
  }
  keep_ = false;
  req_.method = "GET";
  append_response();
  if (co_await flush()) co_await t_.linger();
}

// Waits until a whole head is buffered; false when the connection is to end (closed, idle, refused).
template <class T>
task<bool> HttpConnection<T>::read_head(std::size_t& head_end) {
  std::size_t scanned = 0;
  Clock::time_point header_deadline = Clock::time_point::max();
  for (;;) {
    while (end_ - begin_ >= 2 && in_[begin_] == '\r' && in_[begin_ + 1] == '\n') begin_ += 2, scanned = 0;
    std::string_view have = buffered();
    if ((head_end = find_head_end(have, scanned)) != 0) co_return true;
    if (HeadError e = check_partial_head(have, opt_.limits); e.status != 0) {
      co_await refuse(e.status, e.reason);
      co_return false;
    }
    Clock::time_point deadline;
    if (have.empty()) {
      begin_ = end_ = 0;
      if (!co_await flush()) co_return false;  // what is ready leaves before we wait
      if (!conn_.idle()) co_return false;       // between requests, shutting down
      deadline = Clock::now() + opt_.idle_timeout;
      if constexpr (requires { t_.wait(deadline); }) {
        // An idle connection holds no buffer of its own: the next bytes wait in the reactor's pool.
        in_.reset();
        if (req_.body.capacity() > kFlushAt) std::string().swap(req_.body);
        if (res_.body.capacity() > kFlushAt) std::string().swap(res_.body);
        auto more = co_await t_.wait(deadline);
        if (!more || *more == 0) co_return false;  // idle too long, or the client left: close
      }
    } else {
      conn_.busy();
      if (header_deadline == Clock::time_point::max()) header_deadline = Clock::now() + opt_.header_timeout;
      deadline = header_deadline;
      if (end_ == cap_) {  // room at the end: the head moves to the front (no request is alive)
        std::memmove(in_.get(), in_.get() + begin_, have.size());
        end_ = have.size();
        begin_ = 0;
      }
    }
    if (!in_) in_.reset(new char[cap_]);
    auto n = co_await t_.read(std::span(in_.get() + end_, cap_ - end_), deadline);
    if (!n) {
      if (n.error().timed_out() && end_ > begin_) co_await refuse(408, "the request head did not arrive in time");
      co_return false;
    }
    if (*n == 0) co_return false;  // the client closed
    if (end_ == begin_) {
      conn_.busy();
      header_deadline = Clock::now() + opt_.header_timeout;
    }
    end_ += *n;
  }
}

// Reads the request's body into req_.body (whole); `consumed` grows past what it used of the buffer. The
// head, [begin_, begin_ + head_end), is never moved: the request's views point into it.
template <class T>
task<bool> HttpConnection<T>::read_body(std::size_t head_end, std::size_t& consumed) {
  const Clock::time_point deadline = Clock::now() + opt_.body_timeout;
  if (req_.expect_continue && end_ - begin_ == consumed) {
    out_.append("HTTP/1.1 100 Continue\r\n\r\n");
    if (!co_await flush()) co_return false;
  }
  if (req_.framing == BodyKind::length) {
    const std::size_t take = std::min<std::uint64_t>(req_.content_length, end_ - begin_ - consumed);
    req_.body.assign(in_.get() + begin_ + consumed, take);
    consumed += take;
    std::string& body = req_.body;
    std::size_t have = take;
    body.resize(req_.content_length);
    while (have < body.size()) {
      auto n = co_await t_.read(std::span(body.data() + have, body.size() - have), deadline);
      if (!n || *n == 0) {
        if (!n && n.error().timed_out()) co_await refuse(408, "the request body did not arrive in time");
        co_return false;
      }
      have += *n;
    }
    co_return true;
  }
  ChunkedDecoder decoder(opt_.max_body, opt_.limits);
  for (;;) {
    std::size_t used = 0;
    auto status = decoder.feed(std::string_view(in_.get() + begin_ + consumed, end_ - begin_ - consumed), req_.body, used);
    consumed += used;
    if (status == ChunkedDecoder::Status::done) co_return true;
    if (status == ChunkedDecoder::Status::error) {
      co_await refuse(decoder.status(), decoder.reason());
      co_return false;
    }
    // All of it used: read more over what was after the head.
    end_ = begin_ + head_end;
    consumed = head_end;
    auto n = co_await t_.read(std::span(in_.get() + end_, cap_ - end_), deadline);
    if (!n || *n == 0) {
      if (!n && n.error().timed_out()) co_await refuse(408, "the request body did not arrive in time");
      co_return false;
    }
    end_ += *n;
  }
}

template <class T>
void HttpConnection<T>::append_head(int status, std::string_view content_type, const std::string& headers, bool chunked,
                                    std::uint64_t length) {
  if (conn_.draining()) keep_ = false;  // shutting down: this is the connection's last response
  const std::string_view first = status_lines(status);
  // The fixed pieces below take at most 80 bytes: "Content-Type: \r\n", "Transfer-Encoding: chunked\r\n"
  // or "Content-Length: " with 20 digits and CRLF, "Connection: keep-alive\r\n", the closing CRLF.
  HeadWriter w(out_, first.size() + content_type.size() + headers.size() + 96);
  w.text(first);
  if (!content_type.empty()) {
    w.literal("Content-Type: ");
    w.text(content_type);
    w.literal("\r\n");
  }
  if (chunked) {
    if (req_.minor >= 1) w.literal("Transfer-Encoding: chunked\r\n");
  } else if (!no_body_status(status)) {
    w.literal("Content-Length: ");
    w.number(length);
    w.literal("\r\n");
  }
  if (!keep_) w.literal("Connection: close\r\n");
  else if (req_.minor == 0) w.literal("Connection: keep-alive\r\n");
  w.text(headers);
  w.literal("\r\n");
}

template <class T>
void HttpConnection<T>::append_response() {
  append_head(res_.status, res_.content_type, res_.headers(), false, res_.body.size());
  if (req_.method != "HEAD" && !no_body_status(res_.status)) out_.append(res_.body);
}

template <class T>
task<net::Result<void>> HttpConnection<T>::send_chunk(std::string_view data) {
  const std::optional<std::uint64_t> length = res_.stream_length();
  if (!head_sent_) {
    head_sent_ = true;
    streamed_ = 0;
    if (req_.minor == 0 && !length) keep_ = false;  // an HTTP/1.0 client reads a chunkless body to the close
    append_head(res_.status, res_.content_type, res_.headers(), !length, length.value_or(0));
  }
  streamed_ += data.size();
  if (!data.empty() && req_.method != "HEAD" && !no_body_status(res_.status)) {
    if (req_.minor >= 1 && !length) {
      append_number(out_, data.size(), 16);
      out_.append("\r\n").append(data).append("\r\n");
    } else {
      out_.append(data);
    }
  }
  auto sent = co_await t_.write(out_, opt_.write_timeout);
  out_.clear();
  if (!sent) {
    broken_ = true;
    co_return sent.error();
  }
  co_return net::Result<void>{};
}

template <class T>
task<void> HttpConnection<T>::run() {
  Shard& shard = state_.shards[Reactor::current()->id()];
  for (;;) {
    std::size_t head_end = 0;
    if (!co_await read_head(head_end)) co_return;
    req_.body.clear();
    if (HeadError e = parse_request_head(std::string_view(in_.get() + begin_, head_end), req_, opt_.limits); e.status != 0) {
      co_await refuse(e.status, e.reason);
      co_return;
    }
    keep_ = req_.keep_alive;
    const bool over_flight = opt_.max_in_flight != 0 && shard.in_flight >= opt_.max_in_flight;
    if (over_flight || (opt_.max_utilisation > 0 && Reactor::current()->utilisation() > opt_.max_utilisation)) {
      state_.counters.shed.fetch_add(1, std::memory_order_relaxed);
      (over_flight ? state_.metrics.shed_in_flight : state_.metrics.shed_busy).add();
      log::limited(log::Level::warning, "http shed", std::chrono::seconds(10), "http: shedding load: 503 to %s (%s)",
                   req_.peer->to_string().c_str(), over_flight ? "max_in_flight" : "max_utilisation");
      co_await refuse(503, over_flight ? "too many requests in progress" : "the server is too busy");
      co_return;
    }
    const Clock::time_point began = Clock::now();  // the request's seconds run from its head
    std::size_t consumed = head_end;
    if (req_.framing == BodyKind::length && req_.content_length > opt_.max_body) {
      co_await refuse(413, "the request body is over the limit");
      co_return;
    }
    if (req_.framing != BodyKind::none && !co_await read_body(head_end, consumed)) co_return;

    state_.counters.requests.fetch_add(1, std::memory_order_relaxed);
    res_.reset(this);
    head_sent_ = false;
    ++shard.in_flight;
    bool failed = false;
    try {
      co_await state_.handler(req_, res_);
    } catch (const std::exception& e) {
      log::limited(log::Level::error, "http handler", std::chrono::seconds(10), "http: handler for %.*s %.*s: %s",
                   static_cast<int>(req_.method.size()), req_.method.data(), static_cast<int>(req_.path.size()),
                   req_.path.data(), e.what());
      failed = true;
      if (!head_sent_) {
        res_.reset(this);
        res_.status = 500;
        res_.body = "internal server error\n";
      }
    }
    --shard.in_flight;
    state_.metrics.answered(req_.method, res_.status);
    state_.metrics.seconds.observe(std::chrono::duration<double>(Clock::now() - began).count());
    if (broken_) co_return;  // the client stopped reading (write timeout) or went away
    if (head_sent_) {
      const std::optional<std::uint64_t> length = res_.stream_length();
      if (failed || (length && *length != streamed_ && req_.method != "HEAD")) {
        (void)co_await flush();
        co_return;  // a stream cut short, or of the wrong length: only the close can tell the client
      }
      if (!length && req_.minor >= 1 && req_.method != "HEAD" && !no_body_status(res_.status)) out_.append("0\r\n\r\n");
    } else {
      append_response();
    }
    begin_ += consumed;
    if (!keep_ || conn_.draining()) {
      (void)co_await flush();
      co_return;
    }
    if (out_.size() >= kFlushAt && !co_await flush()) co_return;
  }
}

task<void> serve_connection(std::shared_ptr<Server::State> state, net::Connection& conn) {
  if (state->options.tls == nullptr) {
    HttpConnection<TcpTransport> c(conn.stream(), conn, *state);
    c.set_peer(conn.stream().peer());
    co_await c.run();
    co_return;
  }
  const net::Address peer = conn.stream().peer();
  auto tls = co_await tls::Stream::accept(*state->options.tls, std::move(conn.stream()),
                                          Clock::now() + state->options.header_timeout);
  if (!tls) {
    state->counters.tls_failures.fetch_add(1, std::memory_order_relaxed);
    log::limited(log::Level::debug, "https handshake", std::chrono::seconds(10), "http: %s", tls.error().message().c_str());
    co_return;
  }
  HttpConnection<TlsTransport> c(*tls, conn, *state);
  c.set_peer(peer);
  co_await c.run();
}

}  // namespace

net::Result<std::unique_ptr<Server>> Server::start(const net::Address& at, Handler handler, const ServerOptions& options) {
  auto state = std::make_shared<State>(std::move(handler), options, Reactor::current()->runtime()->size());
  auto net = net::Server::start(at, [state](net::Connection& c) { return serve_connection(state, c); }, options.net);
  if (!net) return net.error();
  return std::unique_ptr<Server>(new Server(std::move(state), std::move(*net)));
}

Server::Server(std::shared_ptr<State> state, std::unique_ptr<net::Server> net) : state_(std::move(state)), net_(std::move(net)) {}

Server::~Server() = default;

const ServerCounters& Server::counters() const noexcept { return state_->counters; }

}  // namespace corio::http
