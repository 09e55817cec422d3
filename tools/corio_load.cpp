// corio-load: a load generator built on corio. Each connection keeps --pipeline requests in flight
// (closed loop), or with --rate sends on a fixed schedule and measures latency from each request's
// intended send time, so a stalled server cannot hide behind a slowed client (coordinated omission).
//   corio-load --target 127.0.0.1:7000 --mode echo --conns 50 --size 64 --duration 10 [--json]
// Modes: echo (N bytes out, the same N back), frame (4-byte big-endian length + N bytes, echoed), http
// (GET --path with keep-alive; responses need Content-Length). Every echo and frame reply is verified byte
// for byte. With --client (http mode), each connection is a task sending GETs one after another through
// the reactor's http::Client (its pool, its resolver: the target may be a name, --resolver HOST:PORT
// names the DNS server). Exit status: 0 when requests completed and nothing failed verification, 1
// otherwise, 2 for bad flags.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "examples/flags.hpp"
#include "corio/http/client.hpp"
#include "corio/net/address.hpp"
#include "corio/net/resolver.hpp"
#include "corio/net/recv_stream.hpp"
#include "corio/net/tcp_stream.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"
#include "corio/tls/stream.hpp"
#include "tools/http_response.hpp"
#include "tools/latency_histogram.hpp"

namespace corio::tools {
namespace {

using namespace std::chrono_literals;

enum class Mode { echo, frame, http };

struct Flags {
  std::string target = "127.0.0.1:7000";
  Mode mode = Mode::echo;
  unsigned conns = 50;
  std::size_t size = 64;
  double duration = 10;
  double warmup = 1;
  unsigned pipeline = 1;
  double rate = 0;  // requests/s over all connections; 0: closed loop
  unsigned reactors = 1;
  std::string path = "/";
  bool json = false;
  bool tls = false;        // --tls: TLS over each connection (closed loop only)
  std::string tls_ca;      // --tls-ca: verify the server against this bundle (else no verification)
  std::string tls_name;    // --tls-name: SNI and the name the certificate must carry
  std::string alpn;        // --alpn h2,http/1.1
  bool client = false;     // --client: http mode through http::Client
  std::string resolver;    // --resolver HOST:PORT: the DNS server for --client
  BackendOptions backend;
};

// What one reactor's connections measured; merged at the end.
struct Stats {
  LatencyHistogram latency;
  std::uint64_t requests = 0;  // completed after the warm-up
  std::uint64_t bytes = 0;     // received after the warm-up
  std::uint64_t non_2xx = 0;
  std::map<std::string, std::uint64_t> errors;  // by kind: "connect: Connection refused", "verify", ...
  bool verify_failed = false;
};

// Live counters for the progress line, written by every reactor.
struct Progress {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> errors{0};
};

struct Plan {
  const Flags* flags;
  const tls::Context* tls = nullptr;
  net::Address target;
  Clock::time_point start;     // warm-up begins
  Clock::time_point measured;  // measurement begins
  Clock::time_point end;       // no new requests after this
  std::string pattern;         // request payload source: byte i is i mod 256
  Progress* progress;
};

// The requests of one connection, and the check of what comes back. Echo and frame replies must equal the
// request stream byte for byte; request k's payload starts at offset k mod 256 of the pattern.
class Exchange {
 public:
  Exchange(const Plan& plan) : plan_(plan), f_(*plan.flags) {
    if (f_.mode == Mode::http) {
      request_ = "GET " + f_.path + " HTTP/1.1\r\nHost: " + plan.target.to_string() + "\r\n\r\n";
    }
  }
  std::size_t wire_size() const noexcept {
    if (f_.mode == Mode::http) return request_.size();
    return f_.size + (f_.mode == Mode::frame ? 4 : 0);
  }
  // Appends request number `k` to `out`.
  void append_request(std::uint64_t k, std::string& out) const {
    if (f_.mode == Mode::http) {
      out += request_;
      return;
    }
    if (f_.mode == Mode::frame) {
      const auto n = static_cast<std::uint32_t>(f_.size);
      const char header[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                              static_cast<char>(n)};
      out.append(header, 4);
    }
    out.append(plan_.pattern, k % 256, f_.size);
  }
  // Consumes received bytes; returns the replies they completed, or -1 (the reason in error()).
  int feed(std::span<const char> bytes) {
    if (f_.mode == Mode::http) {
      int n = http_.feed(bytes);
      if (n < 0) error_ = http_.error();
      return n;
    }
    const std::size_t wire = wire_size();
    int done = 0;
    while (!bytes.empty()) {
      const std::size_t at = static_cast<std::size_t>(received_ % wire);
      const std::size_t take = std::min(bytes.size(), wire - at);
      expected_.clear();
      append_request(received_ / wire, expected_);
      if (std::memcmp(bytes.data(), expected_.data() + at, take) != 0) {
        error_ = "verify: reply " + std::to_string(received_ / wire) + " differs from its request";
        return -1;
      }
      received_ += take;
      bytes = bytes.subspan(take);
      if (received_ % wire == 0) ++done;
    }
    return done;
  }
  const std::string& error() const noexcept { return error_; }
  std::uint64_t non_2xx() const noexcept { return http_.non_2xx(); }

