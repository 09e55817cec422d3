// Torture: many loopback TCP connections on two reactors, with a seeded PRNG choosing, at random points,
// every way an operation can end early: short deadlines, stop tokens that another task stops, with_timeout,
// close() from another task while a write_all is in flight, shutdown_write, readers that close early, and
// stops that cross reactors through submit_to. It proves that
// - every byte write_all reports sent (the whole chunk, or `transferred` of a failed call) reaches a
//   reader that reads to end of stream, once and in order, and nothing more does;
// - a read that times out or is cancelled loses nothing (the reader goes on and still sees every byte);
// - every write_all ends by its deadline, or soon after its stop or a close() of its stream;
// - afterwards no operation is in flight on either reactor, no receive buffer is lent, no descriptor is open.
// Run it longer, or with another seed (timing differs between runs: a seed fixes the choices, not the
// interleaving; the seed and the totals are printed at the end):
//   CORIO_TORTURE_SECONDS=60 CORIO_TORTURE_SEED=7 CORIO_BACKEND=epoll build/release/tests/torture_tests
// Defaults: seed 12, 2 seconds (CI runs it on both backends); CORIO_TORTURE_SECONDS=60 is the long run.
// CORIO_TORTURE_TRACE=<connection id> prints every read and write of one connection (ids are in the report).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "corio/net/recv_stream.hpp"
#include "corio/net/socket_options.hpp"
#include "corio/net/tcp_listener.hpp"
#include "corio/net/tcp_stream.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"
#include "tests/fd_count.hpp"

namespace corio::net {
namespace {

using namespace std::chrono_literals;

constexpr unsigned kReactors = 2;
constexpr unsigned kWorkersPerReactor = 32;       // connections open at once, per reactor
constexpr int kMaxConnectionsPerWorker = 100'000;  // the count bound; the time budget ends it first
constexpr int kMaxChunksPerConnection = 96;
constexpr std::size_t kMaxChunk = 256 * 1024;
constexpr std::size_t kMaxRead = 64 * 1024;
constexpr auto kPlainDeadline = 5s;  // a write or read nobody cuts short: generous, only so nothing hangs
constexpr auto kStallLimit = 10s;    // a reader that gets no byte and no end of stream this long: lost data
// A write_all must end by its deadline, or soon after a stop or a close() of its stream: this late is a hang.
constexpr auto kLateLimit = 1s;

struct Config {
  std::uint64_t seed = 12;
  double seconds = 2.0;
  std::string backend;  // CORIO_BACKEND as given, for the report
};

Config config_from_env() {
  Config c;
  if (const char* s = std::getenv("CORIO_TORTURE_SEED"); s != nullptr && *s != '\0') c.seed = std::strtoull(s, nullptr, 0);
  if (const char* s = std::getenv("CORIO_TORTURE_SECONDS"); s != nullptr && *s != '\0') c.seconds = std::strtod(s, nullptr);
  if (!(c.seconds > 0)) c.seconds = 2.0;
  if (const char* s = std::getenv("CORIO_BACKEND"); s != nullptr) c.backend = s;
  return c;
}

// ---- The stream's pattern ------------------------------------------------------------------------------

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Byte i of connection `id`'s stream is a byte of a hash of (id, i / 8): unlike a pattern with a short
// period, a stream that lost or repeated a block of any size (4 KiB, 64 KiB...) no longer matches.
class Pattern {
 public:
  explicit Pattern(std::uint32_t id) : key_(std::uint64_t{id} << 44) {}
  char at(std::uint64_t i) {
    if ((i >> 3) != word_index_) {
      word_index_ = i >> 3;
      word_ = mix(word_index_ ^ key_);
    }
    return static_cast<char>(word_ >> ((i & 7) * 8));
  }
  void fill(std::span<char> out, std::uint64_t offset) {
    for (std::size_t k = 0; k < out.size(); ++k) out[k] = at(offset + k);
  }

 private:
  std::uint64_t key_;
  std::uint64_t word_index_ = ~std::uint64_t{0};
  std::uint64_t word_ = 0;
};

// ---- Random choices ------------------------------------------------------------------------------------

struct Rng {
  explicit Rng(std::uint64_t seed) : g(seed) {}
  std::uint64_t below(std::uint64_t n) { return n <= 1 ? 0 : std::uniform_int_distribution<std::uint64_t>(0, n - 1)(g); }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(g) < p; }
  // 1..max, log-uniform: as many tiny sizes as large ones.
  std::size_t size_up_to(std::size_t max) {
    unsigned bits = 0;
    while ((std::size_t{1} << bits) < max) ++bits;
    std::size_t top = std::min<std::size_t>(max, std::size_t{1} << below(bits + 1));
    return 1 + below(top);
  }
  Clock::duration micros(std::uint64_t lo, std::uint64_t hi) { return std::chrono::microseconds(lo + below(hi - lo + 1)); }
  std::mt19937_64 g;
};

// ---- What happened, counted ----------------------------------------------------------------------------

struct Counters {
  std::uint64_t connections = 0, exact = 0, reader_closed_early = 0, cut_short = 0, writer_stopped = 0;
  std::uint64_t home_remote = 0, writer_elsewhere = 0, recv_stream_readers = 0;
  std::uint64_t bytes_sent = 0, bytes_received = 0;
  std::uint64_t writes = 0, writes_ok = 0, write_timeouts = 0, write_cancels = 0, write_resets = 0;
  std::uint64_t write_partial = 0, closes_mid_write = 0, shutdowns = 0, plain_write_timeouts = 0;
  std::uint64_t reads = 0, read_timeouts = 0, read_cancels = 0;
  std::uint64_t hops = 0, hops_stopped = 0;
  std::uint64_t mismatches = 0;
  std::uint64_t late_writes = 0, max_write_lateness_us = 0;  // past deadline / stop / close (the max, not a sum)

