// The lifecycle promises of the core, as a user hits them, on real loopback sockets and both backends:
// a stopped write says exactly what the peer got, close() wakes everything pending on a socket and the
// peer sees the end, a reused descriptor number never reaches an old waiter, tearing down armed receives
// costs no system call per connection, and a failing listener is backed off, not spun on.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "corio/net/recv_stream.hpp"
#include "corio/net/server.hpp"
#include "corio/net/socket_options.hpp"
#include "corio/net/tcp_listener.hpp"
#include "corio/runtime/nop.hpp"
#include "corio/runtime/read.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"
#include "tests/fd_count.hpp"
#include "tests/net/loopback_pair.hpp"

namespace corio::net {
namespace {

using namespace std::chrono_literals;
using corio::testing::open_fds;

// Reads until end of stream (or 5 s), `chunk` bytes at a time with a pause between: a slow reader.
task<std::size_t> read_to_end(const TcpStream& s, std::size_t chunk, Clock::duration pause) {
  std::vector<char> buf(chunk);
  std::size_t total = 0;
  const auto give_up = Clock::now() + 5s;
  for (;;) {
    auto n = co_await s.read_some(buf).deadline(give_up);
    if (!n || *n == 0) co_return total;
    total += *n;
    if (pause.count() > 0) co_await sleep_for(pause);
  }
}

struct WriteOutcome {
  int code = 0;
  std::size_t transferred = 0;
  std::size_t received = 0;
};

// write_all of 8 MiB to a slow reader, stopped part-way by `stop` (a token stop or a deadline).
task<WriteOutcome> stopped_write(bool by_deadline) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  auto pair = co_await testing::connected(*l);
  (void)set_send_buffer(pair.client.fd(), 64 * 1024);
  (void)set_receive_buffer(pair.server.fd(), 64 * 1024);
  std::size_t received = 0;
  bool reader_done = false;
  auto reader = [&]() -> task<void> {
    received = co_await read_to_end(pair.server, 16 * 1024, 1ms);
    reader_done = true;
  };
  spawn(reader());
  std::vector<char> big(8 << 20, 'w');
  std::stop_source stop;
  bool stopper_done = true;
  auto stopper = [&]() -> task<void> {
    co_await sleep_for(30ms);
    stop.request_stop();
    stopper_done = true;
  };
  Result<void> r;
  if (by_deadline) {
    r = co_await pair.client.write_all(big, Clock::now() + 30ms);
  } else {
    stopper_done = false;
    spawn(stopper());
    auto write = [&]() -> task<Result<void>> { co_return co_await pair.client.write_all(big); };
    r = co_await with_stop_token(stop.get_token(), write());
  }
  WriteOutcome out{.code = r ? 0 : r.error().code, .transferred = r ? big.size() : r.error().transferred};
  pair.client.close();  // the peer reads what was sent, then the end
  while (!reader_done || !stopper_done) co_await sleep_for(1ms);  // both use this frame
  out.received = received;
  co_return out;
}

TEST(Lifecycle, StoppedWriteReportsExactlyWhatThePeerReceived) {
  Runtime rt({.reactors = 1});
  for (int round = 0; round < 10; ++round) {
    const bool by_deadline = round % 2 == 1;
    WriteOutcome o = rt.run(stopped_write(by_deadline));
    EXPECT_EQ(o.code, by_deadline ? ETIMEDOUT : ECANCELED) << "round " << round;
    EXPECT_GT(o.transferred, 0u) << "round " << round;
    EXPECT_LT(o.transferred, 8u << 20) << "round " << round << ": a partial send reported as done";
    EXPECT_EQ(o.received, o.transferred) << "round " << round;
  }
}

TEST(Lifecycle, CloseWakesAPendingReadWriteAndAcceptAndThePeerSeesTheEnd) {
  // Plain sends: a zero-copy write also waits for the kernel's notification, which comes only once the
  // peer has taken the bytes (until then its buffer is the kernel's), close or no close.
  BackendOptions backend;
  switch_off(backend, "send-zc");
  Runtime rt({.reactors = 1, .backend = backend});
  struct Seen {
    Error read, write, accept, recv;
    std::size_t read_peer_got = 99, recv_peer_got = 99;
    std::size_t write_peer_got = 0, write_transferred = 0;
    long long took_ms = 0;
  };
  Seen s = rt.run([]() -> task<Seen> {
    auto l = TcpListener::bind(Address::loopback_v4(0));
    auto a = co_await testing::connected(*l);  // a read waits on a.server
    auto b = co_await testing::connected(*l);  // a write waits on b.server (its peer does not read)
    auto c = co_await testing::connected(*l);  // a RecvStream waits on c.server
    auto other = TcpListener::bind(Address::loopback_v4(0));  // an accept waits on it
    (void)set_send_buffer(b.server.fd(), 64 * 1024);
    (void)set_receive_buffer(b.client.fd(), 64 * 1024);
    Seen out;
    int woken = 0;
    auto reader = [&]() -> task<void> {
      char buf[64];
      auto r = co_await a.server.read_some(buf).timeout(5s);
      if (!r) out.read = r.error();
      ++woken;
    };
    std::vector<char> big(8 << 20, 'b');
    auto writer = [&]() -> task<void> {
      auto r = co_await b.server.write_all(big, Clock::now() + 5s);
      if (!r) {
        out.write = r.error();
        out.write_transferred = r.error().transferred;
      }
      ++woken;
    };
    auto acceptor = [&]() -> task<void> {
      auto r = co_await other->accept().timeout(5s);
      if (!r) out.accept = r.error();
      ++woken;
    };
    auto receiver = [&]() -> task<void> {
      RecvStream rx(c.server);
      auto r = co_await rx.next(Clock::now() + 5s);
      if (!r) out.recv = r.error();
      ++woken;
    };
    spawn(reader());
    spawn(writer());
    spawn(acceptor());
    spawn(receiver());
    co_await sleep_for(30ms);  // all four are in the kernel (or parked on epoll)
    const auto t0 = Clock::now();
    a.server.close();
    b.server.close();
    other->close();
    c.server.close();
    while (woken < 4 && Clock::now() - t0 < 5s) co_await sleep_for(1ms);
    out.took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    out.read_peer_got = co_await read_to_end(a.client, 64, 0ms);
    out.recv_peer_got = co_await read_to_end(c.client, 64, 0ms);
    out.write_peer_got = co_await read_to_end(b.client, 64 * 1024, 0ms);
    co_return out;
  }());
  EXPECT_LT(s.took_ms, 1000);
  for (const Error* e : {&s.read, &s.write, &s.accept, &s.recv}) EXPECT_EQ(e->code, ECANCELED) << e->message();
  EXPECT_NE(s.read.message().find("(stream closed)"), std::string::npos) << s.read.message();
  EXPECT_NE(s.write.message().find("(stream closed)"), std::string::npos) << s.write.message();
  EXPECT_NE(s.recv.message().find("(stream closed)"), std::string::npos) << s.recv.message();
  EXPECT_EQ(s.read_peer_got, 0u);  // end of stream, not a hang: the socket really closed
  EXPECT_EQ(s.recv_peer_got, 0u);  // a registered (fixed-file) receive did not keep it open
  EXPECT_EQ(s.write_peer_got, s.write_transferred);
}

// A frame destroyed with its write_all in the kernel (the peer never reads): the send lent the frame's
// buffer, so the abandon waits for the kernel to let go, and the peer gets an in-order prefix, no more.
TEST(Lifecycle, DestroyingAFrameWithAWriteInFlightEndsItAndThePeerGetsAPrefix) {
  Runtime rt({.reactors = 1});
  struct Seen {
    std::size_t in_flight = 99, got = 0;
    bool in_order = true;
  };
  Seen s = rt.run([]() -> task<Seen> {
    auto l = TcpListener::bind(Address::loopback_v4(0));
    auto pair = co_await testing::connected(*l);
    (void)set_send_buffer(pair.client.fd(), 64 * 1024);
    auto writer = [&]() -> task<void> {
      std::vector<char> big(8 << 20);
      for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i % 251);
      (void)co_await pair.client.write_all(big, Clock::now() + 10s);  // a deadline: a plain (copying) send
    };
    auto t = writer();
    auto h = t.release();
    h.resume();                  // runs until the socket buffer is full
    co_await sleep_for(20ms);    // the send waits in the kernel for room
    h.destroy();                 // abandoned: its buffer dies with the frame
    co_await nop();
    Seen out;
    out.in_flight = Reactor::current()->backend().in_flight();
    pair.client.close();
    std::vector<char> buf(64 * 1024);
    for (;;) {
      auto n = co_await pair.server.read_some(buf).timeout(2s);
      if (!n || *n == 0) break;
      for (std::size_t i = 0; i < *n; ++i) out.in_order = out.in_order && buf[i] == static_cast<char>(out.got++ % 251);
    }
    co_return out;
  }());
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_GT(s.got, 0u);
  EXPECT_LT(s.got, 8u << 20);
  EXPECT_TRUE(s.in_order);
}