 private:
  const Plan& plan_;
  const Flags& f_;
  std::string request_;
  std::string expected_;
  std::uint64_t received_ = 0;
  HttpResponses http_;
  std::string error_;
};

std::string reason(const net::Error& e) {
  std::string m = e.message();
  return m.substr(m.rfind(": ") + 2);
}

void count_error(Stats& st, const Plan& plan, std::string kind) {
  ++st.errors[std::move(kind)];
  plan.progress->errors.fetch_add(1, std::memory_order_relaxed);
}

// Sends on a schedule (--rate): request k is due at start + k * interval, and is recorded as sent then.
struct Pacing {
  Clock::time_point first;  // this connection's first send
  Clock::duration interval;
  bool stop = false;
  bool done = false;
};

task<void> paced_sender(const Plan& plan, const net::TcpStream& conn, const Exchange& ex,
                        std::deque<Clock::time_point>& due, Pacing& pace, Stats& st) {
  std::string out;
  for (std::uint64_t k = 0; !pace.stop; ++k) {
    const Clock::time_point when = pace.first + k * pace.interval;
    if (when >= plan.end) break;
    if (Clock::now() < when) co_await sleep_until(when);
    out.clear();
    ex.append_request(k, out);
    due.push_back(when);
    auto sent = co_await conn.write_all(out, Clock::now() + 5s);
    if (!sent) {
      if (!pace.stop) count_error(st, plan, "write: " + reason(sent.error()));
      break;
    }
  }
  pace.done = true;
}

// Records the replies `done` completed (sent_at holds their send times, oldest first).
void record(const Plan& plan, Stats& st, std::deque<Clock::time_point>& sent_at, int done, Clock::time_point now) {
  const bool measuring = now >= plan.measured;
  for (int i = 0; i < done && !sent_at.empty(); ++i) {
    if (measuring && sent_at.front() >= plan.measured) {
      st.latency.record(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent_at.front()).count()));
      ++st.requests;
    }
    sent_at.pop_front();
  }
  plan.progress->requests.fetch_add(static_cast<std::uint64_t>(done), std::memory_order_relaxed);
}

// A connection's requests in flight: queue() writes the next ones (their send times noted), received()
// checks what came back and records the replies it completed.
struct InFlight {
  explicit InFlight(const Plan& plan) : ex(plan) {}
  std::string_view queue(std::uint64_t count, Clock::time_point now) {
    out.clear();
    for (std::uint64_t i = 0; i < count; ++i, ++next) {
      ex.append_request(next, out);
      sent_at.push_back(now);
    }
    return out;
  }
  // The replies completed, or -1 after counting a verification failure.
  int received(const Plan& plan, Stats& st, std::span<const char> bytes, Clock::time_point now) {
    if (now >= plan.measured) st.bytes += bytes.size();
    int done = ex.feed(bytes);
    if (done < 0) {
      count_error(st, plan, ex.error().substr(0, ex.error().find(':')));
      st.verify_failed = true;
      return -1;
    }
    record(plan, st, sent_at, done, now);
    return done;
  }
  Exchange ex;
  std::deque<Clock::time_point> sent_at;  // per request in flight: when it was sent (or due)
  std::uint64_t next = 0;
  std::string out;
};