  void add(const Counters& o) {
    connections += o.connections, exact += o.exact, reader_closed_early += o.reader_closed_early;
    cut_short += o.cut_short, writer_stopped += o.writer_stopped, home_remote += o.home_remote;
    writer_elsewhere += o.writer_elsewhere, recv_stream_readers += o.recv_stream_readers;
    bytes_sent += o.bytes_sent, bytes_received += o.bytes_received;
    writes += o.writes, writes_ok += o.writes_ok, write_timeouts += o.write_timeouts;
    write_cancels += o.write_cancels, write_resets += o.write_resets, write_partial += o.write_partial;
    closes_mid_write += o.closes_mid_write, shutdowns += o.shutdowns, plain_write_timeouts += o.plain_write_timeouts;
    reads += o.reads, read_timeouts += o.read_timeouts, read_cancels += o.read_cancels;
    hops += o.hops, hops_stopped += o.hops_stopped, mismatches += o.mismatches;
    late_writes += o.late_writes, max_write_lateness_us = std::max(max_write_lateness_us, o.max_write_lateness_us);
  }
};

// Things that must never happen, in words (connection id first).
using Problems = std::vector<std::string>;

void note(Problems& p, std::uint32_t id, const std::string& what) {
  if (p.size() < 50) p.push_back("connection " + std::to_string(id) + ": " + what);
}

// Progress, readable from the watchdog thread.
std::atomic<std::uint64_t> g_started{0};
std::atomic<std::uint64_t> g_finished{0};

// CORIO_TORTURE_TRACE=<connection id>: every operation of that connection on stderr, to look into one.
std::uint32_t traced_connection() {
  static const std::uint32_t id = [] {
    const char* s = std::getenv("CORIO_TORTURE_TRACE");
    return s != nullptr && *s != '\0' ? static_cast<std::uint32_t>(std::strtoul(s, nullptr, 0)) : ~0u;
  }();
  return id;
}

void trace(std::uint32_t id, const char* side, const char* what, long long size, const Result<void>& r, std::size_t n = 0) {
  if (id != traced_connection()) return;
  static const Clock::time_point t0 = Clock::now();
  std::fprintf(stderr, "trace %u %8.3f ms r%u %s %s %lld: %s %zu\n", id, std::chrono::duration<double, std::milli>(Clock::now() - t0).count(),
               Reactor::current()->id(), side, what, size, r ? "ok" : r.error().message().c_str(), r ? n : r.error().transferred);
}

// ---- Helper tasks --------------------------------------------------------------------------------------

// Joins the helper tasks (stoppers, closers, a writer) that a task spawns on its own reactor: join()
// resumes once the last of them has ended, so that what they reference outlives them.
class Group {
 public:
  Group() = default;
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;
  ~Group() = default;

  // Runs `t` detached on this reactor; with `token`, as its ambient stop token.
  void spawn(task<void> t, std::stop_token token = {}) {
    ++live_;
    task<void> tracked = run(this, std::move(t));
    if (token.stop_possible()) tracked.set_stop_token(std::move(token));
    corio::spawn(std::move(tracked));
  }

  struct Join {
    Group* g;
    bool await_ready() const noexcept { return g->live_ == 0; }
    void await_suspend(std::coroutine_handle<> h) noexcept { g->waiter_ = h; }
    void await_resume() const noexcept {}
  };
  Join join() noexcept { return Join{this}; }

  std::vector<std::string> errors;  // exceptions that escaped a helper