TEST(Lifecycle, AReusedDescriptorNumberNeverReachesTheOldWaiter) {
  Runtime rt({.reactors = 1});
  struct Seen {
    int old_code = 0;
    bool reused = false;
    std::string fresh_read;
  };
  Seen s = rt.run([]() -> task<Seen> {
    auto l = TcpListener::bind(Address::loopback_v4(0));
    Seen out;
    auto a = co_await testing::connected(*l);
    const int old_fd = a.server.fd();
    bool old_done = false;
    auto old_reader = [&]() -> task<void> {
      char buf[16];
      auto r = co_await a.server.read_some(buf).timeout(5s);
      out.old_code = r ? 0 : r.error().code;
      old_done = true;
    };
    spawn(old_reader());
    co_await sleep_for(10ms);
    a.server.close();
    co_await nop();  // the close goes with this submission
    auto b = co_await testing::connected(*l);  // takes the lowest free numbers: the old one
    out.reused = b.server.fd() == old_fd || b.client.fd() == old_fd;
    (void)co_await b.client.write_all(std::string_view("fresh"));
    (void)co_await b.server.write_all(std::string_view("fresh"));
    while (!old_done) co_await sleep_for(1ms);
    char buf[16];
    const TcpStream& reused = b.server.fd() == old_fd ? b.server : b.client;
    auto n = co_await reused.read_some(buf).timeout(2s);
    if (n) out.fresh_read.assign(buf, *n);
    co_return out;
  }());
  EXPECT_EQ(s.old_code, ECANCELED);  // woken by its close, not by the new socket's bytes
  EXPECT_TRUE(s.reused) << "the test needs the number to be reused";
  EXPECT_EQ(s.fresh_read, "fresh");  // nothing of the new socket went to the old waiter
}

