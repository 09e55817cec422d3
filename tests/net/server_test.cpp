// serve(): shedding over the limit, surviving EMFILE, and stopping through the stop token. Server: Go's
// Shutdown with idle and busy connections, a request that arrived just before it, a deadline that stops
// what is still busy, close() during a drain, a peer that resets mid-request, and a Server destroyed with
// its connections open.
#include "corio/net/server.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "corio/runtime/runtime.hpp"
#include "corio/runtime/task_scope.hpp"

namespace corio::net {
namespace {

using namespace std::chrono_literals;

struct EchoOnce {
  task<void> operator()(TcpStream c) {
    char buf[64];
    auto n = co_await c.read_some(buf);
    if (n && *n > 0) (void)co_await c.write_all(std::span(buf, *n));
  }
};

// Polls `pred` every millisecond for at most two seconds.
template <class Pred>
task<bool> eventually(Pred pred) {
  for (int i = 0; i < 2000 && !pred(); ++i) co_await sleep_for(1ms);
  co_return pred();
}

task<bool> ping(const Address& to) {
  auto c = co_await TcpStream::connect(to, 2s);
  if (!c) co_return false;
  if (!co_await c->write_all(std::string_view("ping"))) co_return false;
  char buf[8];
  auto n = co_await c->read_some(buf).timeout(2s);
  co_return n && *n == 4;
}

TEST(Serve, ShedsConnectionsOverTheLimitAndCountsThem) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  ConnectionLimiter limiter(1);
  ServerCounters counters;
  struct Hold {
    task<void> operator()(TcpStream c) {
      char b[1];
      (void)co_await c.read_some(b);  // until the client closes
    }
  } hold;
  Runtime rt({.reactors = 1});  // declared last: its reactors stop before what their tasks use goes
  auto [held_open, second_closed] = rt.run([&]() -> task<std::pair<bool, bool>> {
    std::stop_source stop;
    spawn(with_stop_token(stop.get_token(), serve(*l, hold, limiter, counters)));
    auto first = co_await TcpStream::connect(l->local_address());
    co_await eventually([&] { return limiter.active() == 1; });
    auto second = co_await TcpStream::connect(l->local_address());
    char b[1];
    auto r = co_await second->read_some(b).timeout(2s);  // shed: closed at once
    bool closed = r && *r == 0;
    bool held = limiter.active() == 1;
    stop.request_stop();
    co_return std::pair{held, closed};
  }());
  EXPECT_TRUE(held_open);
  EXPECT_TRUE(second_closed);
  EXPECT_EQ(limiter.shed(), 1u);
  EXPECT_EQ(counters.accepted.load(), 2u);
}

TEST(Serve, OutOfDescriptorsIsCountedAndTheServerRecovers) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  ConnectionLimiter limiter(0);
  ServerCounters counters;
  EchoOnce echo;
  Runtime rt({.reactors = 1});
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  auto [counted, served] = rt.run([&]() -> task<std::pair<bool, bool>> {
    // Every code path once with descriptors to spare (sanitizer runtimes need some on first use).
    std::stop_source first;
    spawn(with_stop_token(first.get_token(), serve(*l, echo, limiter, counters)));
    bool warm = co_await ping(l->local_address());
    first.request_stop();
    co_await sleep_for(5ms);
    // A client waits in the backlog while the process has no descriptor left.
    auto client = co_await TcpStream::connect(l->local_address(), 2s);
    std::vector<int> filler;
    rlimit low{static_cast<rlim_t>(::dup(0) + 1), saved.rlim_max};
    ::close(static_cast<int>(low.rlim_cur) - 1);
    setrlimit(RLIMIT_NOFILE, &low);
    for (int fd; (fd = ::dup(0)) >= 0;) filler.push_back(fd);
    std::stop_source second;
    spawn(with_stop_token(second.get_token(), serve(*l, echo, limiter, counters)));
    bool emfile = co_await eventually([&] { return counters.out_of_descriptors.load() > 0; });
    for (int fd : filler) ::close(fd);
    setrlimit(RLIMIT_NOFILE, &saved);
    // The waiting client is accepted on a retry and served.
    bool answered = false;
    if (client && co_await client->write_all(std::string_view("ping"))) {
      char buf[8];
      auto n = co_await client->read_some(buf).timeout(2s);
      answered = n && *n == 4;
    }
    second.request_stop();
    co_return std::pair{warm && emfile, answered};
  }());
  EXPECT_TRUE(counted);
  EXPECT_TRUE(served);
  EXPECT_GE(counters.out_of_descriptors.load(), 1u);
}

