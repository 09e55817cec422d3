// Resolver and dial against real servers on loopback: dnsmasq (started here, on a free port, with test
// records and short TTLs) for answers, NXDOMAIN and NODATA; a UDP socket that never answers for timeouts;
// listeners whose accept queue is full (they drop SYNs: a black hole on loopback) for happy eyeballs.
// On both backends, like every suite.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "corio/net/dial.hpp"
#include "corio/net/resolver.hpp"
#include "corio/net/tcp_listener.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/task_scope.hpp"
#include "corio/runtime/time.hpp"
#include "tests/fd_count.hpp"
#include "tests/net/dnsmasq.hpp"

namespace corio::net {
namespace {

using namespace std::chrono_literals;
using corio::testing::Dnsmasq;
using corio::testing::free_port;
using corio::testing::open_fds;

// A UDP socket that takes queries and never answers.
class SilentServer {
 public:
  SilentServer() : fd_(corio::testing::bind_loopback(SOCK_DGRAM, port_)) {}
  ~SilentServer() { ::close(fd_); }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  std::uint16_t port_ = 0;  // before fd_: bind_loopback writes it
  int fd_;
};

// A listener on `ip`:port whose accept queue is full: the kernel drops further SYNs, so a connect to it
// hangs (SYN retries) as to a black-holed address.
class BlackHole {
 public:
  BlackHole(const char* ip, std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, ip, &a.sin_addr);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ok_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd_, 0) == 0;
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    address_ = Address::from(reinterpret_cast<sockaddr*>(&a), len);
    // Fill the queue (backlog 0 holds one), and a little more, with connections nobody accepts.
    for (int i = 0; i < 3; ++i) {
      int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
      fillers_.push_back(c);
    }
    std::this_thread::sleep_for(50ms);
  }
  ~BlackHole() {
    for (int c : fillers_) ::close(c);
    ::close(fd_);
  }
  bool ok() const { return ok_; }
  const Address& address() const { return address_; }

 private:
  int fd_;
  bool ok_ = false;
  Address address_;
  std::vector<int> fillers_;
};

template <class F>
void on_runtime(F body) {
  Runtime rt({.reactors = 1});
  rt.run(body());
}

class Dns : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(dns_.running()) << "dnsmasq did not start (scripts/bootstrap installs dnsmasq-base)"; }
  // No search domains: the names are asked as written, whatever this machine's resolv.conf says.
  ResolverOptions options() const {
    return {.servers = {dns_.server()}, .timeout = 500ms, .attempts = 2, .hosts_file = false, .search = false};
  }
  Dnsmasq dns_;
};

TEST_F(Dns, AnswersBothFamiliesAndServesTheCacheWithinTheTtl) {
  on_runtime([&]() -> task<void> {
    auto r = Resolver::create(options());
    EXPECT_TRUE(r) << r.error().message();
    if (!r) co_return;
    Resolver& res = **r;
    auto first = co_await res.resolve("db.test", 8080);
    EXPECT_TRUE(first) << first.error().message();
    if (!first) co_return;
    std::vector<std::string> got;
    for (const Address& a : *first) got.push_back(a.to_string());
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<std::string>{"127.0.0.1:8080", "[::1]:8080"}));
    auto again = co_await res.resolve("DB.test", 9090);  // names are case-insensitive; the port is the caller's
    EXPECT_TRUE(again && again->size() == 2 && (*again)[0].port() == 9090);
    EXPECT_EQ(res.stats().queries, 1u);
    EXPECT_EQ(res.stats().hits, 1u);
    EXPECT_EQ(dns_.queries_for("db.test"), 2) << "one A and one AAAA query, and none for the cache hit";
    co_await sleep_for(1300ms);  // past the 1 s TTL
    auto fresh = co_await res.resolve("db.test", 8080);
    EXPECT_TRUE(fresh && fresh->size() == 2);
    EXPECT_EQ(res.stats().queries, 2u) << "a fresh query once the TTL passed";
    EXPECT_EQ(dns_.queries_for("db.test"), 4);
  });
}

