#include "corio/runtime/metrics.hpp"

#include <charconv>
#include <cmath>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "corio/runtime/reactor.hpp"
#include "corio/runtime/runtime.hpp"

namespace corio::metrics {

namespace detail {
std::atomic<bool> enabled{true};
}

namespace {

struct Series {
  std::string family;
  std::string help;
  const char* type;
  std::string labels;  // rendered: name="value",...
  std::uint32_t slot = 0;
  std::uint32_t width = 0;
  std::vector<double> bounds;
  std::function<double()> read;  // an observed value (no slots)
  bool per_reactor = true;
};

struct Registry {
  std::mutex mutex;
  std::deque<Series> series;  // stable addresses: a scrape reads them without the lock
  std::atomic<std::uint32_t> slots{0};
  std::vector<double> off_reactor;  // under mutex
};

Registry& registry() {
  static Registry r;
  return r;
}

thread_local std::vector<double> reactor_table;

bool valid_name(std::string_view n) {
  if (n.empty() || (n[0] >= '0' && n[0] <= '9')) return false;
  for (char c : n) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':')) return false;
  }
  return true;
}

std::string render(const Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!valid_name(k) || k.find(':') != std::string::npos || k.starts_with("__") || k == "reactor" || k == "le") {
      throw std::invalid_argument("metrics: label name \"" + k + "\" is not allowed");
    }
    if (!out.empty()) out += ',';
    out += k;
    out += "=\"";
    for (char c : v) {
      if (c == '\\' || c == '"') out += '\\', out += c;
      else if (c == '\n') out += "\\n";
      else out += c;
    }
    out += '"';
  }
  return out;
}

void number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[32];
  const bool integral = std::floor(v) == v && std::fabs(v) < 9007199254740992.0;
  auto r = integral ? std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v)) : std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// One sample line: name{labels,extra} value.
void write_sample(std::string& out, std::string_view name, const std::string& labels, std::string_view extra, double v) {
  out += name;
  if (!labels.empty() || !extra.empty()) {
    out += '{';
    out += labels;
    if (!labels.empty() && !extra.empty()) out += ',';
    out += extra;
    out += '}';
  }
  out += ' ';
  number(out, v);
  out += '\n';
}

struct Taken {
  std::vector<double> values;  // the reactor's slots
  std::vector<double> reads;   // its observed values, in series order
};

void histogram(std::string& out, const Series& s, const double* v, std::string_view reactor) {
  double cumulative = 0;
  for (std::size_t i = 0; i <= s.bounds.size(); ++i) {
    cumulative += v[i];
    std::string le(reactor);
    if (!le.empty()) le += ',';
    le += "le=\"";
    if (i < s.bounds.size()) number(le, s.bounds[i]);
    else le += "+Inf";
    le += '"';
    write_sample(out, s.family + "_bucket", s.labels, le, cumulative);
  }
  write_sample(out, s.family + "_sum", s.labels, reactor, v[s.bounds.size() + 1]);
  write_sample(out, s.family + "_count", s.labels, reactor, cumulative);
}

}  // namespace

namespace detail {

double* slots(std::uint32_t first, std::uint32_t count) noexcept {
  if (Reactor::current() == nullptr) return nullptr;
  std::vector<double>& t = reactor_table;
  if (first + count > t.size()) t.resize(registry().slots.load(std::memory_order_acquire), 0.0);
  return t.data() + first;
}

void add_off_reactor(std::uint32_t slot, double v) noexcept {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.off_reactor[slot] += v;
}

std::uint32_t declare(std::string_view family, std::string_view help, const char* type, const Labels& labels,
                      std::vector<double> bounds, std::function<double()> read, bool per_reactor) {
  if (!valid_name(family)) throw std::invalid_argument("metrics: \"" + std::string(family) + "\" is not a metric name");
  for (std::size_t i = 1; i < bounds.size(); ++i) {
    if (!(bounds[i - 1] < bounds[i])) throw std::invalid_argument("metrics: " + std::string(family) + ": bounds must ascend");
  }
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::string rendered = render(labels);
  for (const Series& s : r.series) {
    if (s.family != family) continue;
    if (s.type != std::string_view(type)) throw std::invalid_argument("metrics: " + std::string(family) + " is already a " + s.type);
    // The same series made again (a second server of one name): both update it.
    if (s.labels == rendered && !read && !s.read && s.bounds == bounds) return s.slot;
    if (s.labels == rendered) throw std::invalid_argument("metrics: " + std::string(family) + "{" + rendered + "} made twice, differently");
  }
  Series s{.family = std::string(family), .help = std::string(help), .type = type, .labels = std::move(rendered)};
  s.width = read ? 0 : std::string_view(type) == "histogram" ? static_cast<std::uint32_t>(bounds.size() + 2) : 1;
  s.bounds = std::move(bounds);
  s.read = std::move(read);
  s.per_reactor = per_reactor;
  s.slot = r.slots.load(std::memory_order_relaxed);
  r.off_reactor.resize(s.slot + s.width, 0.0);
  r.slots.store(s.slot + s.width, std::memory_order_release);
  const std::uint32_t slot = s.slot;
  r.series.push_back(std::move(s));
  return slot;
}

}  // namespace detail

