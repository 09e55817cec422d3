// http::Client against real servers on loopback, on both backends: corio's http::Server (HTTP and HTTPS)
// for the pool's reuse, limits and idle timeout, bodies both ways, timeouts and the breaker; small raw
// servers for the misbehaviour a pool must survive (a keep-alive connection closed between requests, a
// body cut short). The cancellation contract: a request stopped mid-flight, a connection closed under a
// body, a response dropped early and a Client destroyed with responses still out.
#include "corio/http/client.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "corio/http/server.hpp"
#include "corio/net/tcp_listener.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/task_scope.hpp"
#include "corio/runtime/time.hpp"
#include "tests/fd_count.hpp"

namespace corio::http {
namespace {

using namespace std::chrono_literals;
using corio::testing::open_fds;

template <class Pred>
task<bool> eventually(Pred pred) {
  for (int i = 0; i < 3000 && !pred(); ++i) co_await sleep_for(1ms);
  co_return pred();
}

Router& routes() {
  static Router r = [] {
    Router r;
    r.get("/plaintext", [](Request&, Response& res) -> task<void> {
      res.body = "Hello, World!";
      co_return;
    });
    r.get("/slow", [](Request& req, Response& res) -> task<void> {
      co_await sleep_for(std::chrono::milliseconds(std::stoi(std::string(req.query.substr(3)))));  // ms=N
      res.body = "done";
    });
    r.post("/echo", [](Request& req, Response& res) -> task<void> {
      res.body.swap(req.body);
      co_return;
    });
    r.get("/stream", [](Request& req, Response& res) -> task<void> {  // n=N: N chunks of 1000 bytes
      const int n = std::stoi(std::string(req.query.substr(2)));
      for (int i = 0; i < n; ++i) {
        if (!co_await res.write(std::string(999, 'a' + i % 26) + "\n")) co_return;
      }
    });
    return r;
  }();
  return r;
}

std::string base(const Server& s) { return "http://127.0.0.1:" + std::to_string(s.address().port()); }

// Runs `body(server)` on one reactor with an http::Server beside it.
template <class F>
void with_server(F body, ServerOptions options = {}) {
  Runtime rt({.reactors = 1});
  rt.run([&]() -> task<void> {
    auto server = Server::start(*net::Address::parse("127.0.0.1:0"), routes().handler(), options);
    EXPECT_TRUE(server) << server.error().message();
    if (!server) co_return;
    co_await body(**server);
    co_await (*server)->shutdown(Clock::now() + 2s);
  }());
}

TEST(Client, ReusesPooledConnectionsAndTimesEachPhase) {
  with_server([](Server& server) -> task<void> {
    Client client;
    for (int i = 0; i < 10; ++i) {
      auto res = co_await client.get(base(server) + "/plaintext");
      EXPECT_TRUE(res) << res.error().message();
      if (!res) co_return;
      EXPECT_EQ(res->status(), 200);
      EXPECT_EQ(res->headers().get("content-type"), "text/plain");
      auto body = co_await res->text();
      EXPECT_TRUE(body && *body == "Hello, World!");
      EXPECT_EQ(res->timings().reused, i > 0);
      if (i == 0) EXPECT_GT(res->timings().connect, Clock::duration::zero());
      if (i > 0) EXPECT_EQ(res->timings().connect, Clock::duration::zero());
      EXPECT_GT(res->timings().first_byte, Clock::duration::zero());
      EXPECT_GE(res->timings().total, res->timings().first_byte);
    }
    EXPECT_EQ(client.stats().dials, 1u);
    EXPECT_EQ(client.stats().reuses, 9u);
    EXPECT_EQ(server.net().counters().accepted.load(), 1u) << "the server saw one connection";
    EXPECT_EQ(client.idle_connections(), 1u);
  });
}

TEST(Client, HonoursMaxConnsPerHostUnder200ConcurrentRequests) {
  with_server([](Server& server) -> task<void> {
    Client client({.max_idle_per_host = 4, .max_conns_per_host = 4});
    int ok = 0;
    TaskScope scope;
    for (int i = 0; i < 200; ++i) {
      scope.spawn([](Client& c, std::string url, int& n) -> task<void> {
        auto res = co_await c.get(url);
        if (res && res->status() == 200 && co_await res->text()) ++n;
      }(client, base(server) + "/slow?ms=2", ok));
    }
    co_await scope.join();
    EXPECT_EQ(ok, 200);
    EXPECT_LE(server.net().counters().accepted.load(), 4u);
    EXPECT_EQ(client.stats().dials, server.net().counters().accepted.load());
    EXPECT_GT(client.stats().waits, 0u) << "requests queued for a connection";
    EXPECT_EQ(client.stats().reuses + client.stats().dials, 200u);
  });
}

TEST(Client, WaitingForAConnectionEndsAtWaitTimeout) {
  with_server([](Server& server) -> task<void> {
    Client client({.max_conns_per_host = 1, .wait_timeout = 100ms});
    auto held = co_await client.get(base(server) + "/plaintext");  // its body unread: the connection stays taken
    EXPECT_TRUE(held);
    auto second = co_await client.get(base(server) + "/plaintext");
    EXPECT_FALSE(second);
    if (!second) {
      EXPECT_EQ(second.error().code, ETIMEDOUT);
      EXPECT_NE(second.error().message().find("all 1 (max_conns_per_host) stayed in use"), std::string::npos)
          << second.error().message();
    }
    EXPECT_TRUE(co_await held->text());
    auto third = co_await client.get(base(server) + "/plaintext");
    EXPECT_TRUE(third) << "the connection came back once its body was read";
  });
}

TEST(Client, IdleTimeoutClosesPooledConnections) {
  with_server([](Server& server) -> task<void> {
    Client client({.idle_timeout = 200ms});
    auto res = co_await client.get(base(server) + "/plaintext");
    EXPECT_TRUE(res && co_await res->text());
    EXPECT_EQ(client.idle_connections(), 1u);
    EXPECT_TRUE(co_await eventually([&] { return client.idle_connections() == 0; }));
    EXPECT_EQ(client.stats().closed_idle, 1u);
    EXPECT_TRUE(co_await eventually([&] { return server.net().limiter().active() == 0; })) << "the server saw it close";
    auto again = co_await client.get(base(server) + "/plaintext");
    EXPECT_TRUE(again && co_await again->text());
    EXPECT_EQ(client.stats().dials, 2u);
  });
}

TEST(Client, BodiesBothWaysChunkedOrNotAndStreamed) {
  with_server(
      [](Server& server) -> task<void> {
        Client client;
        std::string big(100000, 'x');
        for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 23);
        for (bool chunked : {false, true}) {
          auto res = co_await client.send({.method = "POST", .url = base(server) + "/echo", .body = big, .chunked = chunked});
          EXPECT_TRUE(res) << res.error().message();
          if (!res) co_return;
          auto body = co_await res->text();
          EXPECT_TRUE(body && *body == big) << "chunked upload: " << chunked;
        }
        auto res = co_await client.get(base(server) + "/stream?n=50");
        EXPECT_TRUE(res && res->headers().get("transfer-encoding") == "chunked");
        if (!res) co_return;
        std::string got;
        char piece[77];
        for (;;) {
          auto n = co_await res->read(piece);
          EXPECT_TRUE(n);
          if (!n || *n == 0) break;
          got.append(piece, *n);
        }
        EXPECT_EQ(got.size(), 50u * 1000);
        EXPECT_TRUE(res->body_done());
        EXPECT_EQ(client.stats().dials, 1u) << "one connection carried all three";
      },
      {.max_body = 1 << 20});
}

TEST(Client, ADroppedResponseIsDrainedUpToALimitElseItsConnectionClosed) {
  with_server([](Server& server) -> task<void> {
    Client client({.max_drain = 64 * 1024});
    {
      auto small = co_await client.get(base(server) + "/stream?n=5");
      EXPECT_TRUE(small);
    }  // dropped unread: 5 KB, drained
    EXPECT_TRUE(co_await eventually([&] { return client.stats().drained == 1; }));
    auto next = co_await client.get(base(server) + "/plaintext");
    EXPECT_TRUE(next && co_await next->text());
    EXPECT_EQ(client.stats().dials, 1u) << "the drained connection was reused";
    {
      auto large = co_await client.get(base(server) + "/stream?n=5000");  // 5 MB: past max_drain
      EXPECT_TRUE(large);
    }
    EXPECT_TRUE(co_await eventually([&] { return client.idle_connections() == 0 && server.net().limiter().active() == 0; }))
        << "closed, not drained";
    auto after = co_await client.get(base(server) + "/plaintext");
    EXPECT_TRUE(after && co_await after->text());
    EXPECT_EQ(client.stats().dials, 2u);
    EXPECT_EQ(client.stats().drained, 1u);
  });
}

TEST(Client, ResponseHeaderTimeoutAndAStoppedRequest) {
  const std::size_t fds = open_fds();
  with_server([](Server& server) -> task<void> {
    Client client({.response_header_timeout = 100ms});
    const auto t0 = Clock::now();
    auto slow = co_await client.get(base(server) + "/slow?ms=1000");
    EXPECT_FALSE(slow);
    if (!slow) {
      EXPECT_EQ(slow.error().code, ETIMEDOUT);
      EXPECT_NE(slow.error().message().find("no response head within 100 ms (response_header_timeout)"), std::string::npos)
          << slow.error().message();
    }
    EXPECT_LT(Clock::now() - t0, 900ms);
    // Stopped mid-flight, by its caller.
    auto stopped = co_await with_timeout(50ms, client.get(base(server) + "/slow?ms=1000"));
    EXPECT_FALSE(stopped.has_value());
    auto fine = co_await client.get(base(server) + "/plaintext");
    EXPECT_TRUE(fine && co_await fine->text());
    EXPECT_EQ(client.stats().dials, 3u) << "a connection left mid-request is never pooled";
  });
  EXPECT_EQ(open_fds(), fds);
}

// A raw server: answers each connection's requests with `script` (a reply per request; "" closes at once;
// a \x01 in a reply is a 100 ms pause between its parts).
task<void> scripted(net::TcpListener& l, std::vector<std::vector<std::string>> script) {
  for (auto& replies : script) {
    auto c = co_await l.accept();
    if (!c) co_return;
    std::string in;
    for (const std::string& reply : replies) {
      while (in.find("\r\n\r\n") == std::string::npos) {
        char buf[4096];
        auto n = co_await c->read_some(buf).timeout(5s);
        if (!n || *n == 0) co_return;
        in.append(buf, *n);
      }
      in.erase(0, in.find("\r\n\r\n") + 4);
      if (reply.empty()) break;  // closes with the request unanswered
      for (std::string_view rest = reply; !rest.empty();) {
        const std::string_view part = rest.substr(0, rest.find('\x01'));
        if (!co_await c->write_all(part)) co_return;
        rest.remove_prefix(std::min(rest.size(), part.size() + 1));
        if (!rest.empty()) co_await sleep_for(100ms);
      }
    }
  }
}

constexpr const char* kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

TEST(Client, AKeepAliveConnectionClosedBetweenRequestsIsRetriedOnceIfIdempotent) {
  auto listener = net::TcpListener::bind(net::Address::loopback_v4(0));
  ASSERT_TRUE(listener);
  const std::string url = "http://127.0.0.1:" + std::to_string(listener->local_address().port()) + "/";
  Runtime rt({.reactors = 1});
  rt.run([&]() -> task<void> {
    // Each connection answers once, then takes the next request and closes.
    spawn(scripted(*listener, {{kOk, ""}, {kOk, ""}}));
    Client client;
    auto first = co_await client.get(url);
    EXPECT_TRUE(first && co_await first->text());
    auto second = co_await client.get(url);
    EXPECT_TRUE(second) << second.error().message();
    if (second) {
      EXPECT_TRUE(second->timings().retried);
      EXPECT_EQ(*co_await second->text(), "ok");
    }
    EXPECT_EQ(client.stats().retries, 1u);
    EXPECT_EQ(client.stats().dials, 2u);
    // A POST is not sent twice: the same close is an error.
    auto post = co_await client.send({.method = "POST", .url = url, .body = "once"});
    EXPECT_FALSE(post);
    if (!post) EXPECT_TRUE(post.error().code == EPIPE || post.error().code == ECONNRESET) << post.error().message();
    EXPECT_EQ(client.stats().retries, 1u);
  }());
}

TEST(Client, AConnectionTheServerClosedWhileIdleIsNotReused) {
  auto listener = net::TcpListener::bind(net::Address::loopback_v4(0));
  ASSERT_TRUE(listener);
  const std::string url = "http://127.0.0.1:" + std::to_string(listener->local_address().port()) + "/";
  Runtime rt({.reactors = 1});
  rt.run([&]() -> task<void> {
    spawn(scripted(*listener, {{kOk}, {kOk}}));  // each connection answers once and closes
    Client client;
    auto first = co_await client.get(url);
    EXPECT_TRUE(first && co_await first->text());
    co_await sleep_for(50ms);
    auto second = co_await client.get(url);
    EXPECT_TRUE(second && co_await second->text());
    EXPECT_EQ(client.stats().closed_by_peer, 1u);
    EXPECT_EQ(client.stats().retries, 0u) << "found closed before use: no retry needed";
  }());
}

TEST(Client, ABodyCutShortIsAnErrorAndItsConnectionIsDropped) {
  auto listener = net::TcpListener::bind(net::Address::loopback_v4(0));
  ASSERT_TRUE(listener);
  const std::string url = "http://127.0.0.1:" + std::to_string(listener->local_address().port()) + "/";
  Runtime rt({.reactors = 1});
  rt.run([&]() -> task<void> {
    spawn(scripted(*listener, {{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part"}}));
    Client client;
    auto res = co_await client.get(url);
    EXPECT_TRUE(res);
    if (!res) co_return;
    auto body = co_await res->text();
    EXPECT_FALSE(body);
    if (!body) EXPECT_NE(body.error().message().find("closed before the end of the body"), std::string::npos) << body.error().message();
    EXPECT_EQ(client.idle_connections(), 0u);
  }());
}

// Runs `body(client, url)` against a scripted raw server.
template <class F>
void against(std::vector<std::vector<std::string>> script, ClientOptions options, F body) {
  auto listener = net::TcpListener::bind(net::Address::loopback_v4(0));
  ASSERT_TRUE(listener);
  const std::string url = "http://127.0.0.1:" + std::to_string(listener->local_address().port()) + "/";
  Runtime rt({.reactors = 1});
  rt.run([&]() -> task<void> {
    TaskScope server;
    server.spawn(scripted(*listener, std::move(script)));
    {
      Client client(options);
      co_await body(client, url);
    }
    server.request_stop();
    co_await server.join();
  }());
}

TEST(Client, AHeadArrivingInPiecesIsAssembled) {
  against({{"HTTP/1.1 200 OK\r\n\x01" "Content-Length: 2\r\n\x01" "\r\nok"}}, {}, [](Client& client, std::string url) -> task<void> {
    auto res = co_await client.get(url);
    EXPECT_TRUE(res) << res.error().message();
    if (res) EXPECT_EQ(*co_await res->text(), "ok");
  });
}

TEST(Client, UnsolicitedBytesAfterAResponseAreNeverHandedToTheNextRequest) {
  // One request, two responses: the second must not answer the next request (a queued one included).
  against({{std::string(kOk) + "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSECOND"}, {kOk}}, {.max_conns_per_host = 1},
          [](Client& client, std::string url) -> task<void> {
            std::vector<std::string> bodies;
            TaskScope scope;
            for (int i = 0; i < 2; ++i) {
              scope.spawn([](Client& c, std::string u, std::vector<std::string>& out) -> task<void> {
                auto res = co_await c.get(u);
                auto body = res ? co_await res->text() : net::Result<std::string>(res.error());
                out.push_back(body ? *body : body.error().message());
              }(client, url, bodies));
            }
            co_await scope.join();
            EXPECT_EQ(bodies, (std::vector<std::string>{"ok", "ok"}));
            EXPECT_EQ(client.stats().dials, 2u) << "the spoiled connection was dropped";
          });
}

TEST(Client, ResponsesReplacedUnreadGiveTheirConnectionsBack) {
  with_server([](Server& server) -> task<void> {
    Client client({.max_conns_per_host = 2, .wait_timeout = 500ms});
    auto res = co_await client.get(base(server) + "/stream?n=100");  // 100 KB: past max_drain? no: drained
    for (int i = 0; i < 6; ++i) {
      res = co_await client.get(base(server) + "/stream?n=300");  // each replaced unread (300 KB: closed)
      EXPECT_TRUE(res) << i << ": " << res.error().message();
      if (!res) co_return;
    }
    EXPECT_TRUE(co_await res->text());
  });
}

TEST(Client, ARequestWhoseFrameIsDestroyedGivesItsSlotBack) {
  against({{""}, {kOk}}, {.max_conns_per_host = 1, .wait_timeout = 1s}, [](Client& client, std::string url) -> task<void> {
    {
      TaskScope scope;  // left without join(): the request's frame is destroyed mid-flight
      scope.spawn([](Client& c, std::string u) -> task<void> { (void)co_await c.get(u); }(client, url));
      co_await sleep_for(50ms);
    }
    auto next = co_await client.get(url);
    EXPECT_TRUE(next) << next.error().message();
  });
}

TEST(Client, SwitchingProtocolsIsNeverPooled) {
  against({{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n"}, {kOk}}, {},
          [](Client& client, std::string url) -> task<void> {
            auto up = co_await client.get(url);
            EXPECT_TRUE(up && up->status() == 101);
            up = net::Error{};
            auto next = co_await client.get(url);
            EXPECT_TRUE(next && !next->timings().reused);
          });
}

TEST(Client, MaxBodyBoundsTextButNotStreaming) {
  with_server([](Server& server) -> task<void> {
    Client client({.max_body = 1000});
    auto res = co_await client.get(base(server) + "/stream?n=5");
    EXPECT_TRUE(res);
    if (!res) co_return;
    std::size_t total = 0;
    char buf[700];
    for (;;) {
      auto n = co_await res->read(buf);
      EXPECT_TRUE(n) << n.error().message();
      if (!n || *n == 0) break;
      total += *n;
    }
    EXPECT_EQ(total, 5000u);
    auto whole = co_await client.get(base(server) + "/stream?n=5");
    auto text = co_await whole->text();
    EXPECT_FALSE(text);
    if (!text) EXPECT_NE(text.error().message().find("over max_body (1000 bytes)"), std::string::npos) << text.error().message();
  });
}

TEST(Client, AServerThatNeverReadsHoldsARequestOnlyForItsHeaderTimeout) {
  auto listener = net::TcpListener::bind(net::Address::loopback_v4(0));
  ASSERT_TRUE(listener);
  const std::string url = "http://127.0.0.1:" + std::to_string(listener->local_address().port()) + "/";
  Runtime rt({.reactors = 1});
  rt.run([&]() -> task<void> {
    TaskScope server;
    server.spawn([](net::TcpListener& l) -> task<void> {
      auto c = co_await l.accept();  // accepted, never read
      co_await sleep_for(10s);
    }(*listener));
    Client client({.response_header_timeout = 200ms});
    const auto t0 = Clock::now();
    auto res = co_await client.send({.method = "POST", .url = url, .body = std::string(32u << 20, 'x')});
    EXPECT_FALSE(res) << "32 MiB cannot fit in the socket buffers";
    if (!res) EXPECT_EQ(res.error().code, ETIMEDOUT) << res.error().message();
    EXPECT_LT(Clock::now() - t0, 2s) << "the write is bounded by response_header_timeout";
    server.request_stop();
    co_await server.join();
  }());
}

TEST(Client, TheBreakerOpensOnFailuresAndRecoversThroughATrial) {
  net::Address at;
  {
    auto spare = net::TcpListener::bind(net::Address::loopback_v4(0));
    ASSERT_TRUE(spare);
    at = spare->local_address();
  }  // the port is closed: connects are refused
  const std::string url = "http://127.0.0.1:" + std::to_string(at.port()) + "/plaintext";
  Runtime rt({.reactors = 1});
  rt.run([&]() -> task<void> {
    Client client({.breaker = {.enabled = true, .window = 4, .min_requests = 4, .failure_ratio = 0.5, .open_for = 200ms}});
    for (int i = 0; i < 4; ++i) EXPECT_FALSE(co_await client.get(url));
    EXPECT_EQ(client.breaker_state(at.to_string()), CircuitBreaker::State::open);
    EXPECT_EQ(client.stats().breaker_opened, 1u);
    auto rejected = co_await client.get(url);
    EXPECT_FALSE(rejected);
    if (!rejected) EXPECT_NE(rejected.error().message().find("circuit breaker for " + at.to_string() + " is open"), std::string::npos);
    EXPECT_EQ(client.stats().breaker_rejected, 1u);
    EXPECT_EQ(client.stats().dials, 0u);
    // The server comes back; after open_for, one trial goes, succeeds, and the breaker closes.
    auto server = Server::start(at, routes().handler());
    EXPECT_TRUE(server) << server.error().message();
    if (!server) co_return;
    co_await sleep_for(250ms);
    EXPECT_EQ(client.breaker_state(at.to_string()), CircuitBreaker::State::half_open);
    auto trial = co_await client.get(url);
    EXPECT_TRUE(trial && trial->status() == 200);
    EXPECT_EQ(client.breaker_state(at.to_string()), CircuitBreaker::State::closed);
    trial = net::Error{};
    co_await (*server)->shutdown(Clock::now() + 1s);
  }());
}

TEST(Client, HttpsResumesTheSessionOnTheNextConnection) {
  auto server_ctx = tls::Context::server({.cert_file = CORIO_TEST_CERTS "/server.pem", .key_file = CORIO_TEST_CERTS "/server.key",
                                          .alpn = {"http/1.1"}});
  ASSERT_TRUE(server_ctx) << server_ctx.error().message();
  auto client_ctx = tls::Context::client({.ca_file = CORIO_TEST_CERTS "/ca.pem", .alpn = {"http/1.1"}});
  ASSERT_TRUE(client_ctx) << client_ctx.error().message();
  with_server(
      [&](Server& server) -> task<void> {
        Client client({.max_idle_per_host = 0, .tls = &*client_ctx});  // nothing pooled: each request connects
        const std::string url = "https://localhost:" + std::to_string(server.address().port()) + "/plaintext";
        for (int i = 0; i < 2; ++i) {
          auto res = co_await client.get(url);
          EXPECT_TRUE(res) << res.error().message();
          if (!res) co_return;
          EXPECT_EQ(*co_await res->text(), "Hello, World!");
          EXPECT_GT(res->timings().tls, Clock::duration::zero());
          EXPECT_EQ(res->timings().tls_resumed, i == 1) << "request " << i;
        }
        auto plain = co_await Client().get(url);
        EXPECT_FALSE(plain) << "https needs a context";
      },
      {.tls = &*server_ctx});
}

TEST(Client, RefusesBadInputWithClearMessages) {
  Runtime rt({.reactors = 1});
  rt.run([&]() -> task<void> {
    Client client;
    auto bad = co_await client.get("ftp://example.test/");
    EXPECT_FALSE(bad);
    if (!bad) EXPECT_EQ(bad.error().message(), "url \"ftp://example.test/\": not an http:// or https:// URL");
    auto port = co_await client.get("http://127.0.0.1:99999/");
    EXPECT_FALSE(port);
    auto inject = co_await client.send({.url = "http://127.0.0.1:1/", .headers = {{"X-A", "1\r\nX-B: 2"}}});
    EXPECT_FALSE(inject);
    if (!inject) EXPECT_EQ(inject.error().code, EINVAL);
    auto method = co_await client.send({.method = "GE T", .url = "http://127.0.0.1:1/"});
    EXPECT_FALSE(method);
  }());
}

TEST(Client, DestroyedWithResponsesOutAndDrainsInFlight) {
  const std::size_t fds = open_fds();
  with_server([](Server& server) -> task<void> {
    std::vector<ClientResponse> out;
    {
      Client client;
      for (int i = 0; i < 3; ++i) {
        auto res = co_await client.get(base(server) + "/stream?n=20");
        EXPECT_TRUE(res);
        if (res) out.push_back(std::move(*res));
      }
    }  // the client goes first
    EXPECT_TRUE(co_await out[0].text()) << "a response outlives its client";
    out.clear();  // the others are dropped mid-body: drained or closed, never pooled into a dead client
    co_await sleep_for(50ms);
    EXPECT_TRUE(co_await eventually([&] { return server.net().limiter().active() == 0; }));
  });
  EXPECT_EQ(open_fds(), fds);
}

}  // namespace
}  // namespace corio::http
