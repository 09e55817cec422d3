// AcceptStream: many connections from one armed multishot accept, the single-shot fallback, queued
// connections closed on destruction, and cancellation of a waiting next().
#include <gtest/gtest.h>

#include <vector>

#include "corio/net/tcp_listener.hpp"
#include "corio/runtime/nop.hpp"
#include "corio/runtime/runtime.hpp"
#include "tests/fd_count.hpp"
#include "corio/runtime/time.hpp"

namespace corio::net {
namespace {

using namespace std::chrono_literals;

using testing::open_fds;

struct Observed {
  int accepted = 0;
  std::size_t in_flight_while_idle = 99;
  bool multishot = false;
};

// Accepts one connection (arming the stream), lets 20 more arrive while nobody awaits, then takes them.
task<Observed> accept_burst(const TcpListener& l) {
  Observed o;
  AcceptStream accepts(l);
  std::vector<TcpStream> clients;
  clients.push_back(std::move(*co_await TcpStream::connect(l.local_address(), 2s)));
  auto first = co_await accepts.next();
  if (first) ++o.accepted;
  for (int i = 0; i < 20; ++i) clients.push_back(std::move(*co_await TcpStream::connect(l.local_address(), 2s)));
  co_await sleep_for(10ms);  // the kernel accepts them while nobody awaits
  o.in_flight_while_idle = Reactor::current()->backend().in_flight();
  for (int i = 0; i < 20; ++i) {
    auto c = co_await accepts.next();
    if (c) ++o.accepted;
  }
  o.multishot = accepts.multishot();
  co_return o;
}

constexpr BackendOptions kUring{.kind = BackendOptions::Kind::uring};

// io_uring only: on epoll every AcceptStream is single-shot (SingleShotFallbackServesTheSame covers it).
TEST(AcceptStream, OneArmedMultishotAcceptServesABurst) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  Runtime rt({.reactors = 1, .backend = kUring});
  Observed o = rt.run(accept_burst(*l));
  EXPECT_EQ(o.accepted, 21);
  EXPECT_TRUE(o.multishot);
  EXPECT_EQ(o.in_flight_while_idle, 1u);  // still armed: no submission per connection
}

TEST(AcceptStream, SingleShotFallbackServesTheSame) {
  auto l = TcpListener::bind(Address::loopback_v4(0), {.multishot_accept = false});
  ASSERT_TRUE(l);
  Runtime rt({.reactors = 1});
  Observed o = rt.run(accept_burst(*l));
  EXPECT_EQ(o.accepted, 21);
  EXPECT_FALSE(o.multishot);
  EXPECT_EQ(o.in_flight_while_idle, 0u);  // re-armed only by next()
}

// io_uring only: only a multishot accept takes connections nobody has asked for yet.
TEST(AcceptStream, DestroyingItClosesQueuedConnections) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  Runtime rt({.reactors = 1, .backend = kUring});
  std::size_t before = open_fds();
  auto [eofs, after] = rt.run([&]() -> task<std::pair<int, std::size_t>> {
    std::vector<TcpStream> clients;
    {
      AcceptStream accepts(*l);
      clients.push_back(std::move(*co_await TcpStream::connect(l->local_address(), 2s)));
      auto first = co_await accepts.next();  // arms; more connections then queue up inside
      for (int i = 0; i < 5; ++i) clients.push_back(std::move(*co_await TcpStream::connect(l->local_address(), 2s)));
      co_await sleep_for(10ms);
    }
    int eof = 0;
    for (std::size_t i = 1; i < clients.size(); ++i) {
      char b[1];
      auto n = co_await clients[i].read_some(b).timeout(2s);
      if (n && *n == 0) ++eof;
    }
    clients.clear();
    co_await nop();  // closes go with the next submission: a round trip takes them
    co_return std::pair{eof, open_fds()};
  }());
  EXPECT_EQ(eofs, 5);
  EXPECT_EQ(after, before);
}

TEST(AcceptStream, StoppingTheTaskCancelsAWaitingNext) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  Runtime rt({.reactors = 1});
  int code = rt.run([&]() -> task<int> {
    std::stop_source stop;
    auto stopper = [&]() -> task<void> {
      co_await sleep_for(10ms);
      stop.request_stop();
    };
    spawn(stopper());
    auto waiter = [&]() -> task<int> {
      AcceptStream accepts(*l);
      auto c = co_await accepts.next();
      co_return c ? 0 : c.error().code;
    };
    co_return co_await with_stop_token(stop.get_token(), waiter());
  }());
  EXPECT_EQ(code, ECANCELED);
}

}  // namespace
}  // namespace corio::net
