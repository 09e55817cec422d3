// corio-top: a live view of a running corio server's reactors, from its Prometheus endpoint (--metrics on
// the example servers, http::serve_metrics in yours): per reactor its utilisation as a bar, connections
// being served, operations completed and HTTP requests per second, completion-queue overflows and receive
// buffers in use; then the totals. Refreshes every --interval seconds; --count N stops after N refreshes.
//   corio-top --target 127.0.0.1:9100 [--interval 1] [--count N] [--backend uring|epoll]
// Exit status: 0, 1 when the endpoint could not be read, 2 for bad flags.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>

#include "corio/http/client.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"
#include "examples/flags.hpp"

namespace {

// Reactors in numeric order ("2" before "10"); "" (no reactor label) and "none" last.
struct ReactorOrder {
  bool operator()(const std::string& a, const std::string& b) const {
    const bool na = !a.empty() && a.find_first_not_of("0123456789") == std::string::npos;
    const bool nb = !b.empty() && b.find_first_not_of("0123456789") == std::string::npos;
    if (na != nb) return na;
    if (na && a.size() != b.size()) return a.size() < b.size();
    return a < b;
  }
};
// name -> reactor ("" when the series has none) -> value, summed over the other labels.
using Samples = std::map<std::string, std::map<std::string, double, ReactorOrder>, std::less<>>;

// One exposition line: name, optional {labels}, value, optional timestamp; the reactor label's value.
bool parse_line(std::string_view line, std::string& name, std::string& reactor, double& value) {
  std::size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ' && line[i] != '\t') ++i;
  name = std::string(line.substr(0, i));
  reactor.clear();
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const std::size_t eq = line.find('=', i);
      if (eq == std::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"') return false;
      const std::string_view key = line.substr(i, eq - i);
      std::string v;
      std::size_t j = eq + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) ++j;
        v += line[j];
      }
      if (key == "reactor") reactor = v;
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    ++i;
  }
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  const std::size_t end = line.find_first_of(" \t", i);
  const std::string text(line.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i));
  char* stop = nullptr;
  value = std::strtod(text.c_str(), &stop);
  return !name.empty() && !text.empty() && stop != text.c_str() && !std::isnan(value);
}

Samples parse(std::string_view text) {
  Samples out;
  std::string name, reactor;
  double value = 0;
  while (!text.empty()) {
    std::string_view line = text.substr(0, text.find('\n'));
    text.remove_prefix(std::min(text.size(), line.size() + 1));
    if (line.empty() || line[0] == '#' || !parse_line(line, name, reactor, value)) continue;
    out[name][reactor] += value;
  }
  return out;
}

// Per second, over dt: a counter that went down was reset (the server restarted): its new value counts.
double rate(const Samples& now, const Samples& before, std::string_view name, const std::string& reactor, double dt);

double get(const Samples& s, std::string_view name, const std::string& reactor) {
  auto f = s.find(name);
  if (f == s.end()) return 0;
  auto r = f->second.find(reactor);
  return r == f->second.end() ? 0 : r->second;
}

double rate(const Samples& now, const Samples& before, std::string_view name, const std::string& reactor, double dt) {
  if (dt <= 0) return 0;
  const double n = get(now, name, reactor), b = get(before, name, reactor);
  return (n >= b ? n - b : n) / dt;
}

std::string bar(double fraction, int width) {
  const auto full = static_cast<int>(std::lround(fraction * width));
  std::string b;
  for (int i = 0; i < width; ++i) b += i < full ? "#" : ".";
  return b;
}