TEST_F(Dns, CapsLongTtlsAtMaxTtl) {
  on_runtime([&]() -> task<void> {
    ResolverOptions o = options();
    o.max_ttl = 1s;
    auto r = Resolver::create(o);
    EXPECT_TRUE(r);
    if (!r) co_return;
    EXPECT_TRUE(co_await (*r)->resolve("long.test", 1));
    EXPECT_TRUE(co_await (*r)->resolve("long.test", 1));
    EXPECT_EQ((*r)->stats().queries, 1u);
    co_await sleep_for(1200ms);
    EXPECT_TRUE(co_await (*r)->resolve("long.test", 1));
    EXPECT_EQ((*r)->stats().queries, 2u) << "a 3600 s TTL is kept only max_ttl (1 s)";
  });
}

TEST_F(Dns, NxdomainIsReportedWithTheServerAndCachedForTheNegativeTtl) {
  on_runtime([&]() -> task<void> {
    ResolverOptions o = options();
    o.negative_ttl = 1s;
    auto r = Resolver::create(o);
    EXPECT_TRUE(r);
    if (!r) co_return;
    auto missing = co_await (*r)->resolve("missing.test", 80);
    EXPECT_FALSE(missing);
    if (missing) co_return;
    EXPECT_EQ(missing.error().code, EHOSTUNREACH);
    EXPECT_EQ(missing.error().message(), "resolve missing.test: NXDOMAIN from " + dns_.server());
    auto cached = co_await (*r)->resolve("missing.test", 80);
    EXPECT_FALSE(cached);
    EXPECT_EQ((*r)->stats().negative_hits, 1u);
    EXPECT_EQ((*r)->stats().queries, 1u);
    co_await sleep_for(1200ms);
    EXPECT_FALSE(co_await (*r)->resolve("missing.test", 80));
    EXPECT_EQ((*r)->stats().queries, 2u) << "asked again after the negative TTL";
    auto nodata = co_await (*r)->resolve("v4only.test", 80, Family::v6);
    EXPECT_FALSE(nodata);
    if (!nodata) EXPECT_EQ(nodata.error().message(), "resolve v4only.test: no AAAA record (NODATA) from " + dns_.server());
    auto v4 = co_await (*r)->resolve("v4only.test", 80, Family::v4);
    EXPECT_TRUE(v4 && v4->size() == 1 && (*v4)[0].to_string() == "127.0.0.1:80");
  });
}

TEST_F(Dns, ConcurrentLookupsOfOneNameShareAQuery) {
  on_runtime([&]() -> task<void> {
    auto r = Resolver::create(options());
    EXPECT_TRUE(r);
    if (!r) co_return;
    int answered = 0;
    TaskScope scope;
    for (int i = 0; i < 10; ++i) {
      scope.spawn([](Resolver& res, int& n) -> task<void> {
        if (co_await res.resolve("a.test", 1)) ++n;
      }(**r, answered));
    }
    co_await scope.join();
    EXPECT_EQ(answered, 10);
    EXPECT_EQ((*r)->stats().queries, 1u);
    EXPECT_EQ((*r)->stats().shared, 9u);
  });
}

TEST_F(Dns, TheCacheIsBoundedLeastRecentlyUsedFirst) {
  on_runtime([&]() -> task<void> {
    ResolverOptions o = options();
    o.cache_entries = 2;
    auto r = Resolver::create(o);
    EXPECT_TRUE(r);
    if (!r) co_return;
    Resolver& res = **r;
    EXPECT_TRUE(co_await res.resolve("a.test", 1));
    EXPECT_TRUE(co_await res.resolve("b.test", 1));
    EXPECT_TRUE(co_await res.resolve("a.test", 1));  // a is now the most recent
    EXPECT_TRUE(co_await res.resolve("c.test", 1));  // evicts b
    EXPECT_EQ(res.cached(), 2u);
    EXPECT_EQ(res.stats().evicted, 1u);
    const auto queries = res.stats().queries;
    EXPECT_TRUE(co_await res.resolve("a.test", 1));
    EXPECT_EQ(res.stats().queries, queries) << "a stayed";
    EXPECT_TRUE(co_await res.resolve("b.test", 1));
    EXPECT_EQ(res.stats().queries, queries + 1) << "b was evicted";
  });
}

