// http::Client: HTTP/1.1 requests over pooled keep-alive connections, Go's http.Transport in corio's shape.
// One per reactor (it is not shared across threads): each host:port has its own pool of idle connections
// and its own limit, and a connection goes back to the pool only once its response body has been read to
// the end. A response dropped early is drained in the background up to max_drain bytes, so that its
// connection can be reused (the guide's "always drain"); past that it is closed. A request that finds its
// pooled connection closed by the server before any byte of the answer came is sent again once on a new
// connection, if it is idempotent (GET, HEAD, OPTIONS, PUT, DELETE). Names go through the reactor's
// Resolver (ClientOptions::dial.resolver), HTTPS through tls::Stream with sessions resumed from the
// context's cache. Defaults are Go's where Go has one (noted per field).
//   http::Client client;
//   auto res = co_await client.get("http://127.0.0.1:8080/plaintext");
//   if (!res) { log(res.error().message()); co_return; }
//   auto body = co_await res->text();          // the connection goes back to the pool here
//   log("%d, %zu bytes, first byte after %lld us", res->status(), body->size(), us(res->timings().first_byte));
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "corio/http/circuit_breaker.hpp"
#include "corio/http/head_parser.hpp"
#include "corio/http/url.hpp"
#include "corio/net/dial.hpp"
#include "corio/runtime/task.hpp"
#include "corio/tls/context.hpp"

namespace corio::http {

struct ClientOptions {
  std::size_t max_idle = 100;                 // idle connections kept, all hosts (Go MaxIdleConns: 100)
  std::size_t max_idle_per_host = 2;          // (Go DefaultMaxIdleConnsPerHost: 2)
  std::size_t max_conns_per_host = 0;         // dialing, in use and idle; 0: no limit (Go MaxConnsPerHost: 0)
  Clock::duration idle_timeout = std::chrono::seconds(90);  // an idle connection is closed after (Go: 90 s)
  Clock::duration wait_timeout = std::chrono::seconds(30);  // queued for a connection at max_conns_per_host
  Clock::duration response_header_timeout = std::chrono::seconds(30);  // request sent to head received (Go: none)
  Clock::duration tls_handshake_timeout = std::chrono::seconds(10);    // (Go TLSHandshakeTimeout: 10 s)
  std::uint64_t max_drain = 256 * 1024;       // body bytes read to reuse a connection whose response was dropped
  std::uint64_t max_body = 64ull << 20;       // text() refuses a longer body
  HeadLimits limits{.max_line = 8 * 1024, .max_head_bytes = 64 * 1024, .max_fields = 100};  // response heads
  net::DialOptions dial;                      // timeout 30 s, keepalive 15 s, happy eyeballs (Go's Dialer)
  const tls::Context* tls = nullptr;          // for https:// URLs: a client context (its CA, ALPN http/1.1)
  BreakerOptions breaker;                     // per host; off by default
  std::string user_agent = "corio";
};

struct ClientRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // names tokens; no CR, LF or NUL anywhere
  std::string body;
  bool chunked = false;  // send the body with Transfer-Encoding: chunked instead of Content-Length
  Clock::time_point deadline = Clock::time_point::max();  // the whole exchange, head and body
};

// Where a request's time went (Go's httptrace): zero for phases a pooled connection skipped.
struct Timings {
  Clock::duration dns{};         // resolving the host
  Clock::duration connect{};     // TCP connect (happy eyeballs included)
  Clock::duration tls{};         // the TLS handshake
  Clock::duration first_byte{};  // from starting to send the request to the first byte of the response
  Clock::duration total{};       // from the call to the end of the body (to the head, until it is read)
  bool reused = false;           // a pooled connection carried it
  bool tls_resumed = false;
  bool retried = false;          // sent again on a new connection (see above)
};

struct ClientStats {
  std::uint64_t requests = 0;
  std::uint64_t dials = 0;            // new connections (pool misses)
  std::uint64_t reuses = 0;           // requests on pooled connections (pool hits)
  std::uint64_t retries = 0;          // idempotent requests sent again after a pooled connection was closed
  std::uint64_t waits = 0;            // requests queued at max_conns_per_host
  std::uint64_t drained = 0;          // dropped responses read to their end to reuse the connection
  std::uint64_t closed_idle = 0;      // pooled connections closed by idle_timeout
  std::uint64_t closed_by_peer = 0;   // pooled connections found closed by the server
  std::uint64_t breaker_rejected = 0; // requests failed at once by an open circuit breaker
  std::uint64_t breaker_opened = 0;
};

class Client;

class ClientResponse {
 public:
  ClientResponse(ClientResponse&&) noexcept;
  ClientResponse& operator=(ClientResponse&&) noexcept;
  ~ClientResponse();  // drains or closes a connection whose body was not read to the end

  int status() const noexcept { return head_.status; }
  std::string_view reason() const noexcept { return head_.reason; }
  const Headers& headers() const noexcept { return head_.headers; }
  // The body, streamed: up to buf.size() bytes, 0 at its end.
  task<net::Result<std::size_t>> read(std::span<char> buf);
  // The rest of the body, whole (an Error past ClientOptions::max_body; read() has no limit).
  task<net::Result<std::string>> text();
  bool body_done() const noexcept;
  const Timings& timings() const noexcept { return timings_; }

  struct Exchange;

 private:
  friend class Client;
  explicit ClientResponse(std::unique_ptr<Exchange> x);
  void abandon() noexcept;
  std::unique_ptr<Exchange> x_;
  ResponseHead head_;  // views into the exchange's copy of the head
  Timings timings_;
};

class Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();  // closes the idle connections; responses still out keep theirs until they end
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends the request and returns once the response head has arrived. Transport failures, timeouts, an
  // open breaker and malformed responses are Errors; any HTTP status is a response.
  task<net::Result<ClientResponse>> send(ClientRequest request);
  task<net::Result<ClientResponse>> get(std::string url) { return send({.url = std::move(url)}); }

  const ClientStats& stats() const noexcept;
  std::size_t idle_connections() const noexcept;
  // The breaker's state for "host:port" (closed when it has none).
  CircuitBreaker::State breaker_state(std::string_view host_port) const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace corio::http
