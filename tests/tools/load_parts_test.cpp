// corio-load's parts: the latency histogram's buckets and quantiles, and the incremental HTTP response
// counter on split, joined and malformed input.
#include <gtest/gtest.h>

#include <string>

#include "tools/http_response.hpp"
#include "tools/latency_histogram.hpp"

namespace corio::tools {
namespace {

TEST(LatencyHistogram, BucketsAreExactBelow128AndWithin2PercentAbove) {
  for (std::uint64_t v : {0ull, 1ull, 127ull, 128ull, 1000ull, 123'456ull, 9'999'999'999ull, ~0ull >> 1}) {
    const std::size_t i = LatencyHistogram::index(v);
    ASSERT_LT(i, LatencyHistogram::kBuckets) << v;
    const std::uint64_t lo = LatencyHistogram::lower_bound(i);
    EXPECT_LE(lo, v);
    if (v < 128) EXPECT_EQ(lo, v);
    else EXPECT_LE(static_cast<double>(v - lo) / static_cast<double>(v), 1.0 / 64) << v;
  }
}

TEST(LatencyHistogram, QuantilesOfAKnownDistribution) {
  LatencyHistogram h;
  for (std::uint64_t v = 1; v <= 100'000; ++v) h.record(v * 1000);  // 1 us .. 100 ms, uniform
  EXPECT_EQ(h.count(), 100'000u);
  EXPECT_EQ(h.max(), 100'000'000u);
  auto near = [](std::uint64_t got, double want) { return std::abs(static_cast<double>(got) - want) / want < 0.02; };
  EXPECT_TRUE(near(h.quantile(0.5), 50e6)) << h.quantile(0.5);
  EXPECT_TRUE(near(h.quantile(0.99), 99e6)) << h.quantile(0.99);
  EXPECT_TRUE(near(h.quantile(0.999), 99.9e6)) << h.quantile(0.999);
  EXPECT_EQ(h.quantile(1.0), h.max());
  LatencyHistogram other;
  other.record(200'000'000);
  h.merge(other);
  EXPECT_EQ(h.count(), 100'001u);
  EXPECT_EQ(h.max(), 200'000'000u);
  EXPECT_EQ(LatencyHistogram().quantile(0.5), 0u);
}

const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

TEST(HttpResponses, CountsResponsesSplitAnywhereAndJoined) {
  const std::string three = kOk + "HTTP/1.1 204 No Content\r\n\r\n" + kOk;
  for (std::size_t step = 1; step <= three.size(); ++step) {
    HttpResponses r;
    int total = 0;
    for (std::size_t at = 0; at < three.size(); at += step) {
      int n = r.feed(std::span(three).subspan(at, std::min(step, three.size() - at)));
      ASSERT_GE(n, 0) << r.error();
      total += n;
    }
    EXPECT_EQ(total, 3) << "step " << step;
  }
}

TEST(HttpResponses, CountsNon2xxAndRejectsWhatItCannotFrame) {
  HttpResponses r;
  EXPECT_EQ(r.feed(std::string("HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n")), 1);
  EXPECT_EQ(r.non_2xx(), 1u);

  HttpResponses chunked;
  EXPECT_EQ(chunked.feed(std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")), -1);
  EXPECT_NE(chunked.error().find("chunked"), std::string::npos);

  HttpResponses garbage;
  EXPECT_EQ(garbage.feed(std::string("SSH-2.0-OpenSSH\r\n\r\n")), -1);
  EXPECT_NE(garbage.error().find("not an HTTP/1.x status line"), std::string::npos);

  HttpResponses bad_length;
  EXPECT_EQ(bad_length.feed(std::string("HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n")), -1);

  HttpResponses no_length;
  EXPECT_EQ(no_length.feed(std::string("HTTP/1.1 200 OK\r\n\r\n")), -1);

  HttpResponses huge;
  std::string endless = "HTTP/1.1 200 OK\r\n" + std::string(HttpResponses::kMaxHeader + 10, 'x');
  EXPECT_EQ(huge.feed(endless), -1);
  EXPECT_NE(huge.error().find("over"), std::string::npos);
}

}  // namespace
}  // namespace corio::tools
