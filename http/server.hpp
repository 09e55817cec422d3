// http::Server: HTTP/1.1 over net::Server (one listener per reactor, Go's Shutdown) or over TLS with ALPN
// http/1.1. Keep-alive (1.1 by default, 1.0 when asked), pipelining (requests answered in order, the
// responses that are ready leaving together in one send), Content-Length and chunked request bodies read
// whole before the handler runs (413 past max_body; 100-continue answered first), whole or streamed
// responses, HEAD. Limits answer with their status and close: 400 (malformed, smuggling), 408 (the head
// took longer than header_timeout), 413, 414, 431. A connection silent between requests for idle_timeout,
// or a client that stops reading responses for write_timeout, is closed. During shutdown the response in
// progress carries "Connection: close".
// Load shedding: more than max_in_flight requests being handled on one reactor, or the reactor busier than
// max_utilisation, and the next request is answered 503 with Retry-After at once, and counted.
//   http::Router routes;
//   routes.get("/plaintext", [](http::Request&, http::Response& res) -> task<void> { res.body = "Hello"; co_return; });
//   auto server = http::Server::start(*net::Address::parse("127.0.0.1:8080"), routes.handler());
//   co_await net::shutdown_on_signal((*server)->net(), signals, 5s);
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "corio/http/head_parser.hpp"
#include "corio/http/response.hpp"
#include "corio/net/server.hpp"
#include "corio/tls/context.hpp"

namespace corio::http {

struct Request : RequestHead {
  std::string body;  // whole, decoded
  const net::Address* peer = nullptr;
};

using Handler = std::function<task<void>(Request&, Response&)>;

struct ServerOptions {
  HeadLimits limits;
  std::uint64_t max_body = 1 << 20;                         // 413 past it
  Clock::duration header_timeout = std::chrono::seconds(10);  // first byte to blank line (408)
  Clock::duration idle_timeout = std::chrono::seconds(60);    // between requests
  Clock::duration body_timeout = std::chrono::seconds(30);    // reading a request body
  Clock::duration write_timeout = std::chrono::seconds(30);   // a client that stops reading
  std::uint32_t max_in_flight = 0;       // per reactor, requests in handlers; beyond it 503 (0: no limit)
  double max_utilisation = 0;            // reactor busy fraction over which requests get 503 (0: off)
  std::chrono::seconds retry_after{1};   // in every 503
  const tls::Context* tls = nullptr;     // HTTPS: must outlive the server
  net::ServerOptions net;                // max_conns, share_port, options for accepted sockets
  std::string name = "http";             // the server="..." label of its corio_http_* metrics
};

struct ServerCounters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> shed{0};             // 503 from load shedding
  std::atomic<std::uint64_t> refused{0};          // 4xx/5xx the server answered itself (400, 408, 413, ...)
  std::atomic<std::uint64_t> tls_failures{0};     // handshakes that failed
};

class Server {
 public:
  static net::Result<std::unique_ptr<Server>> start(const net::Address& at, Handler handler, const ServerOptions& options = {});
  ~Server();

  net::Server& net() noexcept { return *net_; }
  const net::Address& address() const noexcept { return net_->address(); }
  const ServerCounters& counters() const noexcept;
  task<bool> shutdown(Clock::time_point deadline) { return net_->shutdown(deadline); }

  struct State;

 private:
  Server(std::shared_ptr<State> state, std::unique_ptr<net::Server> net);
  std::shared_ptr<State> state_;
  std::unique_ptr<net::Server> net_;
};

// Routes by method and exact path, or by path prefix (the longest wins); 404 for no path, 405 (with Allow)
// for a path without the method. Add every route before handler(); the router must outlive the server.
class Router {
 public:
  void route(std::string_view method, std::string_view path, Handler h);
  void prefix(std::string_view method, std::string_view path_prefix, Handler h);
  void get(std::string_view path, Handler h) { route("GET", path, std::move(h)); }
  void post(std::string_view path, Handler h) { route("POST", path, std::move(h)); }
  Handler handler() const;

 private:
  struct Route {
    std::string method;
    std::string path;
    bool prefix;
    Handler h;
  };
  std::vector<Route> routes_;
};

}  // namespace corio::http
