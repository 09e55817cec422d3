// serve(): shedding over the limit, surviving EMFILE, and stopping through the stop token.
#include "corio/net/server.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <vector>

#include "corio/runtime/runtime.hpp"

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

}  // namespace
}  // namespace corio::net
