// The metrics registry: per-reactor counters, gauges and histograms gathered by a scrape on every
// reactor, in Prometheus text (checked line by line here; promtool checks whole endpoints in
// tests/http/metrics_test.py), labels escaped, histograms cumulative with +Inf equal to _count, updates
// off a reactor kept apart, and mistakes in names refused.
#include "corio/runtime/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <thread>

#include "corio/runtime/runtime.hpp"

namespace corio::metrics {
namespace {

bool has_line(const std::string& text, const std::string& line) { return text.find("\n" + line + "\n") != std::string::npos || text.starts_with(line + "\n"); }

TEST(Metrics, CountersAreKeptPerReactorAndGatheredByAScrape) {
  static Counter handled("test_handled_total", "Requests handled.", {{"kind", "a\"b\\c"}});
  static Gauge level("test_level", "A level.");
  Runtime rt({.reactors = 2});
  const std::string text = rt.run([&]() -> task<std::string> {
    handled.add(3);
    level.set(1.5);
    co_await submit_to(1, [] {
      handled.add(4);
      level.add(-2);
    });
    co_return co_await scrape();
  }());
  EXPECT_TRUE(has_line(text, "# HELP test_handled_total Requests handled.")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE test_handled_total counter"));
  EXPECT_TRUE(has_line(text, R"(test_handled_total{kind="a\"b\\c",reactor="0"} 3)")) << text;
  EXPECT_TRUE(has_line(text, R"(test_handled_total{kind="a\"b\\c",reactor="1"} 4)"));
  EXPECT_TRUE(has_line(text, R"(test_level{reactor="0"} 1.5)"));
  EXPECT_TRUE(has_line(text, R"(test_level{reactor="1"} -2)"));
}

TEST(Metrics, HistogramsAreCumulativeWithInfEqualToCount) {
  static Histogram h("test_wait_seconds", "Waits.", {0.1, 1, 10});
  Runtime rt({.reactors = 1});
  const std::string text = rt.run([&]() -> task<std::string> {
    for (double v : {0.05, 0.1, 0.5, 5.0, 50.0}) h.observe(v);
    co_return co_await scrape();
  }());
  EXPECT_TRUE(has_line(text, "# TYPE test_wait_seconds histogram")) << text;
  EXPECT_TRUE(has_line(text, R"(test_wait_seconds_bucket{reactor="0",le="0.1"} 2)")) << "a value equal to a bound is in its bucket";
  EXPECT_TRUE(has_line(text, R"(test_wait_seconds_bucket{reactor="0",le="1"} 3)"));
  EXPECT_TRUE(has_line(text, R"(test_wait_seconds_bucket{reactor="0",le="10"} 4)"));
  EXPECT_TRUE(has_line(text, R"(test_wait_seconds_bucket{reactor="0",le="+Inf"} 5)"));
  EXPECT_TRUE(has_line(text, R"(test_wait_seconds_count{reactor="0"} 5)"));
  EXPECT_TRUE(has_line(text, R"(test_wait_seconds_sum{reactor="0"} 55.65)")) << text;
}

TEST(Metrics, ObservedValuesUpdatesOffReactorsAndTheSwitch) {
  static const bool observed = [] {  // once per process (--gtest_repeat)
    observe("test_observed", "Read at scrape time.", "gauge", [] { return 7.0; });
    observe("test_once", "Read once per scrape.", "gauge", [] { return 1.0; }, {}, false);
    return true;
  }();
  (void)observed;
  static Counter c("test_switch_total", "Switched.");
  static int runs = 0;  // the off-reactor slot is the process's: it adds up over --gtest_repeat
  ++runs;
  std::thread([] { c.add(5); }).join();  // not a reactor
  Runtime rt({.reactors = 1});
  const std::string text = rt.run([&]() -> task<std::string> {
    c.add(1);
    set_enabled(false);
    c.add(100);
    set_enabled(true);
    co_return co_await scrape();
  }());
  EXPECT_TRUE(has_line(text, R"(test_observed{reactor="0"} 7)")) << text;
  EXPECT_TRUE(has_line(text, "test_once 1"));
  EXPECT_TRUE(has_line(text, R"(test_switch_total{reactor="0"} 1)")) << "updates while switched off are dropped";
  EXPECT_TRUE(has_line(text, "test_switch_total{reactor=\"none\"} " + std::to_string(5 * runs))) << "off-reactor updates are kept apart";
}

TEST(Metrics, TheSameMetricMadeTwiceIsOneSeriesAndMistakesAreRefused) {
  static Counter a("test_twice_total", "Twice.", {{"server", "x"}});
  static Counter b("test_twice_total", "Twice.", {{"server", "x"}});
  Runtime rt({.reactors = 1});
  const std::string text = rt.run([&]() -> task<std::string> {
    a.add();
    b.add();
    co_return co_await scrape();
  }());
  EXPECT_TRUE(has_line(text, R"(test_twice_total{server="x",reactor="0"} 2)")) << text;
  EXPECT_THROW(Counter("bad name", "x"), std::invalid_argument);
  EXPECT_THROW(Counter("test_lbl_total", "x", {{"reactor", "1"}}), std::invalid_argument) << "reactor is the runtime's label";
  EXPECT_THROW(Gauge("test_twice_total", "x", {{"server", "y"}}), std::invalid_argument) << "one name, one type";
  EXPECT_THROW(Histogram("test_h_seconds", "x", {1, 1}), std::invalid_argument) << "bounds ascend";
  EXPECT_THROW(Counter("test_colon_total", "x", {{"a:b", "1"}}), std::invalid_argument) << "no colon in a label name";
}

TEST(Metrics, HelpIsEscapedAndNaNIsSpelledAsTheFormatSays) {
  static Gauge g("test_escaped", "A path like C:\\dir\nand a second line.");
  static const bool observed = (observe("test_nan", "Not a number.", "gauge", [] { return std::nan(""); }), true);
  (void)observed;
  Runtime rt({.reactors = 1});
  const std::string text = rt.run([&]() -> task<std::string> {
    g.set(1);
    co_return co_await scrape();
  }());
  EXPECT_TRUE(has_line(text, "# HELP test_escaped A path like C:\\\\dir\\nand a second line.")) << text;
  EXPECT_TRUE(has_line(text, R"(test_nan{reactor="0"} NaN)"));
}

}  // namespace
}  // namespace corio::metrics