// Idle timeouts close many connections at once, each with its multishot receive still armed. Dropping
// them must cost no system call each (it was one io_uring_enter per connection).
TEST(Lifecycle, TearingDownArmedReceivesMakesNoSystemCallPerConnection) {
  constexpr int kConnections = 4000;  // 8,000 descriptors: within the 20,000 this machine allows
  Runtime rt({.reactors = 1});
  const std::size_t fds_before = open_fds();
  struct Seen {
    int timed_out = 0;
    std::uint64_t waits = 0, orphans = 0, abandon_waits = 0;
    std::size_t in_flight_after = 99;
    int peers_saw_end = 0;
  };
  Seen s = rt.run([&]() -> task<Seen> {
    auto l = TcpListener::bind(Address::loopback_v4(0), {.backlog = kConnections});
    std::vector<TcpStream> clients, servers;
    Seen out;
    for (int i = 0; i < kConnections; ++i) {
      auto pair = co_await testing::connected(*l);
      clients.push_back(std::move(pair.client));
      servers.push_back(std::move(pair.server));
    }
    const auto idle_deadline = Clock::now() + 500ms;
    auto handler = [&](TcpStream conn) -> task<void> {
      RecvStream rx(conn);
      auto chunk = co_await rx.next(idle_deadline);  // armed from here: an idle connection
      if (!chunk && chunk.error().timed_out()) ++out.timed_out;
    };  // rx and conn go: the armed receive is abandoned
    for (TcpStream& s : servers) spawn(handler(std::move(s)));
    co_await sleep_until(idle_deadline - 50ms);
    const Backend& b = Reactor::current()->backend();
    const BackendStats before = b.stats();
    co_await sleep_until(idle_deadline + 50ms);  // every handler times out and returns in this window
    out.waits = b.stats().waits - before.waits;
    out.orphans = b.stats().orphans - before.orphans;
    out.abandon_waits = b.stats().abandon_waits - before.abandon_waits;
    // The cancelled receives' completions may take a few turns (the kernel bounds its work per call).
    for (auto until = Clock::now() + 2s; b.in_flight() > 0 && Clock::now() < until;) co_await sleep_for(1ms);
    out.in_flight_after = b.in_flight();
    for (TcpStream& c : clients) {
      char buf[1];
      auto n = co_await c.read_some(buf).timeout(2s);
      if (n && *n == 0) ++out.peers_saw_end;
    }
    clients.clear();
    co_await nop();
    co_return out;
  }());
  EXPECT_EQ(s.timed_out, kConnections);
  EXPECT_EQ(s.abandon_waits, 0u);
  EXPECT_GE(s.orphans, static_cast<std::uint64_t>(kConnections));
  // Loop turns, each taking a batch of completions (the kernel bounds how many deferred completions one
  // call runs): tens to a couple of hundred here, against one blocking call per connection before.
  EXPECT_LT(s.waits, static_cast<std::uint64_t>(kConnections / 4)) << "a system call per connection torn down";
  EXPECT_EQ(s.in_flight_after, 0u);  // every orphan settled
  EXPECT_EQ(s.peers_saw_end, kConnections);
  // Closes go with the reactor's next submission: give the last ones (the listener's) a moment.
  for (auto until = Clock::now() + 2s; open_fds() != fds_before && Clock::now() < until;) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(open_fds(), fds_before);
  std::printf("%d armed receives torn down with %llu waits (%llu orphans)\n", kConnections,
              static_cast<unsigned long long>(s.waits), static_cast<unsigned long long>(s.orphans));
}