 private:
  static task<void> run(Group* g, task<void> t) {
    try {
      co_await std::move(t);
    } catch (const std::exception& e) {
      g->errors.emplace_back(e.what());
    }
    if (--g->live_ == 0 && g->waiter_) Reactor::current()->schedule(std::exchange(g->waiter_, {}));
  }
  int live_ = 0;
  std::coroutine_handle<> waiter_;
};

task<void> stop_later(std::stop_source source, Clock::duration after) {
  co_await sleep_for(after);
  source.request_stop();
}

// Closes `conn` from another task, while its owner is (probably) inside a write_all.
task<void> close_later(TcpStream& conn, Clock::duration after) {
  co_await sleep_for(after);
  conn.close();
}

task<unsigned> nap_on_reactor(Clock::duration nap) {
  co_await sleep_for(nap);  // ends early, with ECANCELED, when a stop crosses over
  co_return Reactor::current()->id();
}

task<void> hop_into(unsigned to, Clock::duration nap, unsigned* where) {
  unsigned w = co_await submit_to(to, nap_on_reactor(nap));
  *where = w;
}

// A cross-reactor call at a random point: a plain function, a task, or a task under a short with_timeout
// (the stop crosses to the other reactor and wakes its sleep). It must come back from where it went.
task<void> random_hop(Rng& rng, Counters& c, Problems& p, std::uint32_t id) {
  const unsigned here = Reactor::current()->id();
  const unsigned there = (here + 1) % kReactors;
  unsigned where = kReactors;
  const auto kind = rng.below(3);
  if (kind == 0) {
    where = co_await submit_to(there, [] { return Reactor::current()->id(); });
  } else if (kind == 1) {
    where = co_await submit_to(there, nap_on_reactor(rng.micros(0, 300)));
  } else {
    bool in_time = co_await with_timeout(rng.micros(0, 200), hop_into(there, rng.micros(0, 2000), &where));
    if (!in_time) ++c.hops_stopped;
  }
  ++c.hops;
  if (where != there) note(p, id, "submit_to(" + std::to_string(there) + ") ran on reactor " + std::to_string(where));
  if (Reactor::current()->id() != here) note(p, id, "submit_to came back on another reactor");
}

// ---- The writer ----------------------------------------------------------------------------------------

struct WriterPlan {
  std::uint32_t id = 0;
  std::uint64_t seed = 0;
  std::uint64_t byte_budget = 0;
  int chunks = 0;
  Clock::time_point until;
  double close_mid_write = 0;  // chance, per chunk, of arming a closer (at most one per connection)
};

struct WriterOutcome {
  std::uint64_t reported_sent = 0;
  bool peer_gone = false;  // EPIPE / ECONNRESET
  bool stopped = false;    // its ambient token (a with_timeout around the connection) stopped it
  std::string shutdown_error;  // fine only if the reader closed early (the socket was reset)
  Counters c;
  Problems problems;
};

task<void> write_into(const TcpStream& conn, std::span<const char> bytes, Clock::time_point deadline, Result<void>* out) {
  Result<void> r = co_await conn.write_all(bytes, deadline);
  *out = std::move(r);
}

// Writes the connection's pattern in chunks of random size, each write_all plain or cut short at random.
// `reported_sent` follows what the calls report, and the next chunk goes on from there.
task<WriterOutcome> write_side(TcpStream& conn, WriterPlan plan) {
  WriterOutcome out;
  Rng rng(plan.seed);
  Pattern pattern(plan.id);
  std::stop_token ambient = co_await current_stop_token();
  // When the ambient stop came (it may be requested on another reactor's thread).
  std::atomic<Clock::rep> stopped_at{Clock::time_point::max().time_since_epoch().count()};
  auto record_stop = [&stopped_at]() noexcept { stopped_at = Clock::now().time_since_epoch().count(); };
  std::stop_callback<decltype(record_stop)> on_stop(ambient, record_stop);
  Group helpers;
  std::vector<char> chunk(kMaxChunk);
  bool closer_armed = false;
  Clock::time_point closer_at = Clock::time_point::max();
  for (int n = 0; n < plan.chunks && out.reported_sent < plan.byte_budget && Clock::now() < plan.until; ++n) {
    if (ambient.stop_requested()) break;
    if (!conn.is_open()) break;  // a closer closed it between two writes
    const std::size_t size = rng.size_up_to(kMaxChunk);
    std::span<char> bytes = std::span(chunk).first(size);
    pattern.fill(bytes, out.reported_sent);
    if (!closer_armed && rng.chance(plan.close_mid_write)) {
      closer_armed = true;
      const Clock::duration delay = rng.micros(0, 1500);
      closer_at = Clock::now() + delay;
      helpers.spawn(close_later(conn, delay));
    }
    Result<void> r;
    const auto mode = rng.below(10);
    bool plain = false;
    bool ambient_applies = true;  // false under an explicit stop token
    const Clock::time_point began = Clock::now();
    Clock::time_point bound;  // when it should have ended at the latest: its deadline, or its stop
    if (mode < 5) {
      plain = true;
      bound = began + kPlainDeadline;
      r = co_await conn.write_all(bytes, bound);
    } else if (mode < 7) {
      bound = began + rng.micros(0, 3000);
      r = co_await conn.write_all(bytes, bound);
    } else if (mode < 9) {
      std::stop_source stop;
      ambient_applies = false;
      if (rng.chance(0.1)) {
        stop.request_stop();  // stopped before it starts: nothing is sent
        bound = began;
      } else {
        const Clock::duration delay = rng.micros(0, 2000);
        bound = began + delay;
        helpers.spawn(stop_later(stop, delay));
      }
      r = co_await conn.write_all(bytes, began + kPlainDeadline).stop_token(stop.get_token());
    } else {
      const Clock::duration limit = rng.micros(0, 3000);
      bound = began + limit;
      (void)co_await with_timeout(limit, write_into(conn, bytes, began + kPlainDeadline, &r));
    }
    const Clock::time_point ended = Clock::now();
    if (closer_at > began) bound = std::min(bound, closer_at);
    if (ambient_applies) bound = std::min(bound, Clock::time_point(Clock::duration(stopped_at.load())));
    if (ended > bound + kLateLimit) {
      const auto late = std::chrono::duration_cast<std::chrono::microseconds>(ended - bound);
      ++out.c.late_writes;
      out.c.max_write_lateness_us = std::max<std::uint64_t>(out.c.max_write_lateness_us, static_cast<std::uint64_t>(late.count()));
      note(out.problems, plan.id, "write_all of " + std::to_string(size) + " bytes ended " + std::to_string(late.count() / 1000) +
                                      " ms after its deadline, stop or close (" + (r ? std::string("ok") : r.error().message()) +
                                      (size >= Reactor::current()->backend().features().send_zc_threshold &&
                                               Reactor::current()->backend().features().send_zc
                                           ? "; a zero-copy send waits for its notification"
                                           : "") +
                                      ")");
    }
    ++out.c.writes;
    trace(plan.id, "write", plain ? "plain" : "cut", static_cast<long long>(size), r, size);
    if (r) {
      ++out.c.writes_ok;
      out.reported_sent += size;
    } else {
      const Error& e = r.error();
      if (e.transferred > size) {
        note(out.problems, plan.id, "write_all of " + std::to_string(size) + " bytes reports " + std::to_string(e.transferred) + " transferred");
      }
      out.reported_sent += std::min(e.transferred, size);
      if (e.transferred > 0) ++out.c.write_partial;
      if (e.code == ETIMEDOUT) {
        ++out.c.write_timeouts;
        if (plain) ++out.c.plain_write_timeouts;
      } else if (e.code == ECANCELED) {
        ++out.c.write_cancels;
        if (!conn.is_open()) {
          ++out.c.closes_mid_write;
          break;
        }
        if (plain && !ambient.stop_requested()) note(out.problems, plan.id, "a write nobody stopped was cancelled: " + e.message());
      } else if (e.code == EPIPE || e.code == ECONNRESET) {
        ++out.c.write_resets;
        out.peer_gone = true;
        break;
      } else {
        note(out.problems, plan.id, "write_all failed: " + e.message());
        break;
      }
    }
    if (rng.chance(0.04)) co_await random_hop(rng, out.c, out.problems, plan.id);
    if (rng.chance(0.05)) co_await sleep_for(rng.micros(0, 500));
  }
  out.stopped = ambient.stop_requested();
  if (conn.is_open()) {
    if (rng.chance(0.4)) {
      auto s = conn.shutdown_write();
      ++out.c.shutdowns;
      if (!s) out.shutdown_error = s.error().message();
      if (rng.chance(0.5)) co_await sleep_for(rng.micros(0, 1000));
    }
    conn.close();
  }
  co_await helpers.join();
  for (const auto& e : helpers.errors) note(out.problems, plan.id, "writer helper threw: " + e);
  co_return out;
}

// The writer on another reactor: the stream (connected, never used here) moves there with it.
task<WriterOutcome> write_side_owned(TcpStream conn, WriterPlan plan) {
  WriterOutcome out = co_await write_side(conn, plan);
  co_return out;
}

task<void> write_here(TcpStream& conn, WriterPlan plan, WriterOutcome* out) {
  WriterOutcome o = co_await write_side(conn, plan);
  *out = std::move(o);
}

task<void> write_there(unsigned reactor, TcpStream conn, WriterPlan plan, WriterOutcome* out) {
  WriterOutcome o = co_await submit_to(reactor, write_side_owned(std::move(conn), plan));
  *out = std::move(o);
}

// ---- The reader ----------------------------------------------------------------------------------------

struct ReaderPlan {
  std::uint32_t id = 0;
  std::uint64_t seed = 0;
  bool recv_stream = false;
  bool close_early = false;
  std::uint64_t close_after = 0;  // bytes
  double pause = 0;               // chance of a pause after each read: a slow reader makes writes wait
  Clock::time_point until;        // no pauses after this: the last bytes are read at full speed
};

struct ReaderOutcome {
  std::uint64_t received = 0;
  bool eof = false;
  bool closed_early = false;
  std::int64_t first_mismatch = -1;
  Counters c;
  Problems problems;
};

// Checks bytes against the pattern at the reader's offset, then counts them.
void verify(ReaderOutcome& o, Pattern& pattern, std::uint32_t id, std::span<const char> bytes) {
  for (std::size_t k = 0; k < bytes.size(); ++k) {
    const char want = pattern.at(o.received + k);
    if (bytes[k] == want) continue;
    if (o.c.mismatches++ == 0) {
      o.first_mismatch = static_cast<std::int64_t>(o.received + k);
      char what[128];
      std::snprintf(what, sizeof what, "byte %llu is 0x%02x, the pattern says 0x%02x",
                    static_cast<unsigned long long>(o.received + k), static_cast<unsigned char>(bytes[k]),
                    static_cast<unsigned char>(want));
      note(o.problems, id, what);
    }
  }
  o.received += bytes.size();
  o.c.bytes_received += bytes.size();
}

task<void> read_into(const TcpStream& conn, std::span<char> buf, Clock::time_point deadline, Result<std::size_t>* out) {
  Result<std::size_t> r = co_await conn.read_some(buf).deadline(deadline);
  *out = std::move(r);
}

task<void> next_into(RecvStream& rx, Clock::time_point deadline, Result<RecvBuffer>* out) {
  Result<RecvBuffer> r = co_await rx.next(deadline);
  *out = std::move(r);
}

// A read that failed: a timeout or a cancel is counted and reading goes on (true); anything else is a
// problem and ends the reader.
bool read_failure_goes_on(ReaderOutcome& o, const ReaderPlan& plan, const Error& e, const char* what) {
  if (e.code == ETIMEDOUT) {
    ++o.c.read_timeouts;
    return true;
  }
  if (e.code == ECANCELED) {
    ++o.c.read_cancels;
    return true;
  }
  note(o.problems, plan.id, std::string(what) + " failed: " + e.message());
  return false;
}

// Reads until end of stream with read_some: random sizes, random short timeouts, stops and with_timeouts,
// all of which must lose nothing.
task<void> read_with_read_some(TcpStream& conn, const ReaderPlan& plan, Rng& rng, Group& helpers, ReaderOutcome& o) {
  Pattern pattern(plan.id);
  std::vector<char> buf(kMaxRead);
  Clock::time_point progress = Clock::now();
  for (;;) {
    if (plan.close_early && o.received >= plan.close_after) {
      conn.close();
      o.closed_early = true;
      co_return;
    }
    if (Clock::now() - progress > kStallLimit) {
      note(o.problems, plan.id, "read_some: neither a byte nor end of stream for 10 s, after " + std::to_string(o.received) + " bytes");
      co_return;
    }
    std::span<char> into = std::span(buf).first(rng.size_up_to(kMaxRead));
    Result<std::size_t> r = Error{};
    const auto mode = rng.below(10);
    if (mode < 6) {
      r = co_await conn.read_some(into).timeout(1s);
    } else if (mode < 8) {
      r = co_await conn.read_some(into).timeout(rng.micros(0, 2000));
    } else if (mode < 9) {
      std::stop_source stop;
      helpers.spawn(stop_later(stop, rng.micros(0, 1500)));
      r = co_await conn.read_some(into).timeout(1s).stop_token(stop.get_token());
    } else {
      (void)co_await with_timeout(rng.micros(0, 2000), read_into(conn, into, Clock::now() + 1s, &r));
    }
    ++o.c.reads;
    trace(plan.id, "read_some", mode < 6 ? "plain" : "cut", static_cast<long long>(into.size()), r ? Result<void>() : Result<void>(r.error()), r ? *r : 0);
    if (r) {
      if (*r == 0) {
        o.eof = true;
        co_return;
      }
      if (*r > into.size()) {
        note(o.problems, plan.id, "read_some returned more than its buffer");
        co_return;
      }
      verify(o, pattern, plan.id, into.first(*r));
      progress = Clock::now();
    } else if (!read_failure_goes_on(o, plan, r.error(), "read_some")) {
      co_return;
    }
    if (rng.chance(0.03)) co_await random_hop(rng, o.c, o.problems, plan.id);
    if (rng.chance(plan.pause) && Clock::now() < plan.until) co_await sleep_for(rng.micros(0, 2000));  // a slow reader: the writer fills the socket
  }
}

// Reads until end of stream with a RecvStream (pool buffers; multishot on io_uring), holding a buffer or
// two now and then, with random short deadlines and with_timeouts.
task<void> read_with_recv_stream(TcpStream& conn, const ReaderPlan& plan, Rng& rng, ReaderOutcome& o) {
  Pattern pattern(plan.id);
  RecvStream rx(conn);
  std::vector<RecvBuffer> held;
  Clock::time_point progress = Clock::now();
  for (;;) {
    if (plan.close_early && o.received >= plan.close_after) {
      held.clear();
      conn.close();
      o.closed_early = true;
      co_return;
    }
    if (Clock::now() - progress > kStallLimit) {
      note(o.problems, plan.id, "RecvStream: neither a byte nor end of stream for 10 s, after " + std::to_string(o.received) + " bytes");
      co_return;
    }
    Result<RecvBuffer> r = Error{};
    const auto mode = rng.below(10);
    if (mode < 6) {
      r = co_await rx.next(Clock::now() + 1s);
    } else if (mode < 8) {
      r = co_await rx.next(Clock::now() + rng.micros(0, 2000));
    } else {
      (void)co_await with_timeout(rng.micros(0, 2000), next_into(rx, Clock::now() + 1s, &r));
    }
    ++o.c.reads;
    trace(plan.id, "next", mode < 6 ? "plain" : "cut", 0, r ? Result<void>() : Result<void>(r.error()), r ? r->size() : 0);
    if (r) {
      if (r->empty()) {
        o.eof = true;
        co_return;
      }
      verify(o, pattern, plan.id, r->bytes());
      progress = Clock::now();
      if (held.size() < 2 && rng.chance(0.2)) held.push_back(std::move(*r));
    } else if (!read_failure_goes_on(o, plan, r.error(), "RecvStream::next")) {
      co_return;
    }
    if (rng.chance(0.03)) co_await random_hop(rng, o.c, o.problems, plan.id);
    if (rng.chance(plan.pause) && Clock::now() < plan.until) {
      co_await sleep_for(rng.micros(0, 2000));  // with buffers held: the stream pauses at kMaxQueued
      held.clear();
    }
  }
}

task<ReaderOutcome> read_side(TcpStream& conn, ReaderPlan plan) {
  ReaderOutcome o;
  Rng rng(plan.seed);
  Group helpers;
  if (plan.recv_stream) co_await read_with_recv_stream(conn, plan, rng, o);
  else co_await read_with_read_some(conn, plan, rng, helpers, o);
  co_await helpers.join();
  for (const auto& e : helpers.errors) note(o.problems, plan.id, "reader helper threw: " + e);
  co_return o;
}

// ---- One connection ------------------------------------------------------------------------------------

struct ConnSpec {
  std::uint32_t id = 0;
  std::uint64_t seed = 0;
  unsigned writer_reactor = 0;  // where the writing end runs (the reader runs where the connection does)
  Clock::time_point until;
};

struct ConnResult {
  Counters c;
  Problems problems;
  Clock::time_point ended;  // for the report: how long the last connections ran past the budget
  std::string summary;
};

// A loopback connection made on the current reactor: one end is read here until end of stream, the other
// written here or on the other reactor. A stop of this task (a with_timeout around it, perhaps on another
// reactor) reaches the writer only: the reader is shielded so that it can still read to the end and check
// that the stopped writes reported exactly what was sent.
task<ConnResult> run_connection(ConnSpec spec) {
  ConnResult res;
  ++g_started;
  Rng rng(spec.seed);
  const unsigned home = Reactor::current()->id();
  std::stop_source never;  // never stopped: shields the reader, the connect and the accept
  std::stop_token ambient = co_await current_stop_token();

  auto listener = TcpListener::bind(Address::loopback_v4(0));
  if (!listener) {
    note(res.problems, spec.id, listener.error().message());
    ++g_finished;
    co_return res;
  }
  // Small socket buffers on half the connections: writes wait for the reader, and end part-way when cut
  // short. The receiving side's is set before the handshake (the listener's is inherited), since shrinking
  // a window already advertised makes the kernel drop data and retransmit after timeouts.
  const bool client_writes = rng.chance(0.5);
  const bool small_buffers = rng.chance(0.5);
  const int send_buffer = static_cast<int>(4096 + rng.below(128 * 1024));
  const int receive_buffer = static_cast<int>(4096 + rng.below(128 * 1024));
  SocketOptions client_options;
  if (small_buffers && client_writes) client_options.send_buffer = send_buffer;
  if (small_buffers && !client_writes) client_options.receive_buffer = receive_buffer;
  if (small_buffers && client_writes) (void)set_receive_buffer(listener->fd(), receive_buffer);
  Result<TcpStream> client =
      co_await with_stop_token(never.get_token(), TcpStream::connect(listener->local_address(), 2s, client_options));
  Result<TcpStream> server = co_await listener->accept().timeout(2s).stop_token(never.get_token());
  listener->close();
  if (!client || !server) {
    note(res.problems, spec.id, "no loopback connection: " + (client ? server.error().message() : client.error().message()));
    ++g_finished;
    co_return res;
  }
  if (small_buffers && !client_writes) (void)set_send_buffer(server->fd(), send_buffer);
  TcpStream& writing = client_writes ? *client : *server;
  TcpStream& reading = client_writes ? *server : *client;

  WriterPlan wp;
  wp.id = spec.id;
  wp.seed = rng.g();
  wp.byte_budget = rng.size_up_to(std::size_t{8} << 20);
  wp.chunks = 1 + static_cast<int>(rng.below(kMaxChunksPerConnection));
  wp.until = spec.until;
  wp.close_mid_write = rng.chance(0.3) ? 0.5 : 0.0;
  ReaderPlan rp;
  rp.id = spec.id;
  rp.seed = rng.g();
  rp.recv_stream = rng.chance(0.4);
  rp.close_early = rng.chance(0.12);
  rp.close_after = rng.below(wp.byte_budget + 1);
  const double pauses[] = {0.0, 0.02, 0.1, 0.4};
  rp.pause = pauses[rng.below(4)];
  rp.until = spec.until;

  WriterOutcome w;
  Group writer;
  if (spec.writer_reactor == home) {
    writer.spawn(write_here(writing, wp, &w), ambient);
  } else {
    writer.spawn(write_there(spec.writer_reactor, std::move(writing), wp, &w), ambient);
  }
  ReaderOutcome r = co_await with_stop_token(never.get_token(), read_side(reading, rp));
  co_await writer.join();
  for (const auto& e : writer.errors) note(res.problems, spec.id, "writer threw: " + e);

  // The verdict.
  Counters& c = res.c;
  c.add(w.c);
  c.add(r.c);
  c.connections = 1;
  c.home_remote = home != 0;
  c.writer_elsewhere = spec.writer_reactor != home;
  c.recv_stream_readers = rp.recv_stream;
  c.writer_stopped = w.stopped;
  c.bytes_sent = w.reported_sent;
  res.problems.insert(res.problems.end(), w.problems.begin(), w.problems.end());
  res.problems.insert(res.problems.end(), r.problems.begin(), r.problems.end());
  const std::string where = " (home reactor " + std::to_string(home) + ", writer on " + std::to_string(spec.writer_reactor) +
                            (rp.recv_stream ? ", RecvStream" : ", read_some") + (w.stopped ? ", writer stopped" : "") + ")";
  if (r.eof) {
    ++c.exact;
    if (r.received != w.reported_sent) {
      note(res.problems, spec.id, "read " + std::to_string(r.received) + " bytes to end of stream, the writer reported " +
                                      std::to_string(w.reported_sent) + " sent" + where);
    }
  } else if (r.closed_early) {
    ++c.reader_closed_early;
    if (r.received > w.reported_sent) {
      note(res.problems, spec.id, "read " + std::to_string(r.received) + " bytes, more than the " + std::to_string(w.reported_sent) +
                                      " the writer reported sent" + where);
    }
  }
  if (w.peer_gone && !r.closed_early) note(res.problems, spec.id, "the writer saw the peer go, but the reader never closed" + where);
  if (!w.shutdown_error.empty() && !r.closed_early) note(res.problems, spec.id, "shutdown_write failed: " + w.shutdown_error + where);
  res.ended = Clock::now();
  res.summary = "connection " + std::to_string(spec.id) + where + ": " + std::to_string(r.received) + " bytes in " +
                std::to_string(r.c.reads) + " reads, " + std::to_string(w.c.writes) + " writes, small buffers " +
                (small_buffers ? "yes" : "no") + ", reader pauses " + std::to_string(rp.pause);
  ++g_finished;
  co_return res;
}

task<void> connection_into(ConnSpec spec, ConnResult* out) {
  ConnResult r = co_await run_connection(spec);
  *out = std::move(r);
}

task<void> remote_connection_into(unsigned reactor, ConnSpec spec, ConnResult* out) {
  ConnResult r = co_await submit_to(reactor, run_connection(spec));
  *out = std::move(r);
}

// ---- The driver ----------------------------------------------------------------------------------------

struct Shared {
  Clock::time_point end;
  std::uint64_t seed = 0;
  Counters totals;  // reactor 0 only
  Problems problems;
  Clock::time_point last_end;  // the connection that ended last, and what it was
  std::string last;
};

// One connection after another, until the time budget or the count runs out. Each runs on reactor
// `home` (from reactor 0 through submit_to when home is 1), and is sometimes cut short by a with_timeout
// here, whose stop then crosses to wherever its writer runs.
task<void> worker(unsigned index, unsigned home, Shared* shared) {
  Rng rng(mix(shared->seed ^ mix(index + 1)));
  for (int n = 0; n < kMaxConnectionsPerWorker && Clock::now() < shared->end; ++n) {
    ConnSpec spec;
    spec.id = index * 1'000'000u + static_cast<std::uint32_t>(n);
    spec.seed = rng.g();
    spec.writer_reactor = rng.chance(0.35) ? (home + 1) % kReactors : home;
    spec.until = shared->end;
    ConnResult r;
    const bool cut = rng.chance(0.15);
    if (cut) {
      const Clock::duration limit = rng.micros(500, 30'000);
      bool in_time = false;
      if (home == 0) in_time = co_await with_timeout(limit, connection_into(spec, &r));
      else in_time = co_await with_timeout(limit, remote_connection_into(home, spec, &r));
      if (!in_time) ++r.c.cut_short;
    } else if (home == 0) {
      r = co_await run_connection(spec);
    } else {
      r = co_await submit_to(home, run_connection(spec));
    }
    shared->totals.add(r.c);
    if (r.ended > shared->last_end) {
      shared->last_end = r.ended;
      shared->last = std::move(r.summary);
    }
    for (auto& p : r.problems) {
      if (shared->problems.size() < 50) shared->problems.push_back(std::move(p));
    }
  }
}

struct Report {
  Counters totals;
  Problems problems;
  std::string backend;
  std::size_t in_flight[kReactors] = {};
  std::uint32_t lent[kReactors] = {};
  std::uint64_t orphans[kReactors] = {};
  std::uint64_t abandon_waits[kReactors] = {};
  std::size_t fds_after = 0;
  bool finished_in_time = true;
  double seconds = 0;
  double last_past_budget = 0;  // seconds the last connection ran past the budget
  std::string last;
};

task<void> workload(Shared* shared) {
  Group workers;
  const std::stop_token guard = co_await current_stop_token();
  for (unsigned i = 0; i < kReactors * kWorkersPerReactor; ++i) workers.spawn(worker(i, i % kReactors, shared), guard);
  co_await workers.join();
  for (const auto& e : workers.errors) shared->problems.push_back("a worker threw: " + e);
}

struct ReactorState {
  std::size_t in_flight;
  std::uint32_t lent;
  std::uint64_t orphans;
  std::uint64_t abandon_waits;
};

ReactorState reactor_state() {
  Backend& b = Reactor::current()->backend();
  return {b.in_flight(), b.buffers().lent(), b.stats().orphans, b.stats().abandon_waits};
}

task<Report> torture(Config cfg, std::size_t fds_before) {
  Report rep;
  Shared shared;
  shared.seed = cfg.seed;
  const auto budget = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.seconds));
  const Clock::time_point start = Clock::now();
  shared.end = start + budget;
  rep.backend = Reactor::current()->backend().describe();
  // The guard: everything that takes the ambient token ends if the run overstays (the watchdog outside
  // catches what does not).
  rep.finished_in_time = co_await with_timeout(budget + 30s, workload(&shared));
  rep.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  // Let orphan completions and the closes queued last settle, then look at each reactor.
  co_await sleep_for(20ms);
  for (unsigned id = 0; id < kReactors; ++id) {
    ReactorState s = co_await submit_to(id, [] { return reactor_state(); });
    rep.in_flight[id] = s.in_flight;
    rep.lent[id] = s.lent;
    rep.orphans[id] = s.orphans;
    rep.abandon_waits[id] = s.abandon_waits;
  }
  rep.fds_after = corio::testing::open_fds();
  for (int i = 0; i < 100 && rep.fds_after != fds_before; ++i) {  // a moment more for closes in flight
    co_await sleep_for(10ms);
    rep.fds_after = corio::testing::open_fds();
  }
  rep.totals = shared.totals;
  rep.last_past_budget = std::chrono::duration<double>(shared.last_end - shared.end).count();
  rep.last = std::move(shared.last);
  rep.problems = std::move(shared.problems);
  co_return rep;
}

