// metrics: counters, gauges and histograms kept per reactor, in the shape of the runtime (Seastar's
// design). An update is a plain add to the calling reactor's own slot: no atomic, no lock, no allocation
// (a reactor's table grows once, on its first update of a new metric). A scrape runs on every reactor in
// turn (submit_to), reads that reactor's values on its own thread, and writes the Prometheus text
// exposition (version 0.0.4), each series labelled reactor="N".
//   static corio::metrics::Counter handled("myapp_requests_total", "Requests handled.", {{"kind", "get"}});
//   handled.add();                                           // on a reactor
//   std::string text = co_await corio::metrics::scrape();    // on a reactor: every reactor's values
// Metrics are made once (statics, usually) and live as long as the process; a label combination is a
// metric of its own (make one per value, not one per update), and making the same one again (same name,
// labels and buckets) gives the same series. Names follow Prometheus: counters end in
// _total, durations are _seconds, sizes _bytes. Updates from threads that are not reactors (the blocking
// pool, main) go to one shared slot under a lock, shown as reactor="none".
// set_enabled(false) makes every update a no-op (to measure what metrics cost; on by default).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "corio/runtime/task.hpp"

namespace corio::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

namespace detail {
extern std::atomic<bool> enabled;  // relaxed: a plain load on the hot path
// The calling thread's values: a reactor's table, or nullptr off reactors.
double* slots(std::uint32_t first, std::uint32_t count) noexcept;
void add_off_reactor(std::uint32_t slot, double v) noexcept;
inline void add(std::uint32_t slot, double v) noexcept {
  if (!enabled.load(std::memory_order_relaxed)) return;
  if (double* s = slots(slot, 1)) *s += v;
  else add_off_reactor(slot, v);
}
std::uint32_t declare(std::string_view family, std::string_view help, const char* type, const Labels& labels,
                      std::vector<double> bounds, std::function<double()> read, bool per_reactor = true);
}  // namespace detail

class Counter {
 public:
  Counter(std::string_view name, std::string_view help, const Labels& labels = {})
      : slot_(detail::declare(name, help, "counter", labels, {}, nullptr)) {}
  void add(std::uint64_t n = 1) noexcept { detail::add(slot_, static_cast<double>(n)); }

 private:
  std::uint32_t slot_;
};

// Per reactor: each reactor's own level (its connections, its buffers in use).
class Gauge {
 public:
  Gauge(std::string_view name, std::string_view help, const Labels& labels = {})
      : slot_(detail::declare(name, help, "gauge", labels, {}, nullptr)) {}
  void add(double d) noexcept { detail::add(slot_, d); }
  void set(double v) noexcept;

 private:
  std::uint32_t slot_;
};

// Counts of observations at most each bound (cumulative in the exposition, with +Inf = _count), and
// their sum. Bounds ascending; an observation finds its bucket by a linear scan (keep them few).
class Histogram {
 public:
  Histogram(std::string_view name, std::string_view help, std::vector<double> bounds, const Labels& labels = {});
  void observe(double v) noexcept;

 private:
  std::uint32_t slot_;  // buckets (bounds + the last, +Inf), then sum
  std::vector<double> bounds_;
};

// Latency buckets in seconds, 10 us to 10 s (roughly x2.5 apart).
std::vector<double> seconds_buckets();

// A value read at scrape time, on each reactor (per_reactor) or once: for state a layer keeps anyway
// (a queue's length, the loop's turns), so that its hot path pays nothing for being observed.
void observe(std::string_view name, std::string_view help, const char* type, std::function<double()> read,
             const Labels& labels = {}, bool per_reactor = true);

// Every metric's values, gathered from each reactor of the current runtime, as Prometheus text.
task<std::string> scrape();

void set_enabled(bool on) noexcept;

}  // namespace corio::metrics