// A read abandoned with its buffer lent is the one case that waits for the kernel, reaping completions
// meant for others on the way: those must still be delivered in ring order. A multishot receive's bytes
// arrive in order while such waits happen again and again around it.
task<void> abandon_lent_reads(int pipe_fd, int rounds, bool* done) {
  for (int i = 0; i < rounds; ++i) {
    co_await sleep_for(std::chrono::microseconds(50));
    auto reader = [pipe_fd]() -> task<void> {
      char buf[8];
      (void)co_await corio::read(pipe_fd, buf);
    };
    auto t = reader();
    auto h = t.release();
    h.resume();      // the read is queued
    co_await nop();  // and in the kernel
    h.destroy();     // abandoned with its buffer lent: waits, reaping whatever else has completed
  }
  *done = true;
}

TEST(Lifecycle, CompletionsReapedWhileAbandoningStayInRingOrder) {
  // Without DEFER_TASKRUN and COOP_TASKRUN the kernel may post completions at any moment (the sender is
  // another thread), also between a wait's reaping and the rest of the dispatch loop. (That window is
  // narrow: a dispatch that ignores it passed this test in 5 of 5 runs; it guards the bytes and their
  // order through thousands of waits, not that one interleaving.)
  BackendOptions backend;
  switch_off(backend, "defer-taskrun");
  switch_off(backend, "coop-taskrun");
  Runtime rt({.reactors = 1, .backend = backend});
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  constexpr std::size_t kBytes = 8 << 20;
  std::thread writer([&] {  // a plain blocking socket on its own thread
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(fd, l->local_address().sockaddr_ptr(), l->local_address().length()) != 0) return;
    std::vector<char> chunk(1024);
    for (std::size_t sent = 0; sent < kBytes; sent += chunk.size()) {
      for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>((sent + i) % 251);
      if (::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(chunk.size())) break;
    }
    ::close(fd);
  });
  auto [received, in_order] = rt.run([&]() -> task<std::pair<std::size_t, bool>> {
    auto conn = co_await l->accept().timeout(5s);
    if (!conn) co_return std::pair{std::size_t{0}, false};
    bool abandons_done = false;  // the pipe must outlive the reads queued on it
    spawn(abandon_lent_reads(pipe_fds[0], 2000, &abandons_done));
    RecvStream rx(*conn);
    std::size_t got = 0;
    bool ok = true;
    for (;;) {
      auto chunk = co_await rx.next(Clock::now() + 5s);
      if (!chunk || chunk->empty()) break;
      for (char c : chunk->bytes()) ok = ok && c == static_cast<char>(got++ % 251);
    }
    while (!abandons_done) co_await sleep_for(1ms);
    co_return std::pair{got, ok};
  }());
  writer.join();
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  EXPECT_EQ(received, kBytes);
  EXPECT_TRUE(in_order);
}