// A request is one byte; the reply, after `work`, is "done". Counts the handlers waiting for a request.
struct SlowRequests {
  explicit SlowRequests(Clock::duration w) : work(w) {}
  Clock::duration work;
  std::atomic<int> waiting{0};
  std::atomic<int> working{0};
  task<void> operator()(Connection& c) {
    for (;;) {
      if (!c.idle()) co_return;
      ++waiting;
      char b[1];
      auto n = co_await c.stream().read_some(b);
      --waiting;
      if (!n || *n == 0) co_return;
      c.busy();
      ++working;
      auto slept = co_await sleep_for(work);
      --working;
      if (slept) co_return;  // stopped: the deadline passed
      if (!co_await c.stream().write_all(std::string_view("done"))) co_return;
    }
  }
};

task<std::string> read_all(TcpStream& s) {
  std::string got;
  char buf[64];
  for (;;) {
    auto n = co_await s.read_some(buf).timeout(5s);
    if (!n || *n == 0) co_return got;
    got.append(buf, *n);
  }
}

// A server whose handler works for an hour on each request, with one client whose request is in progress.
struct OneBusy {
  std::shared_ptr<SlowRequests> handler = std::make_shared<SlowRequests>(1h);
  std::unique_ptr<Server> server;
  TcpStream client;
};
task<std::optional<OneBusy>> one_busy_connection() {
  OneBusy b;
  auto handler = b.handler;
  auto server = Server::start(Address::loopback_v4(0), [handler](Connection& c) { return (*handler)(c); });
  if (!server) co_return ADD_FAILURE() << server.error().message(), std::nullopt;
  b.server = std::move(*server);
  auto c = co_await TcpStream::connect(b.server->address(), 5s);
  if (!c) co_return ADD_FAILURE() << c.error().message(), std::nullopt;
  b.client = std::move(*c);
  (void)co_await b.client.write_all(std::string_view("r"));
  co_await eventually([&] { return b.handler->working == 1; });
  co_return b;
}

TEST(Server, ShutdownClosesIdleConnectionsAtOnceAndLetsBusyOnesFinish) {
  Runtime rt({.reactors = 2, .pin = false});
  rt.run([]() -> task<void> {
    constexpr int kIdle = 1000, kBusy = 50;
    auto handler = std::make_shared<SlowRequests>(300ms);
    auto server = Server::start(Address::loopback_v4(0), [handler](Connection& c) { return (*handler)(c); });
    EXPECT_TRUE(server) << server.error().message();
    if (!server) co_return;
    std::vector<TcpStream> idle, busy;
    for (int i = 0; i < kIdle + kBusy; ++i) {
      auto c = co_await TcpStream::connect((*server)->address(), 5s);
      if (!c) co_return ADD_FAILURE() << c.error().message();
      (i < kIdle ? idle : busy).push_back(std::move(*c));
    }
    for (TcpStream& b : busy) (void)co_await b.write_all(std::string_view("r"));
    co_await eventually([&] { return handler->working == kBusy && handler->waiting == kIdle; });
    EXPECT_EQ(handler->working.load(), kBusy);
    const auto t0 = Clock::now();
    bool in_time = co_await (*server)->shutdown(Clock::now() + 10s);
    const auto took = Clock::now() - t0;
    EXPECT_TRUE(in_time);
    EXPECT_LT(took, 3s) << "idle connections are closed at once; busy ones need 300 ms";
    int done = 0, closed = 0;
    for (TcpStream& b : busy) done += (co_await read_all(b)) == "done" ? 1 : 0;
    for (TcpStream& i : idle) closed += (co_await read_all(i)).empty() ? 1 : 0;
    EXPECT_EQ(done, kBusy) << "a busy connection finishes its request";
    EXPECT_EQ(closed, kIdle);
    auto late = co_await TcpStream::connect((*server)->address(), 2s);
    EXPECT_FALSE(late) << "the listeners are closed";
    EXPECT_EQ((*server)->limiter().active(), 0u);
  }());
}