void render(const std::string& target, const Samples& now, const Samples& before, double dt, unsigned refresh) {
  std::string out = "\x1b[H\x1b[2J";  // home, clear
  char line[512];
  std::snprintf(line, sizeof line, "corio-top  %s  refresh %u  (every %.1f s)\n\n", target.c_str(), refresh, dt);
  out += line;
  std::snprintf(line, sizeof line, "%-8s %-22s %6s %7s %12s %12s %9s %13s\n", "reactor", "utilisation", "busy%", "conns",
                "ops/s", "requests/s", "cq-over", "buffers");
  out += line;
  double conns = 0, ops = 0, reqs = 0, over = 0, used = 0, alloc = 0, util = 0;
  unsigned reactors = 0;
  auto loops = now.find("corio_reactor_loop_turns_total");
  if (loops != now.end()) {
    for (const auto& [r, turns] : loops->second) {
      if (r.empty() || r == "none") continue;
      ++reactors;
      const double u = std::clamp(get(now, "corio_reactor_utilisation", r), 0.0, 1.0);
      const double c = get(now, "corio_net_connections_active", r);
      const double o = rate(now, before, "corio_operations_completed_total", r, dt);
      const double q = rate(now, before, "corio_http_requests_total", r, dt);
      const double v = get(now, "corio_completion_queue_overflows_total", r);
      const double b = get(now, "corio_buffers_in_use", r), a = get(now, "corio_buffers_allocated", r);
      std::snprintf(line, sizeof line, "%-8s [%s] %5.1f%% %7.0f %12.0f %12.0f %9.0f %6.0f/%-6.0f\n", r.c_str(), bar(u, 20).c_str(),
                    u * 100, c, o, q, v, b, a);
      out += line;
      conns += c, ops += o, reqs += q, over += v, used += b, alloc += a, util += u;
    }
  }
  if (reactors == 0) out += "(no reactors in the metrics: is this a corio endpoint?)\n";
  std::snprintf(line, sizeof line, "%-8s %-22s %5.1f%% %7.0f %12.0f %12.0f %9.0f %6.0f/%-6.0f\n", "total", "", reactors ? util * 100 / reactors : 0.0,
                conns, ops, reqs, over, used, alloc);
  out += line;
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

int usage(const char* why, const char* what) {
  std::fprintf(stderr, "corio-top: %s%s\nusage: corio-top --target HOST:PORT [--interval S] [--count N] [--backend uring|epoll]\n", why,
               what);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target, backend = "uring";
  unsigned long interval = 1, count = 0;
  for (int i = 1; i < argc; i += 2) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) return usage("missing value for ", argv[i]);
    const char* v = argv[i + 1];
    if (flag == "--target") target = v;
    else if (flag == "--backend") backend = v;
    else if (flag == "--interval") {
      if (!corio::examples::parse_number(v, 3600, interval) || interval == 0) return usage("--interval: not a valid value: ", v);
    } else if (flag == "--count") {
      if (!corio::examples::parse_number(v, 1u << 30, count)) return usage("--count: not a valid value: ", v);
    } else {
      return usage("unknown flag ", argv[i]);
    }
  }
  if (target.empty()) return usage("--target is needed", "");
  corio::BackendOptions options;
  if (!corio::examples::parse_backend(backend.c_str(), options.kind)) return usage("--backend: not a valid value: ", backend.c_str());
  corio::Runtime rt({.reactors = 1, .backend = options});
  return rt.run([&]() -> corio::task<int> {
    corio::http::Client client;
    const std::string url = "http://" + target + "/metrics";
    Samples before;
    corio::Clock::time_point then{};
    for (unsigned refresh = 1; count == 0 || refresh <= count; ++refresh) {
      auto res = co_await client.send({.url = url, .deadline = corio::Clock::now() + std::chrono::seconds(5)});
      auto body = res ? co_await res->text() : corio::net::Result<std::string>(res.error());
      if (!body || res->status() != 200) {
        std::fprintf(stderr, "corio-top: %s\n", body ? ("GET " + url + ": status " + std::to_string(res->status())).c_str()
                                                    : body.error().message().c_str());
        co_return 1;
      }
      const corio::Clock::time_point now = corio::Clock::now();
      Samples samples = parse(*body);
      const double dt = then == corio::Clock::time_point{} ? 0 : std::chrono::duration<double>(now - then).count();
      render(target, samples, before, dt, refresh);
      before = std::move(samples);
      then = now;
      if (count == 0 || refresh < count) co_await corio::sleep_for(std::chrono::seconds(interval));
    }
    co_return 0;
  }());
}