// Aborts the process, naming the seed, if the run does not end: a hang is a failure to reproduce.
class Watchdog {
 public:
  Watchdog(const Config& cfg, std::chrono::seconds limit)
      : thread_([this, cfg, limit] {
          std::unique_lock lock(mu_);
          if (cv_.wait_for(lock, limit, [this] { return done_; })) return;
          std::fprintf(stderr,
                       "torture: HANG: no end after %lld s (seed %llu, CORIO_BACKEND=%s, %.1f s budget): %llu "
                       "connections started, %llu finished\n",
                       static_cast<long long>(limit.count()), static_cast<unsigned long long>(cfg.seed),
                       cfg.backend.c_str(), cfg.seconds, static_cast<unsigned long long>(g_started.load()),
                       static_cast<unsigned long long>(g_finished.load()));
          std::fflush(stderr);
          std::abort();
        }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

void print(const Config& cfg, const Report& r) {
  const Counters& t = r.totals;
  auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf("torture: seed %llu, CORIO_BACKEND=%s (%s), %.2f s (budget %.2f s)\n", u(cfg.seed),
              cfg.backend.empty() ? "(unset)" : cfg.backend.c_str(), r.backend.c_str(), r.seconds, cfg.seconds);
  std::printf("  connections %llu: read to end %llu, reader closed early %llu, cut short by with_timeout %llu, "
              "writer stopped %llu; on reactor 1 %llu, writer on the other reactor %llu, RecvStream readers %llu\n",
              u(t.connections), u(t.exact), u(t.reader_closed_early), u(t.cut_short), u(t.writer_stopped),
              u(t.home_remote), u(t.writer_elsewhere), u(t.recv_stream_readers));
  std::printf("  bytes reported sent %llu, received %llu, mismatches %llu\n", u(t.bytes_sent), u(t.bytes_received),
              u(t.mismatches));
  std::printf("  writes %llu: whole %llu, timed out %llu (of plain ones %llu), cancelled %llu (by close mid-write %llu), "
              "peer gone %llu, failed part-way %llu; shutdown_write %llu\n",
              u(t.writes), u(t.writes_ok), u(t.write_timeouts), u(t.plain_write_timeouts), u(t.write_cancels),
              u(t.closes_mid_write), u(t.write_resets), u(t.write_partial), u(t.shutdowns));
  std::printf("  write_all calls that ended over %lld ms past their deadline, stop or close: %llu (the latest by %.3f s)\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(kLateLimit).count()), u(t.late_writes),
              static_cast<double>(t.max_write_lateness_us) / 1e6);
  std::printf("  reads %llu: timed out %llu, cancelled %llu; cross-reactor hops %llu (stopped across %llu)\n", u(t.reads),
              u(t.read_timeouts), u(t.read_cancels), u(t.hops), u(t.hops_stopped));
  std::printf("  the last connection ended %.3f s past the budget: %s\n", r.last_past_budget, r.last.c_str());
  for (unsigned id = 0; id < kReactors; ++id) {
    std::printf("  reactor %u: in flight %zu, buffers lent %u, orphans %llu, abandon waits %llu\n", id, r.in_flight[id],
                r.lent[id], u(r.orphans[id]), u(r.abandon_waits[id]));
  }
  std::fflush(stdout);
}

TEST(Torture, EveryByteReportedSentArrivesOnceAndInOrder) {
  const Config cfg = config_from_env();
  SCOPED_TRACE("CORIO_TORTURE_SEED=" + std::to_string(cfg.seed) + " CORIO_BACKEND=" + cfg.backend);
  Runtime rt({.reactors = kReactors});
  const std::size_t fds_before = corio::testing::open_fds();
  Report rep;
  {
    Watchdog dog(cfg, std::chrono::seconds(static_cast<long long>(cfg.seconds) + 90));
    rep = rt.run(torture(cfg, fds_before));
  }
  print(cfg, rep);
  EXPECT_TRUE(rep.finished_in_time) << "the run overstayed its budget by 30 s";
  EXPECT_EQ(rep.totals.mismatches, 0u);
  EXPECT_TRUE(rep.problems.empty()) << rep.problems.size() << " problem(s), the first: " << rep.problems.front();
  for (std::size_t i = 0; i < rep.problems.size() && i < 20; ++i) ADD_FAILURE() << rep.problems[i];
  EXPECT_GT(rep.totals.connections, 0u);
  EXPECT_GT(rep.totals.exact, 0u);
  EXPECT_EQ(rep.totals.connections, rep.totals.exact + rep.totals.reader_closed_early)
      << "connections whose reader neither read to the end nor closed early";
  for (unsigned id = 0; id < kReactors; ++id) {
    EXPECT_EQ(rep.in_flight[id], 0u) << "reactor " << id << ": operations still in flight";
    EXPECT_EQ(rep.lent[id], 0u) << "reactor " << id << ": receive buffers never given back";
  }
  EXPECT_EQ(rep.fds_after, fds_before) << "descriptors left open";
}

// ---- What the torture run found, reduced to one case ---------------------------------------------------
// A write_all of 256 KiB to a loopback peer that does not read yet (it starts after 1 s) must still end
// by its deadline (100 ms), soon after a stop (at 100 ms), or soon after close() of its stream (at 100 ms).
// It once did not on io_uring: a zero-copy send ends only with the kernel's notification, which on loopback
// comes once the peer has read the bytes, so the call outlived its deadline, its stop and its close. A write
// that can end early now copies (TcpStream::write_all).

enum class Cut { deadline, stop, close };

const char* name_of(Cut how) {
  switch (how) {
    case Cut::deadline: return "deadline at 100 ms";
    case Cut::stop: return "stop at 100 ms";
    case Cut::close: return "close() at 100 ms";
  }
  return "?";
}

task<void> read_after(TcpStream& s, Clock::duration wait, std::uint64_t* got) {
  co_await sleep_for(wait);
  std::vector<char> b(1 << 20);
  for (;;) {
    auto n = co_await s.read_some(b).timeout(5s);
    if (!n || *n == 0) break;
    *got += *n;
  }
}

task<void> cut_after(TcpStream& c, std::stop_source source, Clock::duration wait, Cut how) {
  co_await sleep_for(wait);
  if (how == Cut::stop) source.request_stop();
  if (how == Cut::close) c.close();
}

struct CutOutcome {
  double ms = 0;
  std::string result;
  std::uint64_t sent = 0;  // as reported
  std::uint64_t received = 0;
};

task<CutOutcome> write_to_a_peer_not_reading(Cut how) {
  CutOutcome out;
  auto l = TcpListener::bind(Address::loopback_v4(0));
  if (!l) throw std::runtime_error(l.error().message());
  Result<TcpStream> c = co_await TcpStream::connect(l->local_address(), 2s);
  Result<TcpStream> s = co_await l->accept().timeout(2s);
  if (!c || !s) throw std::runtime_error("no loopback connection");
  std::vector<char> buf(256 * 1024, 'z');
  std::stop_source source;
  Group helpers;
  helpers.spawn(read_after(*s, 1s, &out.received));
  if (how != Cut::deadline) helpers.spawn(cut_after(*c, source, 100ms, how));
  const Clock::time_point t0 = Clock::now();
  const Clock::time_point deadline = t0 + (how == Cut::deadline ? 100ms : 10s);
  Result<void> r = co_await c->write_all(buf, deadline).stop_token(source.get_token());
  out.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  out.result = r ? "ok" : r.error().message();
  out.sent = r ? buf.size() : r.error().transferred;
  c->close();  // the reader sees the end of the stream
  co_await helpers.join();
  co_return out;
}

task<void> cut_case(Cut how, CutOutcome* out) {
  CutOutcome o = co_await write_to_a_peer_not_reading(how);
  *out = std::move(o);
}

// The three cases at once, on three connections.
task<std::vector<CutOutcome>> all_cuts() {
  std::vector<CutOutcome> outs(3);
  Group cases;
  cases.spawn(cut_case(Cut::deadline, &outs[0]));
  cases.spawn(cut_case(Cut::stop, &outs[1]));
  cases.spawn(cut_case(Cut::close, &outs[2]));
  co_await cases.join();
  for (const auto& e : cases.errors) throw std::runtime_error(e);
  co_return outs;
}

TEST(WriteAll, EndsByItsDeadlineStopOrCloseWhileThePeerIsNotReading) {
  Runtime rt({.reactors = 1});
  const bool zero_copy = rt.run([]() -> task<bool> { co_return Reactor::current()->backend().features().send_zc; }());
  const std::vector<CutOutcome> outs = rt.run(all_cuts());
  const Cut cases[] = {Cut::deadline, Cut::stop, Cut::close};
  for (std::size_t i = 0; i < outs.size(); ++i) {
    const CutOutcome& o = outs[i];
    EXPECT_LT(o.ms, 600) << name_of(cases[i]) << ": write_all(256 KiB) ended after " << std::lround(o.ms) << " ms ("
                         << o.result << "), when the peer began to read"
                         << (zero_copy ? "; it was a zero-copy send (SEND_ZC), which ends at the kernel's notification" : "");
    EXPECT_EQ(o.received, o.sent) << name_of(cases[i]) << ": " << o.result;
  }
}

}  // namespace
}  // namespace corio::net