TEST(Server, WhatIsStillBusyAtTheDeadlineIsStopped) {
  Runtime rt({.reactors = 2, .pin = false});
  rt.run([]() -> task<void> {
    auto busy = co_await one_busy_connection();
    if (!busy) co_return;
    auto& [handler, server, c] = *busy;
    const auto t0 = Clock::now();
    bool in_time = co_await server->shutdown(Clock::now() + 200ms);
    EXPECT_FALSE(in_time);
    EXPECT_LT(Clock::now() - t0, 3s);
    EXPECT_EQ(handler->working.load(), 0);
    EXPECT_EQ(co_await read_all(c), "");  // stopped without a reply, and closed
  }());
}

// Reads the next request only `pause` after saying it is idle, so that a request can arrive meanwhile.
struct LateReader {
  std::atomic<int> pausing{0};
  task<void> operator()(Connection& c) {
    for (;;) {
      if (!c.idle()) co_return;
      ++pausing;
      co_await sleep_for(200ms);
      char b[1];
      auto n = co_await c.stream().read_some(b);
      if (!n || *n == 0) co_return;
      c.busy();
      if (!co_await c.stream().write_all(std::string_view("done"))) co_return;
    }
  }
};

TEST(Server, ARequestThatArrivedBeforeShutdownIsStillServed) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    auto handler = std::make_shared<LateReader>();
    auto server = Server::start(Address::loopback_v4(0), [handler](Connection& c) { return (*handler)(c); });
    if (!server) co_return ADD_FAILURE() << server.error().message();
    auto c = co_await TcpStream::connect((*server)->address(), 5s);
    if (!c) co_return ADD_FAILURE() << c.error().message();
    co_await eventually([&] { return handler->pausing == 1; });
    (void)co_await c->write_all(std::string_view("r"));  // in the socket, not yet read: the server says idle
    co_await sleep_for(20ms);
    EXPECT_TRUE(co_await (*server)->shutdown(Clock::now() + 5s));
    EXPECT_EQ(co_await read_all(*c), "done") << "shutting down the read side keeps what had arrived";
  }());
}

// close(), then new connections are refused within two seconds (on every reactor's listener).
task<bool> ping_refused_after_close(Server& server) {
  server.close();
  co_return co_await eventually([&] {
    // A blocking connect to loopback answers at once: refused, or accepted into a backlog.
    for (int i = 0; i < 20; ++i) {  // from 20 source ports: each listener is someone's
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      bool refused = ::connect(fd, server.address().sockaddr_ptr(), server.address().length()) != 0 && errno == ECONNREFUSED;
      ::close(fd);
      if (!refused) return false;
    }
    return true;
  });
}

// Sets SO_LINGER to zero and closes: the peer gets a reset, not an end of stream.
void reset(TcpStream& s) {
  linger now{1, 0};
  ::setsockopt(s.fd(), SOL_SOCKET, SO_LINGER, &now, sizeof now);
  s.close();
}

