// corio-top: a live view of a running corio server's reactors, from its Prometheus endpoint (--metrics on
// the example servers, http::serve_metrics in yours): per reactor its utilisation as a bar, connections
// being served, operations completed and HTTP requests per second, completion-queue overflows and receive
// buffers in use; then the totals. Refreshes every --interval seconds; --count N stops after N refreshes.
//   corio-top --target 127.0.0.1:9100 [--interval 1] [--count N] [--backend uring|epoll]
// Exit status: 0, 1 when the endpoint could not be read, 2 for bad flags.
#include <unistd.h>

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

// name -> reactor ("" when the series has none) -> value, summed over the other labels.
using Samples = std::map<std::string, std::map<std::string, double>, std::less<>>;

Samples parse(std::string_view text) {
  Samples out;
  while (!text.empty()) {
    std::string_view line = text.substr(0, text.find('\n'));
    text.remove_prefix(std::min(text.size(), line.size() + 1));
    if (line.empty() || line[0] == '#') continue;
    const std::size_t brace = line.find('{'), space = line.rfind(' ');
    if (space == std::string_view::npos) continue;
    const std::string name(line.substr(0, std::min(brace, space)));
    std::string reactor;
    if (brace != std::string_view::npos) {
      const std::string_view labels = line.substr(brace, space - brace);
      if (auto at = labels.find("reactor=\""); at != std::string_view::npos) {
        reactor = std::string(labels.substr(at + 9, labels.find('"', at + 9) - at - 9));
      }
    }
    out[name][reactor] += std::strtod(std::string(line.substr(space + 1)).c_str(), nullptr);
  }
  return out;
}

double get(const Samples& s, std::string_view name, const std::string& reactor) {
  auto f = s.find(name);
  if (f == s.end()) return 0;
  auto r = f->second.find(reactor);
  return r == f->second.end() ? 0 : r->second;
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
      const double u = get(now, "corio_reactor_utilisation", r);
      const double c = get(now, "corio_net_connections_active", r);
      const double o = dt > 0 ? (get(now, "corio_operations_completed_total", r) - get(before, "corio_operations_completed_total", r)) / dt : 0;
      const double q = dt > 0 ? (get(now, "corio_http_requests_total", r) - get(before, "corio_http_requests_total", r)) / dt : 0;
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