void Gauge::set(double v) noexcept {
  if (!detail::enabled.load(std::memory_order_relaxed)) return;
  if (double* s = detail::slots(slot_, 1)) {
    *s = v;
    return;
  }
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.off_reactor[slot_] = v;
}

Histogram::Histogram(std::string_view name, std::string_view help, std::vector<double> bounds, const Labels& labels)
    : slot_(detail::declare(name, help, "histogram", labels, bounds, nullptr)), bounds_(std::move(bounds)) {}

void Histogram::observe(double v) noexcept {
  if (!detail::enabled.load(std::memory_order_relaxed)) return;
  std::size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  const auto width = static_cast<std::uint32_t>(bounds_.size() + 2);
  if (double* s = detail::slots(slot_, width)) {
    s[i] += 1;
    s[bounds_.size() + 1] += v;
    return;
  }
  detail::add_off_reactor(slot_ + static_cast<std::uint32_t>(i), 1);
  detail::add_off_reactor(slot_ + static_cast<std::uint32_t>(bounds_.size()) + 1, v);
}

std::vector<double> seconds_buckets() {
  return {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

void observe(std::string_view name, std::string_view help, const char* type, std::function<double()> read,
             const Labels& labels, bool per_reactor) {
  (void)detail::declare(name, help, type, labels, {}, std::move(read), per_reactor);
}

void set_enabled(bool on) noexcept { detail::enabled.store(on, std::memory_order_relaxed); }

task<std::string> scrape() {
  Reactor* here = Reactor::current();
  if (here == nullptr) throw std::logic_error("metrics::scrape: not on a reactor");
  Registry& reg = registry();
  std::vector<const Series*> list;
  std::vector<double> off;
  std::uint32_t total = 0;
  {
    std::lock_guard lock(reg.mutex);
    for (const Series& s : reg.series) list.push_back(&s);
    off = reg.off_reactor;
    total = reg.slots.load(std::memory_order_relaxed);
  }
  const unsigned reactors = here->runtime()->size();
  std::vector<Taken> taken(reactors);
  for (unsigned r = 0; r < reactors; ++r) {
    taken[r] = co_await submit_to(r, [&list, total] {
      Taken t;
      t.values = reactor_table;
      t.values.resize(total, 0.0);
      for (const Series* s : list) {
        if (s->read && s->per_reactor) t.reads.push_back(s->read());
      }
      return t;
    });
  }
  // Families in the order they first appeared, each with its HELP and TYPE once.
  std::vector<std::string_view> order;
  std::unordered_map<std::string_view, std::vector<std::size_t>> members;
  for (std::size_t i = 0; i < list.size(); ++i) {
    auto& m = members[list[i]->family];
    if (m.empty()) order.push_back(list[i]->family);
    m.push_back(i);
  }
  std::vector<std::size_t> read_index(list.size(), 0);
  for (std::size_t i = 0, k = 0; i < list.size(); ++i) {
    if (list[i]->read && list[i]->per_reactor) read_index[i] = k++;
  }
  std::string out;
  for (std::string_view family : order) {
    const Series& first = *list[members[family].front()];
    out += "# HELP ";
    out += family;
    out += ' ';
    for (char c : first.help) {  // the format's escapes for HELP: backslash and newline
      if (c == '\\') out += "\\\\";
      else if (c == '\n') out += "\\n";
      else out += c;
    }
    out += "\n# TYPE ";
    out += family;
    out += ' ';
    out += first.type;
    out += '\n';
    for (std::size_t i : members[family]) {
      const Series& s = *list[i];
      if (s.read && !s.per_reactor) {
        write_sample(out, s.family, s.labels, "", s.read());
        continue;
      }
      for (unsigned r = 0; r < reactors; ++r) {
        const std::string reactor = "reactor=\"" + std::to_string(r) + "\"";
        if (s.read) write_sample(out, s.family, s.labels, reactor, taken[r].reads[read_index[i]]);
        else if (s.bounds.empty() && std::string_view(s.type) != "histogram") write_sample(out, s.family, s.labels, reactor, taken[r].values[s.slot]);
        else histogram(out, s, taken[r].values.data() + s.slot, reactor);
      }
      if (s.read) continue;
      bool any = false;
      for (std::uint32_t k = 0; k < s.width; ++k) any = any || off[s.slot + k] != 0;
      if (!any) continue;
      if (std::string_view(s.type) == "histogram") histogram(out, s, off.data() + s.slot, "reactor=\"none\"");
      else write_sample(out, s.family, s.labels, "reactor=\"none\"", off[s.slot]);
    }
  }
  co_return out;
}

}  // namespace corio::metrics