TEST(Server, APeerThatResetsMidRequestCostsOnlyItsOwnConnection) {
  Runtime rt({.reactors = 2, .pin = false});
  rt.run([]() -> task<void> {
    auto handler = std::make_shared<SlowRequests>(200ms);
    auto server = Server::start(Address::loopback_v4(0), [handler](Connection& c) { return (*handler)(c); });
    if (!server) co_return ADD_FAILURE() << server.error().message();
    std::vector<TcpStream> resetters, keepers;
    for (int i = 0; i < 20; ++i) {
      auto c = co_await TcpStream::connect((*server)->address(), 5s);
      if (!c) co_return ADD_FAILURE() << c.error().message();
      (void)co_await c->write_all(std::string_view("r"));
      (i % 2 == 0 ? resetters : keepers).push_back(std::move(*c));
    }
    co_await eventually([&] { return handler->working == 20; });
    for (TcpStream& r : resetters) reset(r);
    int done = 0;
    for (TcpStream& k : keepers) {
      char buf[4];
      auto n = co_await k.read_exact(buf, Clock::now() + 5s);
      done += n && *n == 4 && std::string_view(buf, 4) == "done" ? 1 : 0;
    }
    EXPECT_EQ(done, 10) << "the other connections' replies arrive";
    EXPECT_TRUE(co_await eventually([&] { return (*server)->limiter().active() == 10; }))
        << "the reset connections' handlers ended (their replies failed): " << (*server)->limiter().active();
    EXPECT_TRUE(co_await (*server)->shutdown(Clock::now() + 5s));
    EXPECT_EQ((*server)->limiter().active(), 0u);
  }());
}

TEST(Server, CloseStopsWhatIsBusyAtOnce) {
  Runtime rt({.reactors = 2, .pin = false});
  rt.run([]() -> task<void> {
    auto busy = co_await one_busy_connection();
    if (!busy) co_return;
    auto& [handler, server, c] = *busy;
    TaskScope closer;
    closer.spawn([](Server& s) -> task<void> {
      co_await sleep_for(100ms);
      s.close();  // as a second signal does, during the drain
    }(*server));
    const auto t0 = Clock::now();
    EXPECT_FALSE(co_await server->shutdown(Clock::now() + 1h)) << "cut short by close(): not in time";
    EXPECT_LT(Clock::now() - t0, 3s);
    EXPECT_EQ(handler->working.load(), 0);
    EXPECT_EQ(co_await read_all(c), "");
    co_await closer.join();
    auto late = co_await TcpStream::connect(server->address(), 2s);
    EXPECT_FALSE(late) << "close() closes the listeners";
  }());
}

TEST(Server, CloseWithoutShutdownClosesTheListenersToo) {
  Runtime rt({.reactors = 2, .pin = false});
  rt.run([]() -> task<void> {
    auto server = Server::start(Address::loopback_v4(0), [](Connection& c) -> task<void> {
      char b[1];
      (void)co_await c.stream().read_some(b);
    });
    if (!server) co_return ADD_FAILURE() << server.error().message();
    EXPECT_TRUE(co_await ping_refused_after_close(**server));
  }());
}

TEST(Server, DestroyedWithoutShutdownEndsEveryConnection) {
  Runtime rt({.reactors = 2, .pin = false});
  auto live = std::make_shared<std::atomic<int>>(0);
  rt.run([](std::shared_ptr<std::atomic<int>> live) -> task<void> {
    auto server = Server::start(Address::loopback_v4(0), [live](Connection& c) -> task<void> {
      ++*live;
      char b[1];
      (void)co_await c.stream().read_some(b);  // until stopped
      --*live;
    });
    if (!server) co_return ADD_FAILURE() << server.error().message();
    std::vector<TcpStream> conns;
    for (int i = 0; i < 40; ++i) {
      auto c = co_await TcpStream::connect((*server)->address(), 5s);
      if (!c) co_return ADD_FAILURE() << c.error().message();
      conns.push_back(std::move(*c));
    }
    EXPECT_TRUE(co_await eventually([&] { return *live == 40; }));
    server->reset();  // the accept loops, here and on the other reactor, are stopped in flight
    int ended = 0;
    for (TcpStream& c : conns) ended += (co_await read_all(c)).empty() ? 1 : 0;
    EXPECT_EQ(ended, 40);
    EXPECT_TRUE(co_await eventually([&] { return *live == 0; })) << *live << " handlers still running";
  }(live));
}

