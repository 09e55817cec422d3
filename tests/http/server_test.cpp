// http::Server over real loopback sockets, on both backends: the Router's choices, a handler's exception
// (500, the connection goes on), header injection refused, and the cancellation contract: a streamed
// response whose client goes away, a client reset in the middle of its body, a shutdown whose deadline
// stops a handler in flight, and a Server destroyed with requests in flight on two reactors.
#include "corio/http/server.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <string>

#include "corio/runtime/runtime.hpp"
#include "corio/runtime/task_scope.hpp"
#include "corio/runtime/time.hpp"

namespace corio::http {
namespace {

using namespace std::chrono_literals;
using net::TcpStream;

template <class Pred>
task<bool> eventually(Pred pred) {
  for (int i = 0; i < 2000 && !pred(); ++i) co_await sleep_for(1ms);
  co_return pred();
}

// Reads one whole response (Content-Length framed; none for HEAD) from `s`, after what `carry` holds.
task<std::string> read_response(TcpStream& s, std::string& carry, std::string_view method = "GET") {
  for (;;) {
    std::size_t scanned = 0, end = find_head_end(carry, scanned);
    if (end != 0) {
      ResponseHead head;
      if (parse_response_head(std::string_view(carry).substr(0, end), head, method).status != 0) co_return "unparsable";
      if (carry.size() >= end + head.content_length) {
        std::string whole = carry.substr(0, end + head.content_length);
        carry.erase(0, whole.size());
        co_return whole;
      }
    }
    char buf[4096];
    auto n = co_await s.read_some(buf).timeout(5s);
    if (!n || *n == 0) co_return carry.empty() ? "" : "truncated: " + carry;
    carry.append(buf, *n);
  }
}

task<std::string> ask(TcpStream& s, std::string_view request, std::string& carry) {
  if (!co_await s.write_all(request)) co_return "write failed";
  co_return co_await read_response(s, carry, request.substr(0, request.find(' ')));
}

std::string get(std::string_view path, std::string_view method = "GET") {
  return std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: t\r\n\r\n";
}

// A handler answering `text`.
Handler say(std::string text) {
  return [text](Request&, Response& res) -> task<void> {
    res.body = text;
    co_return;
  };
}

int status_of(const std::string& response) {
  return response.starts_with("HTTP/1.1 ") && response.size() > 12 ? std::stoi(response.substr(9, 3)) : 0;
}

TEST(HttpServer, RouterPicksExactThenLongestPrefixAndAnswers404And405) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Router routes;
    routes.get("/a", say("exact a"));
    routes.prefix("GET", "/", say("root prefix"));
    routes.prefix("GET", "/a/", say("a prefix"));
    routes.post("/p", say("post p"));
    auto server = Server::start(net::Address::loopback_v4(0), routes.handler());
    if (!server) co_return ADD_FAILURE() << server.error().message();
    auto c = co_await TcpStream::connect((*server)->address(), 2s);
    if (!c) co_return ADD_FAILURE() << c.error().message();
    std::string carry;
    EXPECT_TRUE((co_await ask(*c, get("/a"), carry)).ends_with("exact a"));
    EXPECT_TRUE((co_await ask(*c, get("/a/b"), carry)).ends_with("a prefix"));
    EXPECT_TRUE((co_await ask(*c, get("/z"), carry)).ends_with("root prefix"));
    std::string head = co_await ask(*c, get("/a", "HEAD"), carry);
    EXPECT_EQ(status_of(head), 200);
    EXPECT_NE(head.find("Content-Length: 7"), std::string::npos) << "HEAD takes GET's route, without the body";
    std::string wrong = co_await ask(*c, get("/p"), carry);
    EXPECT_EQ(status_of(wrong), 405);
    EXPECT_NE(wrong.find("Allow: POST"), std::string::npos);
    (void)co_await (*server)->shutdown(Clock::now() + 2s);
  }());
}

TEST(HttpServer, AHandlerExceptionIs500AndTheConnectionGoesOn) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Router routes;
    routes.get("/throw", [](Request&, Response&) -> task<void> {
      throw std::runtime_error("boom");
      co_return;
    });
    routes.get("/inject", [](Request&, Response& res) -> task<void> {
      res.header("X-Evil", "a\r\nSet-Cookie: stolen=1");  // refused: throws
      co_return;
    });
    routes.get("/ok", say("fine"));
    auto server = Server::start(net::Address::loopback_v4(0), routes.handler());
    if (!server) co_return ADD_FAILURE() << server.error().message();
    auto c = co_await TcpStream::connect((*server)->address(), 2s);
    if (!c) co_return ADD_FAILURE() << c.error().message();
    std::string carry;
    EXPECT_EQ(status_of(co_await ask(*c, get("/throw"), carry)), 500);
    std::string injected = co_await ask(*c, get("/inject"), carry);
    EXPECT_EQ(status_of(injected), 500);
    EXPECT_EQ(injected.find("stolen"), std::string::npos) << "no header is injected";
    EXPECT_TRUE((co_await ask(*c, get("/ok"), carry)).ends_with("fine")) << "the same connection goes on";
    (void)co_await (*server)->shutdown(Clock::now() + 2s);
  }());
}