// --tls: the closed loop over a tls::Stream (records are decrypted into a buffer, then checked).
task<void> tls_connection(const Plan& plan, net::TcpStream tcp, Stats& st) {
  const Flags& f = *plan.flags;
  auto s = co_await tls::Stream::connect(*plan.tls, std::move(tcp), f.tls_name, Clock::now() + 5s);
  if (!s) {
    count_error(st, plan, "tls handshake");
    co_return;
  }
  InFlight flight(plan);
  std::vector<char> buf(std::size_t{16} * 1024);
  if (!co_await s->write_all(flight.queue(f.pipeline, Clock::now()), Clock::now() + 5s)) {
    count_error(st, plan, "tls write");
    co_return;
  }
  while (!flight.sent_at.empty()) {
    auto n = co_await s->read_some(buf, plan.end + 2s);
    if (!n || *n == 0) {
      count_error(st, plan, n ? "closed by server" : "tls read: " + reason(n.error()));
      co_return;
    }
    const Clock::time_point now = Clock::now();
    const int done = flight.received(plan, st, std::span(buf).first(*n), now);
    if (done < 0) co_return;
    if (now >= plan.end || done == 0) continue;
    if (!co_await s->write_all(flight.queue(static_cast<std::uint64_t>(done), now), Clock::now() + 5s)) {
      count_error(st, plan, "tls write");
      co_return;
    }
  }
  st.non_2xx += flight.ex.non_2xx();
  (void)co_await s->shutdown(Clock::now() + 1s);
}

task<void> connection(const Plan& plan, unsigned id, Stats& st) {
  const Flags& f = *plan.flags;
  auto conn = co_await net::TcpStream::connect(plan.target, 3s, {.nodelay = true});
  if (!conn) {
    count_error(st, plan, "connect: " + reason(conn.error()));
    co_return;
  }
  if (plan.tls != nullptr) {
    co_await tls_connection(plan, std::move(*conn), st);
    co_return;
  }
  InFlight flight(plan);
  net::RecvStream rx(*conn);
  const bool paced = f.rate > 0;
  Pacing pace;
  if (paced) {
    pace.interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f.conns / f.rate));
    // Staggered across one interval, so that the connections' sends do not arrive in bursts.
    pace.first = plan.start + pace.interval * id / f.conns;
    spawn(paced_sender(plan, *conn, flight.ex, flight.sent_at, pace, st));
  } else if (auto w = co_await conn->write_all(flight.queue(f.pipeline, Clock::now()), Clock::now() + 5s); !w) {
    count_error(st, plan, "write: " + reason(w.error()));
    co_return;
  }
  for (;;) {
    if (flight.sent_at.empty() && (Clock::now() >= plan.end)) break;
    // Until the end, wake up at the end (a paced connection may have nothing in flight); then drain.
    const bool before_end = Clock::now() < plan.end;
    auto chunk = co_await rx.next(before_end ? plan.end : plan.end + 2s);
    if (!chunk) {
      if (before_end && chunk.error().code == ETIMEDOUT) continue;
      count_error(st, plan, (chunk.error().code == ETIMEDOUT ? "read timeout" : "read: " + reason(chunk.error())));
      break;
    }
    if (chunk->empty()) {
      count_error(st, plan, "closed by server");
      break;
    }
    const Clock::time_point now = Clock::now();
    const int done = flight.received(plan, st, chunk->bytes(), now);
    chunk->release();
    if (done < 0) break;
    if (paced || now >= plan.end || done == 0) continue;
    if (auto w = co_await conn->write_all(flight.queue(static_cast<std::uint64_t>(done), now), Clock::now() + 5s); !w) {
      count_error(st, plan, "write: " + reason(w.error()));
      break;
    }
  }
  st.non_2xx += flight.ex.non_2xx();
  pace.stop = true;
  while (paced && !pace.done) co_await sleep_for(1ms);  // the sender uses this frame's stream and queue
}