TEST(Resolver, ASilentServerTimesOutWithAMessageThatSaysSo) {
  SilentServer silent;
  on_runtime([&]() -> task<void> {
    auto r = Resolver::create({.servers = {silent.server()}, .timeout = 100ms, .attempts = 2, .hosts_file = false, .search = false});
    EXPECT_TRUE(r);
    if (!r) co_return;
    const auto t0 = Clock::now();
    auto got = co_await (*r)->resolve("anything.test", 80);
    const auto took = Clock::now() - t0;
    EXPECT_FALSE(got);
    if (got) co_return;
    EXPECT_EQ(got.error().code, ETIMEDOUT);
    EXPECT_EQ(got.error().message(),
              "resolve anything.test: no answer from " + silent.server() + " in 2 attempts of 100 ms (doubled each round)");
    EXPECT_GE(took, 250ms) << "100 ms, then 200 ms";
    EXPECT_LT(took, 2s);
    EXPECT_EQ((*r)->cached(), 0u) << "a timeout is not cached";
  });
}

TEST(Resolver, TheCallersDeadlineAndStopEndTheWaitButNotTheQuery) {
  SilentServer silent;
  const std::size_t fds = open_fds();
  on_runtime([&]() -> task<void> {
    auto r = Resolver::create({.servers = {silent.server()}, .timeout = 300ms, .attempts = 1, .hosts_file = false, .search = false});
    EXPECT_TRUE(r);
    if (!r) co_return;
    const auto t0 = Clock::now();
    auto late = co_await (*r)->resolve("x.test", 80, Family::any, Clock::now() + 50ms);
    EXPECT_FALSE(late);
    if (!late) EXPECT_EQ(late.error().code, ETIMEDOUT);
    EXPECT_LT(Clock::now() - t0, 250ms) << "the caller's deadline, not the query's timeout";
    auto joined = co_await (*r)->resolve("x.test", 80, Family::any, Clock::now() + 10ms);
    EXPECT_FALSE(joined);
    EXPECT_EQ((*r)->stats().shared, 1u) << "the first query was still running: the second lookup joined it";
    auto stopped = co_await with_timeout(30ms, (*r)->resolve("y.test", 80));
    EXPECT_FALSE(stopped.has_value()) << "stopped mid-flight";
    // The queries run to their own timeout; then the resolver's socket is closed.
    co_await sleep_for(500ms);
    auto after = co_await (*r)->resolve("x.test", 80);
    EXPECT_FALSE(after);
    if (!after) EXPECT_EQ(after.error().code, ETIMEDOUT);
    EXPECT_EQ((*r)->stats().queries, 3u) << "x.test (once, then again after it timed out) and y.test";
  });
  EXPECT_EQ(open_fds(), fds) << "c-ares's sockets are closed";
}

TEST(Resolver, DestroyedWithLookupsPendingEndsThemWithECANCELED) {
  SilentServer silent;
  const std::size_t fds = open_fds();
  on_runtime([&]() -> task<void> {
    auto r = Resolver::create({.servers = {silent.server()}, .timeout = 5s, .attempts = 1, .hosts_file = false, .search = false});
    EXPECT_TRUE(r);
    if (!r) co_return;
    std::unique_ptr<Resolver> res = std::move(*r);
    const auto t0 = Clock::now();
    std::vector<int> codes;
    TaskScope scope;
    for (int i = 0; i < 3; ++i) {
      scope.spawn([](Resolver& rr, std::vector<int>& out, int n) -> task<void> {
        auto got = co_await rr.resolve("pending" + std::to_string(n) + ".test", 80);
        out.push_back(got ? 0 : got.error().code);
      }(*res, codes, i));
    }
    co_await sleep_for(50ms);
    res.reset();
    co_await scope.join();
    EXPECT_EQ(codes, (std::vector<int>{ECANCELED, ECANCELED, ECANCELED}));
    EXPECT_LT(Clock::now() - t0, 1s) << "the lookups (and the reactor) did not wait for the 5 s timeout";
  });
  EXPECT_EQ(open_fds(), fds);
}

TEST(Resolver, HostsFileAndLiteralsNeedNoServer) {
  SilentServer silent;
  on_runtime([&]() -> task<void> {
    auto with_hosts = Resolver::create({.servers = {silent.server()}, .timeout = 100ms, .attempts = 1});
    EXPECT_TRUE(with_hosts);
    if (!with_hosts) co_return;
    auto local = co_await (*with_hosts)->resolve("localhost", 7000, Family::v4);
    EXPECT_TRUE(local && !local->empty() && (*local)[0].to_string() == "127.0.0.1:7000")
        << (local ? "" : local.error().message());
    auto lit = co_await (*with_hosts)->resolve("::1", 7000);
    EXPECT_TRUE(lit && lit->size() == 1 && (*lit)[0].to_string() == "[::1]:7000");
    EXPECT_EQ((*with_hosts)->stats().queries, 1u) << "the literal was never asked about";
  });
}