TEST(HttpServer, AStreamedResponseWhoseClientLeavesEndsTheHandlerOnly) {
  Runtime rt({.reactors = 1});
  auto failed_write = std::make_shared<std::atomic<bool>>(false);
  rt.run([](std::shared_ptr<std::atomic<bool>> failed_write) -> task<void> {
    Router routes;
    routes.get("/forever", [failed_write](Request&, Response& res) -> task<void> {
      const std::string chunk(16 * 1024, 'x');
      for (;;) {
        if (!co_await res.write(chunk)) break;  // the client went away
      }
      *failed_write = true;
    });
    routes.get("/ok", say("fine"));
    auto server = Server::start(net::Address::loopback_v4(0), routes.handler());
    if (!server) co_return ADD_FAILURE() << server.error().message();
    auto c = co_await TcpStream::connect((*server)->address(), 2s);
    if (!c) co_return ADD_FAILURE() << c.error().message();
    (void)co_await c->write_all(std::string_view(get("/forever")));
    char buf[4096];
    (void)co_await c->read_some(buf).timeout(2s);  // it is streaming
    linger now{1, 0};
    ::setsockopt(c->fd(), SOL_SOCKET, SO_LINGER, &now, sizeof now);
    c->close();  // reset under the stream
    EXPECT_TRUE(co_await eventually([&] { return failed_write->load(); })) << "the handler's write fails";
    auto other = co_await TcpStream::connect((*server)->address(), 2s);
    if (!other) co_return ADD_FAILURE() << other.error().message();
    std::string carry;
    EXPECT_TRUE((co_await ask(*other, get("/ok"), carry)).ends_with("fine"));
    EXPECT_TRUE(co_await (*server)->shutdown(Clock::now() + 2s));
  }(failed_write));
}

TEST(HttpServer, AClientResetInTheMiddleOfItsBodyNeverReachesTheHandler) {
  Runtime rt({.reactors = 1});
  auto calls = std::make_shared<std::atomic<int>>(0);
  rt.run([](std::shared_ptr<std::atomic<int>> calls) -> task<void> {
    auto server = Server::start(net::Address::loopback_v4(0), [calls](Request& req, Response& res) -> task<void> {
      ++*calls;
      res.body = std::to_string(req.body.size());
      co_return;
    });
    if (!server) co_return ADD_FAILURE() << server.error().message();
    auto c = co_await TcpStream::connect((*server)->address(), 2s);
    if (!c) co_return ADD_FAILURE() << c.error().message();
    (void)co_await c->write_all(std::string_view("POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"));
    (void)co_await c->write_all(std::string(1000, 'b'));
    co_await sleep_for(50ms);
    linger now{1, 0};
    ::setsockopt(c->fd(), SOL_SOCKET, SO_LINGER, &now, sizeof now);
    c->close();
    co_await sleep_for(50ms);
    auto other = co_await TcpStream::connect((*server)->address(), 2s);
    if (!other) co_return ADD_FAILURE() << other.error().message();
    std::string carry;
    std::string r = co_await ask(*other, "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", carry);
    EXPECT_TRUE(r.ends_with("\r\n\r\n3")) << r;
    EXPECT_EQ(calls->load(), 1) << "only the whole request reached a handler";
    EXPECT_TRUE(co_await eventually([&] { return (*server)->net().limiter().active() == 1; }));
    EXPECT_TRUE(co_await (*server)->shutdown(Clock::now() + 2s));
  }(calls));
}

TEST(HttpServer, AShutdownDeadlineStopsAHandlerInFlight) {
  Runtime rt({.reactors = 2, .pin = false});
  auto state = std::make_shared<std::atomic<int>>(0);  // 1: in the handler, 2: stopped there
  rt.run([](std::shared_ptr<std::atomic<int>> state) -> task<void> {
    auto server = Server::start(net::Address::loopback_v4(0), [state](Request&, Response& res) -> task<void> {
      *state = 1;
      if (co_await sleep_for(1h)) *state = 2;  // woken early: stopped
      res.body = "late";
    });
    if (!server) co_return ADD_FAILURE() << server.error().message();
    auto c = co_await TcpStream::connect((*server)->address(), 2s);
    if (!c) co_return ADD_FAILURE() << c.error().message();
    (void)co_await c->write_all(std::string_view(get("/")));
    co_await eventually([&] { return state->load() == 1; });
    const auto t0 = Clock::now();
    EXPECT_FALSE(co_await (*server)->shutdown(Clock::now() + 200ms));
    EXPECT_LT(Clock::now() - t0, 3s);
    EXPECT_EQ(state->load(), 2) << "the handler's sleep was stopped";
    std::string carry;
    EXPECT_EQ(co_await read_response(*c, carry), "") << "no response, and the connection closed";
  }(state));
}

TEST(HttpServer, DestroyedWithRequestsInFlightOnTwoReactors) {
  Runtime rt({.reactors = 2, .pin = false});
  auto in_flight = std::make_shared<std::atomic<int>>(0);
  rt.run([](std::shared_ptr<std::atomic<int>> in_flight) -> task<void> {
    auto server = Server::start(net::Address::loopback_v4(0), [in_flight](Request&, Response& res) -> task<void> {
      ++*in_flight;
      (void)co_await sleep_for(1h);
      --*in_flight;
      res.body = "late";
    });
    if (!server) co_return ADD_FAILURE() << server.error().message();
    std::vector<TcpStream> conns;
    for (int i = 0; i < 20; ++i) {
      auto c = co_await TcpStream::connect((*server)->address(), 2s);
      if (!c) co_return ADD_FAILURE() << c.error().message();
      if (i % 2 == 0) (void)co_await c->write_all(std::string_view(get("/")));  // half busy, half idle
      conns.push_back(std::move(*c));
    }
    EXPECT_TRUE(co_await eventually([&] { return in_flight->load() == 10; }));
    server->reset();
    int closed = 0;
    for (TcpStream& c : conns) {
      std::string carry;
      closed += (co_await read_response(c, carry)).empty() ? 1 : 0;
    }
    EXPECT_EQ(closed, 20);
    EXPECT_TRUE(co_await eventually([&] { return in_flight->load() == 0; })) << "every handler was ended";
  }(in_flight));
}

}  // namespace
}  // namespace corio::http
