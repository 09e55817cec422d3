// Server with ServerOptions::Accept::least_loaded: one listener hands each connection to the reactor serving
// the fewest. Long-lived connections spread evenly (reuse_port's spread is printed beside it, as information),
// each handler runs on the reactor it was handed to and is served there, the limiter sheds beyond
// max_conns, and a shutdown, a close() or a destroyed Server while hand-offs are in flight loses no
// descriptor and hangs nothing.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "corio/net/server.hpp"
#include "corio/net/socket_options.hpp"
#include "corio/runtime/runtime.hpp"
#include "tests/fd_count.hpp"

namespace corio::net {
namespace {

using namespace std::chrono_literals;
using Accept = ServerOptions::Accept;

constexpr unsigned kReactors = 4;

template <class Pred>
task<bool> eventually(Pred pred) {
  for (int i = 0; i < 2000 && !pred(); ++i) co_await sleep_for(1ms);
  co_return pred();
}

// Echoes until the client closes; counts the handlers running on each reactor, and those not running on
// the reactor their connection says it was handed to.
struct Spread {
  std::array<std::atomic<int>, kReactors> running{};
  std::atomic<int> misplaced{0};
  task<void> operator()(Connection& c) {
    const unsigned here = Reactor::current()->id();
    if (here != c.reactor()) ++misplaced;
    ++running.at(here);
    char buf[64];
    for (;;) {
      auto n = co_await c.stream().read_some(buf);
      if (!n || *n == 0) break;
      if (!co_await c.stream().write_all(std::span(buf, *n))) break;
    }
    --running.at(here);
  }
  int total() const {
    int n = 0;
    for (const auto& r : running) n += r.load();
    return n;
  }
};

task<bool> round_trip(TcpStream& s) {
  if (!co_await s.write_all(std::string_view("ping"))) co_return false;
  char buf[4];
  auto n = co_await s.read_exact(buf, Clock::now() + 5s);
  co_return n && *n == 4 && std::string_view(buf, 4) == "ping";
}

struct Spreading {
  std::vector<std::uint32_t> per_reactor;  // Server::connections_per_reactor()
  std::vector<int> running;                // what the handlers saw
  int echoed = 0;
  int misplaced = 0;
  bool in_time = false;
};

// 64 long-lived connections, each echoed once, to a server in `mode`.
task<Spreading> spread(Accept mode, int conns) {
  Spreading out;
  auto handler = std::make_shared<Spread>();
  auto server = Server::start(Address::loopback_v4(0), [handler](Connection& c) { return (*handler)(c); },
                              {.accept = mode});
  if (!server) co_return ADD_FAILURE() << server.error().message(), out;
  std::vector<TcpStream> clients;
  for (int i = 0; i < conns; ++i) {
    auto c = co_await TcpStream::connect((*server)->address(), 5s);
    if (!c) co_return ADD_FAILURE() << c.error().message(), out;
    clients.push_back(std::move(*c));
    out.echoed += co_await round_trip(clients.back()) ? 1 : 0;
  }
  co_await eventually([&] { return handler->total() == conns; });
  out.per_reactor = (*server)->connections_per_reactor();
  for (const auto& r : handler->running) out.running.push_back(r.load());
  out.misplaced = handler->misplaced.load();
  for (TcpStream& c : clients) c.close();
  out.in_time = co_await (*server)->shutdown(Clock::now() + 5s);
  co_return out;
}

std::string show(const std::vector<std::uint32_t>& v) {
  std::string s;
  for (std::uint32_t n : v) s += std::to_string(n) + " ";
  return s;
}

TEST(LeastLoaded, SpreadsLongLivedConnectionsEvenlyAndServesThemWhereHandedOff) {
  Runtime rt({.reactors = kReactors, .pin = false});
  auto [balanced, hashed] = rt.run([]() -> task<std::pair<Spreading, Spreading>> {
    Spreading b = co_await spread(Accept::least_loaded, 64);
    Spreading h = co_await spread(Accept::reuse_port, 64);
    co_return std::pair{std::move(b), std::move(h)};
  }());
  ASSERT_EQ(balanced.per_reactor.size(), kReactors);
  EXPECT_EQ(balanced.echoed, 64) << "every handed-off connection is served";
  EXPECT_EQ(balanced.misplaced, 0) << "a handler runs on the reactor its connection was handed to";
  for (unsigned i = 0; i < kReactors; ++i) {
    EXPECT_EQ(balanced.per_reactor[i], 16u) << "reactor " << i << ": " << show(balanced.per_reactor);
    EXPECT_EQ(balanced.running[i], 16) << "reactor " << i;
  }
  const auto [lo, hi] = std::minmax_element(balanced.per_reactor.begin(), balanced.per_reactor.end());
  EXPECT_LE(*hi - *lo, 1u);
  EXPECT_TRUE(balanced.in_time);
  // Information only: how SO_REUSEPORT's hash spread the same 64 connections.
  std::printf("connections per reactor, least_loaded: %s; reuse_port: %s\n", show(balanced.per_reactor).c_str(),
              show(hashed.per_reactor).c_str());
  EXPECT_EQ(hashed.echoed, 64);
  EXPECT_EQ(hashed.misplaced, 0);
}

TEST(LeastLoaded, TheLimiterShedsBeyondMaxConns) {
  Runtime rt({.reactors = kReactors, .pin = false});
  rt.run([]() -> task<void> {
    auto handler = std::make_shared<Spread>();
    auto server = Server::start(Address::loopback_v4(0), [handler](Connection& c) { return (*handler)(c); },
                                {.max_conns = 8, .accept = Accept::least_loaded});
    if (!server) co_return ADD_FAILURE() << server.error().message();
    std::vector<TcpStream> kept;
    int echoed = 0, shed = 0;
    for (int i = 0; i < 12; ++i) {
      auto c = co_await TcpStream::connect((*server)->address(), 5s);
      if (!c) co_return ADD_FAILURE() << c.error().message();
      if (i < 8) {
        echoed += co_await round_trip(*c) ? 1 : 0;
        kept.push_back(std::move(*c));
        continue;
      }
      char b[1];
      auto n = co_await c->read_some(b).timeout(5s);  // shed: closed at once
      shed += n && *n == 0 ? 1 : 0;
    }
    EXPECT_EQ(echoed, 8);
    EXPECT_EQ(shed, 4);
    EXPECT_EQ((*server)->limiter().shed(), 4u);
    EXPECT_EQ((*server)->limiter().active(), 8u);
    auto per = (*server)->connections_per_reactor();
    for (unsigned i = 0; i < kReactors; ++i) EXPECT_EQ(per.at(i), 2u) << "reactor " << i;
    for (TcpStream& c : kept) c.close();
    EXPECT_TRUE(co_await (*server)->shutdown(Clock::now() + 5s));
    EXPECT_EQ((*server)->limiter().active(), 0u);
  }());
}

// Hostile peers among the hand-offs: 16 that never send, 16 that send 8 MiB and never read (their
// handlers end up blocked writing), then 32 ordinary clients. Every ordinary client is served at once, the
// 64 spread 16 to a reactor, and a shutdown with the blocked ones still there ends in time.
TEST(LeastLoaded, HostilePeersAmongHandOffsCostTheOthersNothing) {
  Runtime rt({.reactors = kReactors, .pin = false});
  rt.run([]() -> task<void> {
    auto handler = std::make_shared<Spread>();
    auto server = Server::start(Address::loopback_v4(0), [handler](Connection& c) { return (*handler)(c); },
                                {.accept = Accept::least_loaded});
    if (!server) co_return ADD_FAILURE() << server.error().message();
    std::vector<TcpStream> silent, stalled, ordinary;
    for (int i = 0; i < 16; ++i) {
      auto c = co_await TcpStream::connect((*server)->address(), 5s);
      if (!c) co_return ADD_FAILURE() << c.error().message();
      silent.push_back(std::move(*c));
    }
    const std::string flood(8 << 20, 'f');  // more than the server's send buffer and this one's receive buffer hold
    for (int i = 0; i < 16; ++i) {
      auto c = co_await TcpStream::connect((*server)->address(), 5s);
      if (!c) co_return ADD_FAILURE() << c.error().message();
      (void)set_receive_buffer(c->fd(), 16 * 1024);
      // The server echoes until this peer's receive buffer and its own send buffer are full: its handler
      // is then blocked writing (and this write stalls too, or ends at its deadline).
      (void)co_await c->write_all(flood, Clock::now() + 100ms);
      stalled.push_back(std::move(*c));
    }
    int echoed = 0;
    const auto t0 = Clock::now();
    for (int i = 0; i < 32; ++i) {
      auto c = co_await TcpStream::connect((*server)->address(), 5s);
      if (!c) co_return ADD_FAILURE() << c.error().message();
      echoed += co_await round_trip(*c) ? 1 : 0;
      ordinary.push_back(std::move(*c));
    }
    EXPECT_EQ(echoed, 32);
    EXPECT_LT(Clock::now() - t0, 3s) << "the ordinary clients waited on the hostile ones";
    EXPECT_TRUE(co_await eventually([&] { return handler->total() == 64; })) << handler->total() << " handlers";
    auto per = (*server)->connections_per_reactor();
    for (unsigned i = 0; i < kReactors; ++i) EXPECT_EQ(per.at(i), 16u) << "reactor " << i << ": " << show(per);
    EXPECT_EQ(handler->misplaced.load(), 0);
    for (TcpStream& c : ordinary) c.close();
    for (TcpStream& c : silent) c.close();
    const auto t1 = Clock::now();
    (void)co_await (*server)->shutdown(Clock::now() + 300ms);  // the stalled writers are stopped
    EXPECT_LT(Clock::now() - t1, 3s);
    EXPECT_TRUE(co_await eventually([&] { return handler->total() == 0; })) << handler->total() << " handlers left";
  }());
}

// Blocking connects from a thread of its own, as fast as it can, until told to stop; closes them all.
class Flood {
 public:
  explicit Flood(const Address& to) : thread_([this, to] {
    std::vector<int> fds;
    for (int i = 0; i < 2000 && !stop_.load(); ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) break;
      if (::connect(fd, to.sockaddr_ptr(), to.length()) != 0) {
        ::close(fd);
        continue;  // refused: the listener closed
      }
      (void)::send(fd, "ping", 4, MSG_NOSIGNAL);
      fds.push_back(fd);
      connected_.fetch_add(1);
    }
    for (int fd : fds) ::close(fd);
  }) {}
  Flood(const Flood&) = delete;
  Flood& operator=(const Flood&) = delete;
  ~Flood() { finish(); }
  int connected() const { return connected_.load(); }
  void finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> connected_{0};
  std::thread thread_;
};

enum class End { shutdown, close, destroy };

// Ends a least_loaded server as `how` says while a flood of connections is being handed off.
void end_during_hand_offs(End how) {
  const std::size_t before = testing::open_fds();
  {
    Runtime rt({.reactors = kReactors, .pin = false});
    rt.run([](End how) -> task<void> {
      auto handler = std::make_shared<Spread>();
      auto server = Server::start(Address::loopback_v4(0), [handler](Connection& c) { return (*handler)(c); },
                                  {.accept = Accept::least_loaded});
      if (!server) co_return ADD_FAILURE() << server.error().message();
      Flood flood((*server)->address());
      co_await eventually([&] { return flood.connected() >= 50; });
      const auto t0 = Clock::now();
      if (how == End::shutdown) {
        (void)co_await (*server)->shutdown(Clock::now() + 200ms);  // the echo handlers are busy: stopped
      } else if (how == End::close) {
        (*server)->close();
        (void)co_await (*server)->shutdown(Clock::now() + 5s);
      } else {
        server->reset();
      }
      EXPECT_LT(Clock::now() - t0, 3s) << "nothing hangs";
      flood.finish();
      EXPECT_GT(flood.connected(), 0);
      if (*server) {
        EXPECT_TRUE(co_await eventually([&] { return (*server)->limiter().active() == 0; }));
        for (std::uint32_t n : (*server)->connections_per_reactor()) EXPECT_EQ(n, 0u);
      }
      EXPECT_TRUE(co_await eventually([&] { return handler->total() == 0; })) << handler->total() << " handlers left";
    }(how));
  }
  EXPECT_EQ(testing::open_fds(), before) << "every descriptor is closed once the runtime is gone";
}

TEST(LeastLoaded, ShutdownWhileHandOffsAreInFlightLosesNoDescriptor) { end_during_hand_offs(End::shutdown); }
TEST(LeastLoaded, CloseWhileHandOffsAreInFlightLosesNoDescriptor) { end_during_hand_offs(End::close); }
TEST(LeastLoaded, DestroyedWhileHandOffsAreInFlightLosesNoDescriptor) { end_during_hand_offs(End::destroy); }

}  // namespace
}  // namespace corio::net
