// The client's pure parts: URL splitting (and its refusals) and the circuit breaker's state machine over
// a sliding window, driven with explicit times.
#include <gtest/gtest.h>

#include "corio/http/circuit_breaker.hpp"
#include "corio/http/url.hpp"

namespace corio::http {
namespace {

using namespace std::chrono_literals;

TEST(Url, SplitsSchemeHostPortAndTarget) {
  auto u = Url::parse("https://Example.test:8443/a/b?c=1#frag");
  ASSERT_TRUE(u) << u.error().message();
  EXPECT_TRUE(u->https);
  EXPECT_EQ(u->host, "Example.test");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->target, "/a/b?c=1");
  EXPECT_EQ(u->authority(), "Example.test:8443");
  auto plain = Url::parse("http://h");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->port, 80);
  EXPECT_EQ(plain->target, "/");
  EXPECT_EQ(plain->authority(), "h") << "the default port is left out of Host";
  auto v6 = Url::parse("http://[::1]:8080?x");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->host_port(), "[::1]:8080");
  EXPECT_EQ(v6->target, "/?x");
}

TEST(Url, RefusesWhatItCannotSendWithAReason) {
  for (const char* bad : {"ftp://h/", "h/path", "http://", "http://:80/", "http://h:0/", "http://h:65536/", "http://h:8x/",
                          "http://user@h/", "http://[::1/", "http://[::1]x/", "http://h/a b", "http://h/\r\nX: y"}) {
    auto u = Url::parse(bad);
    EXPECT_FALSE(u) << bad;
    if (!u) EXPECT_EQ(u.error().code, EINVAL) << bad;
  }
  EXPECT_EQ(Url::parse("http://h:99999/").error().message(), "url \"http://h:99999/\": a port that is not 1-65535");
}

TEST(CircuitBreaker, OpensOnTheWindowsFailureRatioThenHalfOpensAndCloses) {
  CircuitBreaker b({.enabled = true, .window = 4, .min_requests = 4, .failure_ratio = 0.5, .open_for = 1s, .trials = 2});
  const Clock::time_point t0{};
  std::uint64_t g = 0;
  for (bool ok : {true, false, true}) {
    ASSERT_TRUE(b.allow(t0, g));
    b.record(ok, g, t0);
  }
  EXPECT_EQ(b.state(t0), CircuitBreaker::State::closed) << "3 outcomes: under min_requests";
  ASSERT_TRUE(b.allow(t0, g));
  b.record(false, g, t0);  // 2 of 4 failed
  EXPECT_EQ(b.state(t0), CircuitBreaker::State::open);
  EXPECT_FALSE(b.allow(t0 + 999ms, g));
  EXPECT_EQ(b.rejected(), 1u);
  // Half-open: two trials go, a third waits; both succeed and it closes.
  std::uint64_t g1 = 0, g2 = 0;
  EXPECT_TRUE(b.allow(t0 + 1s, g1));
  EXPECT_TRUE(b.allow(t0 + 1s, g2));
  EXPECT_FALSE(b.allow(t0 + 1s, g));
  b.record(true, g1, t0 + 1s);
  EXPECT_EQ(b.state(t0 + 1s), CircuitBreaker::State::half_open);
  b.record(true, g2, t0 + 1s);
  EXPECT_EQ(b.state(t0 + 1s), CircuitBreaker::State::closed);
  EXPECT_EQ(b.opened(), 1u);
}

TEST(CircuitBreaker, AFailedTrialReopensAndStaleOutcomesAreIgnored) {
  CircuitBreaker b({.enabled = true, .window = 2, .min_requests = 2, .failure_ratio = 1.0, .open_for = 1s});
  const Clock::time_point t0{};
  std::uint64_t early = 0, g = 0;
  ASSERT_TRUE(b.allow(t0, early));  // in flight while the breaker opens
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(b.allow(t0, g));
    b.record(false, g, t0);
  }
  EXPECT_EQ(b.state(t0), CircuitBreaker::State::open);
  b.record(true, early, t0);
  EXPECT_EQ(b.state(t0), CircuitBreaker::State::open) << "an outcome from before it opened changes nothing";
  ASSERT_TRUE(b.allow(t0 + 1s, g));
  b.record(false, g, t0 + 1s);
  EXPECT_EQ(b.state(t0 + 1s), CircuitBreaker::State::open);
  EXPECT_FALSE(b.allow(t0 + 1500ms, g)) << "open for another open_for";
  EXPECT_EQ(b.opened(), 2u);
  // The sliding window: old failures slide out.
  CircuitBreaker w({.enabled = true, .window = 3, .min_requests = 3, .failure_ratio = 0.6});
  for (bool ok : {false, true, true, false, true, true}) {
    ASSERT_TRUE(w.allow(t0, g));
    w.record(ok, g, t0);
  }
  EXPECT_EQ(w.state(t0), CircuitBreaker::State::closed) << "never 2 of the last 3";
}

}  // namespace
}  // namespace corio::http