// --client: GETs one after another through the reactor's http::Client, each body read whole.
task<void> client_worker(const Plan& plan, http::Client& client, const std::string& url, Stats& st) {
  while (Clock::now() < plan.end) {
    const Clock::time_point sent = Clock::now();
    auto res = co_await client.send({.url = url, .deadline = sent + 5s});
    auto body = res ? co_await res->text() : net::Result<std::string>(res.error());
    if (!body) {
      count_error(st, plan, "client: " + reason(body.error()));
      co_await sleep_for(1ms);  // a refusing target is not spun on
      continue;
    }
    const Clock::time_point now = Clock::now();
    if (res->status() < 200 || res->status() > 299) ++st.non_2xx;
    if (sent >= plan.measured && now < plan.end) {
      st.latency.record(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent).count()));
      ++st.requests;
      st.bytes += body->size();
    }
    plan.progress->requests.fetch_add(1, std::memory_order_relaxed);
  }
}

// Runs this reactor's share of the connections (ids id, id + reactors, ...) to the end.
task<void> reactor_share(const Plan& plan, unsigned first, Stats& st) {
  if (plan.flags->client) {
    const Flags& f = *plan.flags;
    const std::size_t mine = (f.conns - first + f.reactors - 1) / f.reactors;
    http::Client client({.max_idle_per_host = mine, .max_conns_per_host = mine, .tls = plan.tls});
    const std::string url = std::string(plan.tls ? "https://" : "http://") + f.target + f.path;
    unsigned running = 0;
    auto one = [](const Plan& p, http::Client& c, const std::string& u, Stats& s, unsigned& running) -> task<void> {
      co_await client_worker(p, c, u, s);
      --running;
    };
    for (std::size_t i = 0; i < mine; ++i, ++running) spawn(one(plan, client, url, st, running));
    while (running > 0) co_await sleep_for(5ms);  // NOLINT(bugprone-infinite-loop): the tasks decrement it
    co_return;
  }
  unsigned running = 0;
  auto one = [](const Plan& p, unsigned id, Stats& s, unsigned& running) -> task<void> {
    co_await connection(p, id, s);
    --running;
  };
  for (unsigned id = first; id < plan.flags->conns; id += plan.flags->reactors) {
    ++running;
    spawn(one(plan, id, st, running));
  }
  while (running > 0) co_await sleep_for(5ms);  // NOLINT(bugprone-infinite-loop): the tasks decrement it
}

std::string us(std::uint64_t ns) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", static_cast<double>(ns) / 1000.0);
  return b;
}