// A listener whose accepts all fail (EINVAL after shutdown()), served until `body` is done with it.
struct FailingListener {
  Runtime rt{{.reactors = 1}};
  Result<TcpListener> l = TcpListener::bind(Address::loopback_v4(0));
  ServerCounters counters;
  ConnectionLimiter limiter{16};
  static task<void> handle(TcpStream) { co_return; }
  decltype(&handle) handler = &handle;
  // Runs with_timeout(limit, serve(...)) after shutting the listener down, with `during` beside it;
  // returns whether serve() ended by itself, and after how long.
  template <class During>
  std::pair<bool, long long> serve_for(Clock::duration limit, During during) {
    return rt.run([&]() -> task<std::pair<bool, long long>> {
      ::shutdown(l->fd(), SHUT_RDWR);
      spawn(during());
      const auto t0 = Clock::now();
      bool finished = co_await with_timeout(limit, serve(*l, handler, limiter, counters));
      co_return std::pair{finished, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count()};
    }());
  }
};

TEST(Lifecycle, AFailingListenerIsBackedOffAndReportedOnce) {
  FailingListener f;
  ASSERT_TRUE(f.l);
  ::testing::internal::CaptureStderr();
  auto [finished, took] = f.serve_for(300ms, []() -> task<void> { co_return; });
  const std::string logged = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(finished);  // it kept trying until stopped
  const auto errors = f.counters.accept_errors.load();
  EXPECT_GE(errors, 3u);
  EXPECT_LE(errors, 12u) << "backoff 1, 2, 4 ... ms: about 9 in 300 ms, never a busy loop";
  const std::string line = "accept on " + f.l->local_address().to_string() + ": Invalid argument; backing off";
  std::size_t count = 0;
  for (std::size_t at = logged.find(line); at != std::string::npos; at = logged.find(line, at + 1)) ++count;
  EXPECT_EQ(count, 1u) << logged;
  std::printf("%llu accept errors in %lld ms\n", static_cast<unsigned long long>(errors), took);
}

// Closes are queued with the next submission: the runtime's shutdown must still submit those of the
// tasks it destroys, or their sockets stay open (no FIN for the peer, a port kept bound).
task<void> hold_forever(TcpStream conn) {
  co_await sleep_for(1h);
  (void)conn;
}

TEST(Lifecycle, ShutdownClosesTheSocketsOfTheTasksItDestroys) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  std::vector<int> peers;
  {
    Runtime rt({.reactors = 1});
    peers = rt.run([&]() -> task<std::vector<int>> {
      std::vector<int> fds;
      for (int i = 0; i < 3; ++i) {
        auto pair = co_await testing::connected(*l);
        fds.push_back(::dup(pair.client.fd()));  // the peer's end, kept past the runtime
        spawn(hold_forever(std::move(pair.server)));
      }
      co_return fds;
    }());
  }  // the runtime stops: hold_forever's frames (and their streams) are destroyed
  for (int fd : peers) {
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char c;
    EXPECT_EQ(::recv(fd, &c, 1, 0), 0) << "the server side was never closed";
    ::close(fd);
  }
}

TEST(Lifecycle, ClosingTheListenerEndsServeEvenWhileItBacksOff) {
  FailingListener f;
  ASSERT_TRUE(f.l);
  ::testing::internal::CaptureStderr();
  auto closer = [&]() -> task<void> {  // serve() is in its backoff sleeps by then
    co_await sleep_for(100ms);
    f.l->close();
  };
  auto [ended, took] = f.serve_for(5s, closer);
  (void)::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(ended);     // ECANCELED "(listener closed)" ends it, not EBADF backoff forever
  EXPECT_LT(took, 1500);  // within one backoff step of the close
}

TEST(Lifecycle, MultishotAcceptIsProbedAndSwitchable) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  ASSERT_TRUE(l);
  for (bool off : {false, true}) {
    BackendOptions backend;
    if (off) {
      ASSERT_TRUE(switch_off(backend, "multishot-accept"));
    }
    Runtime rt({.reactors = 1, .backend = backend});
    auto [multishot, probed, accepted] = rt.run([&]() -> task<std::tuple<bool, bool, int>> {
      AcceptStream accepts(*l);
      int n = 0;
      for (int i = 0; i < 3; ++i) {
        auto c = co_await TcpStream::connect(l->local_address(), 2s);
        auto a = co_await accepts.next();
        if (c && a) ++n;
      }
      const bool uring = Reactor::current()->backend().describe().starts_with("io_uring");
      co_return std::tuple{accepts.multishot(), uring && !off, n};
    }());
    EXPECT_EQ(accepted, 3);
    // This kernel (5.19+) has it: on io_uring it is on unless switched off; epoll never has it.
    EXPECT_EQ(multishot, probed) << (off ? "switched off" : "default");
  }
}

}  // namespace
}  // namespace corio::net