TEST(Resolver, BadInputIsRefusedWithAClearMessage) {
  on_runtime([&]() -> task<void> {
    auto bad = Resolver::create({.servers = {"not-an-address"}});
    EXPECT_FALSE(bad);
    if (!bad) EXPECT_NE(bad.error().message().find("resolver: server \"not-an-address\""), std::string::npos) << bad.error().message();
    auto no_port = Resolver::create({.servers = {"127.0.0.1:0"}});
    EXPECT_FALSE(no_port);
    auto r = Resolver::create({.hosts_file = false});
    EXPECT_TRUE(r);
    if (!r) co_return;
    auto empty = co_await (*r)->resolve("", 80);
    EXPECT_FALSE(empty);
    if (!empty) EXPECT_EQ(empty.error().code, EINVAL);
    auto d = co_await dial("no-port-here");
    EXPECT_FALSE(d);
    if (!d) EXPECT_NE(d.error().message().find("dial no-port-here: address \"no-port-here\": missing \":port\""), std::string::npos)
        << d.error().message();
  });
}

TEST_F(Dns, DialResolvesAndConnectsToTheAddressThatAnswers) {
  auto listener = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(listener);
  const std::uint16_t port = listener->local_address().port();
  on_runtime([&]() -> task<void> {
    auto r = Resolver::create(options());
    EXPECT_TRUE(r);
    if (!r) co_return;
    DialTrace trace;
    // db.test is 127.0.0.1 and ::1; only 127.0.0.1 listens, ::1 refuses at once.
    auto conn = co_await dial("db.test:" + std::to_string(port), {.resolver = r->get()}, &trace);
    EXPECT_TRUE(conn) << conn.error().message();
    EXPECT_EQ(trace.address.to_string(), "127.0.0.1:" + std::to_string(port));
    EXPECT_GE(trace.attempts, 1u);
    EXPECT_LE(trace.attempts, 2u);
    EXPECT_GT(trace.resolve, Clock::duration::zero());
    auto accepted = co_await listener->accept();
    EXPECT_TRUE(accepted);
    auto missing = co_await dial("missing.test:80", {.resolver = r->get()});
    EXPECT_FALSE(missing);
    if (!missing) EXPECT_EQ(missing.error().message(), "dial missing.test:80: resolve missing.test: NXDOMAIN from " + dns_.server());
  });
}

TEST(Dial, HappyEyeballsStartsTheNextAddressAfterTheDelayAndTheFirstToConnectWins) {
  const std::uint16_t port = free_port(SOCK_STREAM);
  BlackHole hole("127.0.0.2", port);
  ASSERT_TRUE(hole.ok());
  auto listener = TcpListener::bind(*Address::parse("127.0.0.1:" + std::to_string(port)));
  ASSERT_TRUE(listener) << listener.error().message();
  const std::size_t fds = open_fds();
  on_runtime([&]() -> task<void> {
    const std::vector<Address> addrs = {hole.address(), listener->local_address()};
    DialTrace trace;
    const auto t0 = Clock::now();
    auto conn = co_await dial(addrs, {.attempt_delay = 100ms}, &trace);
    const auto took = Clock::now() - t0;
    EXPECT_TRUE(conn) << conn.error().message();
    EXPECT_EQ(trace.attempts, 2u);
    EXPECT_EQ(trace.address, listener->local_address());
    EXPECT_GE(took, 90ms) << "the second attempt waited for the attempt delay";
    EXPECT_LT(took, 1s);
    auto accepted = co_await listener->accept();
    EXPECT_TRUE(accepted);
  });
  EXPECT_EQ(open_fds(), fds) << "the attempt to the black hole was cancelled and closed";
}

