// serve(): shedding over the limit, surviving EMFILE, and stopping through the stop token.
#include "net/server.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <vector>

#include "runtime/runtime.hpp"

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
  Runtime rt({.reactors = 1});
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
  Runtime rt({.reactors = 1});
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  ConnectionLimiter limiter(0);
  ServerCounters counters;
  EchoOnce echo;
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  auto [during, after] = rt.run([&]() -> task<std::pair<bool, bool>> {
    std::stop_source stop;
    spawn(with_stop_token(stop.get_token(), serve(*l, echo, limiter, counters)));
    // Leave room for the client's socket but not for the server's accepted one.
    std::vector<int> filler;
    int probe = ::dup(0);
    rlimit low{static_cast<rlim_t>(probe + 2), saved.rlim_max};
    ::close(probe);
    setrlimit(RLIMIT_NOFILE, &low);
    for (int fd; (fd = ::dup(0)) >= 0;) filler.push_back(fd);
    ::close(filler.back());  // one free slot: the client's socket
    filler.pop_back();
    auto client = co_await TcpStream::connect(l->local_address(), 2s);
    co_await eventually([&] { return counters.out_of_descriptors.load() > 0; });
    bool refused_while_full = client.ok() && counters.accepted.load() == 0;
    for (int fd : filler) ::close(fd);
    setrlimit(RLIMIT_NOFILE, &saved);
    // The pending connection is accepted on a retry, and new ones are served.
    bool served = co_await ping(l->local_address());
    stop.request_stop();
    co_return std::pair{refused_while_full, served};
  }());
  EXPECT_TRUE(during);
  EXPECT_TRUE(after);
  EXPECT_GE(counters.out_of_descriptors.load(), 1u);
}

}  // namespace
}  // namespace corio::net