int report(const Flags& f, const Stats& all, double seconds) {
  const double rps = static_cast<double>(all.requests) / seconds;
  const double mbps = static_cast<double>(all.bytes) / seconds / 1e6;
  std::uint64_t errors = 0;
  for (const auto& [k, n] : all.errors) errors += n;
  const auto& h = all.latency;
  if (f.json) {
    std::printf("{\"mode\":\"%s\",\"target\":\"%s\",\"conns\":%u,\"size\":%zu,\"pipeline\":%u,\"rate\":%.0f,"
                "\"seconds\":%.3f,\"requests\":%" PRIu64 ",\"requests_per_s\":%.1f,\"mb_per_s\":%.3f,"
                "\"latency_us\":{\"p50\":%s,\"p90\":%s,\"p99\":%s,\"p999\":%s,\"max\":%s},\"non_2xx\":%" PRIu64
                ",\"errors\":{",
                f.mode == Mode::echo ? "echo" : f.mode == Mode::frame ? "frame" : "http", f.target.c_str(), f.conns,
                f.size, f.pipeline, f.rate, seconds, all.requests, rps, mbps, us(h.quantile(0.5)).c_str(),
                us(h.quantile(0.9)).c_str(), us(h.quantile(0.99)).c_str(), us(h.quantile(0.999)).c_str(),
                us(h.max()).c_str(), all.non_2xx);
    bool first = true;
    for (const auto& [k, n] : all.errors) {
      std::string key;
      for (char c : k) key += (c == '"' || c == '\\') ? '\'' : c;
      std::printf("%s\"%s\":%" PRIu64, first ? "" : ",", key.c_str(), n);
      first = false;
    }
    std::printf("},\"verified\":%s}\n", all.verify_failed ? "false" : "true");
  } else {
    std::printf("%" PRIu64 " requests in %.2f s: %.0f req/s, %.2f MB/s received\n", all.requests, seconds, rps, mbps);
    std::printf("latency (us)  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", us(h.quantile(0.5)).c_str(),
                us(h.quantile(0.9)).c_str(), us(h.quantile(0.99)).c_str(), us(h.quantile(0.999)).c_str(),
                us(h.max()).c_str());
    if (all.non_2xx > 0) std::printf("non-2xx responses: %" PRIu64 "\n", all.non_2xx);
    std::printf("errors: %" PRIu64 "\n", errors);
    for (const auto& [k, n] : all.errors) std::printf("  %-40s %" PRIu64 "\n", k.c_str(), n);
  }
  return (all.requests == 0 || all.verify_failed) ? 1 : 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: corio-load [--target ADDR] [--mode echo|frame|http] [--conns N] [--size BYTES]\n"
               "                  [--duration S] [--warmup S] [--pipeline N] [--rate REQ_PER_S] [--reactors N]\n"
               "                  [--path /P] [--backend uring|epoll] [--disable FEATURE,...] [--enable FEATURE,...]\n"
               "                  [--json]\n"
               "                  [--tls [--tls-ca FILE] [--tls-name NAME] [--alpn P1,P2]]\n"
               "                  [--client [--resolver HOST:PORT]]   (http mode through http::Client; --target may be a name)\n");
  return 2;
}

// A whole-text decimal number in [0, max].
bool parse_real(const char* text, double max, double& out) {
  char* end = nullptr;
  double v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(v >= 0) || v > max) return false;
  out = v;
  return true;
}

}  // namespace
}  // namespace corio::tools