// The handler's task is the connection's only frame, owned by the connection: one that ends before its
// first suspension, or throws, ends its connection alone and releases its slot.
TEST(Server, AHandlerThatEndsAtOnceOrThrowsCostsOnlyItsConnection) {
  Runtime rt({.reactors = 2, .pin = false});
  rt.run([]() -> task<void> {
    auto calls = std::make_shared<std::atomic<int>>(0);
    auto server = Server::start(Address::loopback_v4(0), [calls](Connection& c) -> task<void> {
      const int n = (*calls)++;
      if (n % 3 == 0) co_return;                                  // ends inside Server's start
      if (n % 3 == 1) throw std::runtime_error("handler failed");  // reported on stderr
      char b[4];
      auto r = co_await c.stream().read_some(b);
      if (r && *r > 0) (void)co_await c.stream().write_all(std::span(b, *r));
    });
    if (!server) co_return ADD_FAILURE() << server.error().message();
    int ended = 0, echoed = 0;
    for (int i = 0; i < 9; ++i) {
      auto c = co_await TcpStream::connect((*server)->address(), 5s);
      if (!c) co_return ADD_FAILURE() << c.error().message();
      co_await eventually([&] { return *calls == i + 1; });
      if (i % 3 < 2) {
        ended += (co_await read_all(*c)).empty() ? 1 : 0;
      } else {
        (void)co_await c->write_all(std::string_view("ping"));
        char b[4];
        auto n = co_await c->read_exact(b, Clock::now() + 5s);
        echoed += n && *n == 4 ? 1 : 0;
      }
    }
    EXPECT_EQ(ended, 6);
    EXPECT_EQ(echoed, 3);
    EXPECT_TRUE(co_await eventually([&] { return (*server)->limiter().active() == 0; }));
    for (std::uint32_t n : (*server)->connections_per_reactor()) EXPECT_EQ(n, 0u);
    EXPECT_TRUE(co_await (*server)->shutdown(Clock::now() + 5s));
  }());
}

// A drain ends a handler that left its client's bytes unread: the connection half-closes and drains what
// the client sends (a close would reset it, and the client could lose the reply).
TEST(Server, AConnectionEndedWithBytesUnreadLingersSoItsClientGetsTheReply) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    auto server = Server::start(Address::loopback_v4(0), [](Connection& c) -> task<void> {
      if (!co_await c.stream().write_all(std::string_view("reply"))) co_return;
      while (!c.draining()) co_await sleep_for(1ms);  // never reads what the client sent
    });
    if (!server) co_return ADD_FAILURE() << server.error().message();
    auto c = co_await TcpStream::connect((*server)->address(), 5s);
    if (!c) co_return ADD_FAILURE() << c.error().message();
    (void)co_await c->write_all(std::string_view("unread"));
    co_await sleep_for(20ms);
    TaskScope drain;
    drain.spawn([](Server& s) -> task<void> { EXPECT_TRUE(co_await s.shutdown(Clock::now() + 5s)); }(**server));
    std::string got;
    char buf[16];
    bool clean_end = false;
    for (;;) {
      auto n = co_await c->read_some(buf).timeout(5s);
      if (!n) break;
      if (*n == 0) {
        clean_end = true;
        break;
      }
      got.append(buf, *n);
    }
    EXPECT_EQ(got, "reply");
    EXPECT_TRUE(clean_end) << "an end of stream, not a reset";
    c->close();  // the linger ends
    co_await drain.join();
  }());
}

TEST(Server, ASecondServerOnAPortInUseIsRefused) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    auto handler = [](Connection&) -> task<void> { co_return; };
    auto first = Server::start(Address::loopback_v4(0), handler);
    if (!first) co_return ADD_FAILURE() << first.error().message();
    auto second = Server::start((*first)->address(), handler);
    EXPECT_FALSE(second);
    if (!second) EXPECT_EQ(second.error().code, EADDRINUSE);
    auto sharing = Server::start((*first)->address(), handler, {.share_port = true});
    EXPECT_TRUE(sharing);
    if (sharing) (void)co_await (*sharing)->shutdown(Clock::now() + 1s);
    (void)co_await (*first)->shutdown(Clock::now() + 1s);
  }());
}

}  // namespace
}  // namespace corio::net