TEST(Dial, AFailedAttemptStartsTheNextWithoutWaitingForTheDelay) {
  const std::uint16_t port = free_port(SOCK_STREAM);
  BlackHole hole("127.0.0.2", port);
  ASSERT_TRUE(hole.ok());
  auto listener = net::TcpListener::bind(*Address::parse("127.0.0.1:" + std::to_string(port)));
  ASSERT_TRUE(listener);
  on_runtime([&]() -> task<void> {
    // The black hole hangs; 127.0.0.4 refuses at once; the listener answers.
    const std::vector<Address> addrs = {hole.address(), *Address::parse("127.0.0.4:" + std::to_string(port)),
                                        listener->local_address()};
    DialTrace trace;
    const auto t0 = Clock::now();
    auto conn = co_await dial(addrs, {.attempt_delay = 200ms}, &trace);
    const auto took = Clock::now() - t0;
    EXPECT_TRUE(conn) << conn.error().message();
    EXPECT_EQ(trace.attempts, 3u);
    EXPECT_GE(took, 190ms) << "the refused attempt started after one delay";
    EXPECT_LT(took, 350ms) << "and the third at once when it failed, not after a second delay";
    (void)co_await listener->accept();
  });
}

TEST(Dial, TimesOutCancelsAndClosesTheAttempts) {
  const std::uint16_t port = free_port(SOCK_STREAM);
  BlackHole a("127.0.0.2", port), b("127.0.0.3", port);
  ASSERT_TRUE(a.ok() && b.ok());
  const std::size_t fds = open_fds();
  on_runtime([&]() -> task<void> {
    const std::vector<Address> addrs = {a.address(), b.address()};
    DialTrace trace;
    const auto t0 = Clock::now();
    auto conn = co_await dial(addrs, {.timeout = 300ms, .attempt_delay = 50ms}, &trace);
    const auto took = Clock::now() - t0;
    EXPECT_FALSE(conn);
    if (!conn) {
      EXPECT_EQ(conn.error().code, ETIMEDOUT);
      EXPECT_EQ(conn.error().message(), "dial " + a.address().to_string() + ": no connection within 300 ms (2 of 2 addresses tried)");
    }
    EXPECT_EQ(trace.attempts, 2u);
    EXPECT_GE(took, 290ms);
    EXPECT_LT(took, 1s);
    // Stopped mid-flight: the caller's stop ends the dial at once.
    const auto t1 = Clock::now();
    auto stopped = co_await with_timeout(50ms, dial(addrs));
    EXPECT_FALSE(stopped.has_value());
    EXPECT_LT(Clock::now() - t1, 300ms) << "a stop ends the dial at once";
  });
  EXPECT_EQ(open_fds(), fds);
}

TEST(Dial, EveryAddressRefusedReportsTheFirstError) {
  const std::uint16_t port = free_port(SOCK_STREAM);
  on_runtime([&]() -> task<void> {
    const std::vector<Address> addrs = {*Address::parse("127.0.0.1:" + std::to_string(port)),
                                        *Address::parse("[::1]:" + std::to_string(port))};
    const auto t0 = Clock::now();
    auto conn = co_await dial(addrs, {.attempt_delay = 5s});
    EXPECT_FALSE(conn);
    if (!conn) {
      EXPECT_EQ(conn.error().code, ECONNREFUSED);
      const std::string p = std::to_string(port);
      EXPECT_EQ(conn.error().message(), "dial 127.0.0.1:" + p + ": connect 127.0.0.1:" + p + ": Connection refused");
    }
    EXPECT_LT(Clock::now() - t0, 1s) << "a refusal starts the next attempt without waiting for the delay";
    // The text form, through the reactor's own resolver (a literal: no query).
    auto by_text = co_await dial("127.0.0.1:" + std::to_string(port));
    EXPECT_FALSE(by_text);
    if (!by_text) EXPECT_EQ(by_text.error().code, ECONNREFUSED);
    EXPECT_EQ(Resolver::current().stats().queries, 0u);
  });
}

TEST(Dial, InterleavesTheFamiliesStartingWithTheFirst) {
  std::vector<Address> in;
  for (const char* a : {"[::1]:1", "[::2]:1", "[::3]:1", "127.0.0.1:1", "127.0.0.2:1"}) in.push_back(*Address::parse(a));
  std::vector<std::string> out;
  for (const Address& a : interleave_families(in)) out.push_back(a.to_string());
  EXPECT_EQ(out, (std::vector<std::string>{"[::1]:1", "127.0.0.1:1", "[::2]:1", "127.0.0.2:1", "[::3]:1"}));
}

}  // namespace
}  // namespace corio::net