int main(int argc, char** argv) {
  using namespace corio;
  using namespace corio::tools;
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--json" || flag == "--tls" || flag == "--client") {
      (flag == "--json" ? f.json : flag == "--tls" ? f.tls : f.client) = true;
      continue;
    }
    if (i + 1 >= argc) return usage();
    const char* v = argv[++i];
    unsigned long n = 0;
    bool ok = true;
    if (flag == "--target") f.target = v;
    else if (flag == "--mode") {
      std::string m = v;
      ok = m == "echo" || m == "frame" || m == "http";
      f.mode = m == "frame" ? Mode::frame : m == "http" ? Mode::http : Mode::echo;
    } else if (flag == "--conns") ok = examples::parse_number(v, 100'000, n) && n > 0, f.conns = static_cast<unsigned>(n);
    else if (flag == "--size") ok = examples::parse_number(v, 64ul << 20, n) && n > 0, f.size = n;
    else if (flag == "--duration") ok = parse_real(v, 86400, f.duration) && f.duration > 0;
    else if (flag == "--warmup") ok = parse_real(v, 86400, f.warmup);
    else if (flag == "--pipeline") ok = examples::parse_number(v, 4096, n) && n > 0, f.pipeline = static_cast<unsigned>(n);
    else if (flag == "--rate") ok = parse_real(v, 1e9, f.rate) && f.rate > 0;
    else if (flag == "--reactors") ok = examples::parse_number(v, 1024, n) && n > 0, f.reactors = static_cast<unsigned>(n);
    else if (flag == "--path") ok = v[0] == '/', f.path = v;
    else if (flag == "--backend") ok = examples::parse_backend(v, f.backend.kind);
    else if (flag == "--disable") ok = examples::parse_disable(v, f.backend);
    else if (flag == "--enable") ok = examples::parse_enable(v, f.backend);
    else if (flag == "--tls-ca") f.tls_ca = v;
    else if (flag == "--tls-name") f.tls_name = v;
    else if (flag == "--alpn") f.alpn = v;
    else if (flag == "--resolver") f.resolver = v;
    else return usage();
    if (!ok) {
      std::fprintf(stderr, "corio-load: %s: not a valid value: \"%s\"\n", flag.c_str(), v);
      return 2;
    }
  }
  if (f.client && (f.mode != Mode::http || f.rate > 0 || f.pipeline != 1)) {
    std::fprintf(stderr, "corio-load: --client is http mode, closed loop, one request at a time\n");
    return 2;
  }
  if (!f.resolver.empty() && !f.client) {
    std::fprintf(stderr, "corio-load: --resolver goes with --client\n");
    return 2;
  }
  // --client dials names through the resolver; otherwise the target is an address.
  net::Result<net::Address> target = net::Address();
  if (!f.client) target = net::Address::parse(f.target);
  else if (auto hp = net::split_host_port(f.target); !hp) target = hp.error();
  if (!target) {
    std::fprintf(stderr, "corio-load: --target: %s\n", target.error().message().c_str());
    return 2;
  }
  if (!f.resolver.empty()) net::Resolver::set_defaults({.servers = {f.resolver}, .search = false});
  if (f.tls && f.rate > 0) {
    std::fprintf(stderr, "corio-load: --rate with --tls is not supported (closed loop only)\n");
    return 2;
  }
  std::optional<tls::Context> tls_ctx;
  if (f.tls) {
    auto c = tls::Context::client(
        {.ca_file = f.tls_ca, .verify_peer = !f.tls_ca.empty(), .alpn = examples::split_list(f.alpn)});
    if (!c) {
      std::fprintf(stderr, "corio-load: %s\n", c.error().message().c_str());
      return 2;
    }
    tls_ctx.emplace(std::move(*c));
    if (!f.json) {
      std::fprintf(stderr, "corio-load: kernel TLS %s\n",
                   tls_ctx->kernel_tls() ? "on" : ("off (" + tls_ctx->kernel_tls_note() + ")").c_str());
    }
  }
  f.reactors = std::min(f.reactors, f.conns);
  Progress progress;
  std::vector<Stats> stats(f.reactors);
  Plan plan{.flags = &f, .tls = tls_ctx ? &*tls_ctx : nullptr, .target = *target, .progress = &progress};
  plan.pattern.resize(f.size + 256);
  for (std::size_t i = 0; i < plan.pattern.size(); ++i) plan.pattern[i] = static_cast<char>(i & 0xff);
  try {
    Runtime rt({.reactors = f.reactors, .backend = f.backend});
    plan.start = Clock::now();
    plan.measured = plan.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f.warmup));
    plan.end = plan.measured + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f.duration));
    const bool live = ::isatty(STDERR_FILENO) != 0 && !f.json;
    rt.run([&]() -> task<void> {
      unsigned pending = f.reactors;
      auto drive = [](const Plan& p, unsigned r, Stats& st, unsigned& pending) -> task<void> {
        co_await submit_to(r, reactor_share(p, r, st));
        --pending;
      };
      for (unsigned r = 0; r < f.reactors; ++r) spawn(drive(plan, r, stats[r], pending));
      std::uint64_t last = 0;
      Clock::time_point tick = Clock::now();
      while (pending > 0) {  // NOLINT(bugprone-infinite-loop): drive() decrements it
        co_await sleep_for(live ? 1s : 20ms);
        if (!live) continue;
        const std::uint64_t now_requests = progress.requests.load(std::memory_order_relaxed);
        const double dt = std::chrono::duration<double>(Clock::now() - tick).count();
        tick = Clock::now();
        std::fprintf(stderr, "\r%8.0f req/s  errors %" PRIu64 "   ", static_cast<double>(now_requests - last) / dt,
                     progress.errors.load(std::memory_order_relaxed));
        last = now_requests;
      }
      if (live) std::fprintf(stderr, "\n");
    }());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "corio-load: %s\n", e.what());
    return 1;
  }
  Stats all;
  for (Stats& s : stats) {
    all.latency.merge(s.latency);
    all.requests += s.requests;
    all.bytes += s.bytes;
    all.non_2xx += s.non_2xx;
    all.verify_failed = all.verify_failed || s.verify_failed;
    for (auto& [k, n] : s.errors) all.errors[k] += n;
  }
  return report(f, all, f.duration);
}
