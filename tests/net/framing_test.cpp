// Framing and buffered I/O over real loopback sockets: frames of every size, zero-length, oversized
// (refused before allocating), a budget over all frames' memory, truncated header and body, clean end of
// stream, read_until, coalescing.
#include "corio/net/framing.hpp"

#include <gtest/gtest.h>

#include <string>

#include "corio/net/tcp_listener.hpp"
#include "tests/net/loopback_pair.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/task_scope.hpp"
#include "corio/runtime/time.hpp"

namespace corio::net {
namespace {

using namespace std::chrono_literals;

using testing::connect_pair;
using testing::Pair;

std::string header(std::uint32_t n) {
  return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n)};
}

TEST(Framing, RoundTripsFramesOfEverySizeIncludingEmpty) {
  Runtime rt({.reactors = 1});
  bool all_equal = rt.run([]() -> task<bool> {
    Pair p = co_await connect_pair();
    std::vector<std::vector<char>> sent;
    for (std::size_t n : {0ul, 1ul, 3ul, 4096ul, 65537ul, 1ul << 20}) sent.emplace_back(n, static_cast<char>('a' + n % 26));
    auto writer_task = [&]() -> task<void> {
      BufferedWriter w(p.client);
      for (auto& f : sent) (void)co_await write_frame(w, f);
      (void)co_await w.flush();
      (void)p.client.shutdown_write();
    };
    spawn(writer_task());
    BufferedReader r(p.server);
    std::vector<char> payload;
    bool ok = true;
    for (auto& f : sent) {
      auto got = co_await read_frame(r, payload);
      ok = ok && got && *got && payload == f;
    }
    auto end = co_await read_frame(r, payload);
    co_return ok && end && !*end;  // then a clean end of stream
  }());
  EXPECT_TRUE(all_equal);
}

TEST(Framing, OversizedFrameIsRefusedBeforeAllocating) {
  Runtime rt({.reactors = 1});
  auto [err, capacity] = rt.run([]() -> task<std::pair<Error, std::size_t>> {
    Pair p = co_await connect_pair();
    (void)co_await p.client.write_all(header(1u << 30));  // announces 1 GiB
    BufferedReader r(p.server);
    std::vector<char> payload;
    auto got = co_await read_frame(r, payload, 1u << 20);
    co_return std::pair{got ? Error{} : got.error(), payload.capacity()};
  }());
  EXPECT_EQ(err.code, EMSGSIZE);
  EXPECT_EQ(err.context, "frame of 1073741824 bytes exceeds the limit of 1048576");
  EXPECT_EQ(capacity, 0u);
}

task<void> send(TcpStream& s, std::string_view data) { (void)co_await s.write_all(data); }

TEST(Framing, FramesTogetherHoldNoMoreThanTheirBudget) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    MemoryBudget budget(256 * 1024);
    Pair a = co_await connect_pair();
    Pair b = co_await connect_pair();
    const std::string body(200 * 1024, 'x');
    const std::string frame = header(200 * 1024) + body;
    TaskScope writers;  // the frames are larger than the socket buffers: sent while they are read
    writers.spawn(send(a.client, frame));
    writers.spawn(send(b.client, frame));
    BufferedReader ra(a.server), rb(b.server);
    std::vector<char> pa, pb;
    {
      MemoryBudget::Lease la(budget), lb(budget);
      auto first = co_await read_frame(ra, pa, kDefaultMaxFrame, &la);
      EXPECT_TRUE(first && *first);
      EXPECT_EQ(pa.size(), body.size());
      EXPECT_GE(la.held(), pa.size()) << "the lease holds what the payload holds";
      EXPECT_EQ(budget.used(), la.held());
      auto second = co_await read_frame(rb, pb, kDefaultMaxFrame, &lb);
      EXPECT_FALSE(second);
      if (!second) {
        EXPECT_EQ(second.error().code, ENOBUFS);
        EXPECT_EQ(second.error().context, "frame of 204800 bytes refused after 0: the memory for frames (limit 262144 bytes) is in use");
      }
      EXPECT_EQ(pb.capacity(), 0u) << "refused before allocating";
      EXPECT_EQ(budget.refused(), 1u);
      EXPECT_LE(budget.used(), budget.limit());
    }
    EXPECT_EQ(budget.used(), 0u) << "leases give their bytes back when they end";
    b.client.close();  // b's frame was refused: nobody reads the rest
    co_await writers.join();
    // A frame stopped half-way (its deadline) keeps its partial payload in the lease until it is released.
    Pair c = co_await connect_pair();
    (void)co_await c.client.write_all(header(200 * 1024) + body.substr(0, 60 * 1024));
    BufferedReader rc(c.server);
    rc.set_deadline(Clock::now() + 50ms);
    MemoryBudget::Lease lc(budget);
    std::vector<char> pc;
    auto stalled = co_await read_frame(rc, pc, kDefaultMaxFrame, &lc);
    EXPECT_FALSE(stalled);
    if (!stalled) EXPECT_EQ(stalled.error().code, ETIMEDOUT);
    EXPECT_GE(lc.held(), 60u * 1024);
    std::vector<char>().swap(pc);
    lc.release();
    EXPECT_EQ(budget.used(), 0u);
  }());
}

TEST(Framing, TruncatedBodyAndHeaderAreReportedAsSuch) {
  Runtime rt({.reactors = 1});
  auto [body, head] = rt.run([]() -> task<std::pair<Error, Error>> {
    Pair p = co_await connect_pair();
    (void)co_await p.client.write_all(header(10) + "abc");
    (void)p.client.shutdown_write();
    BufferedReader r(p.server);
    std::vector<char> payload;
    auto b = co_await read_frame(r, payload);
    Pair q = co_await connect_pair();
    (void)co_await q.client.write_all(std::string_view("\0\0", 2));
    (void)q.client.shutdown_write();
    BufferedReader r2(q.server);
    auto h = co_await read_frame(r2, payload);
    co_return std::pair{b ? Error{} : b.error(), h ? Error{} : h.error()};
  }());
  EXPECT_EQ(body.code, EPROTO);
  EXPECT_EQ(body.context, "truncated frame: end of stream after 3 of 10 bytes");
  EXPECT_EQ(head.code, EPROTO);
  EXPECT_EQ(head.context, "truncated frame header: 2 of 4 bytes before end of stream");
}

TEST(Buffered, ReadUntilAcrossReadsAndLimit) {
  Runtime rt({.reactors = 1});
  auto [lines, too_long] = rt.run([]() -> task<std::pair<std::vector<std::string>, int>> {
    Pair p = co_await connect_pair();
    auto writer_task = [&]() -> task<void> {
      for (const char* part : {"GET / HT", "TP/1.1\r\nHost: x\r", "\n\r\n"}) {
        (void)co_await p.client.write_all(std::string_view(part));
        co_await sleep_for(2ms);  // separate segments
      }
      (void)co_await p.client.write_all(std::string(100, 'x'));
      (void)p.client.shutdown_write();
    };
    spawn(writer_task());
    BufferedReader r(p.server, 16);  // smaller than a line
    std::vector<std::string> out;
    for (int i = 0; i < 3; ++i) {
      std::string line;
      auto got = co_await r.read_until('\n', line);
      if (got && *got) out.push_back(line);
    }
    std::string rest;
    auto big = co_await r.read_until('\n', rest, 50);
    co_return std::pair{out, big ? 0 : big.error().code};
  }());
  EXPECT_EQ(lines, (std::vector<std::string>{"GET / HTTP/1.1\r\n", "Host: x\r\n", "\r\n"}));
  EXPECT_EQ(too_long, EMSGSIZE);
}

TEST(Buffered, ReadUntilRefusesALongLineThatArrivedWhole) {
  Runtime rt({.reactors = 1});
  auto [exact, over] = rt.run([]() -> task<std::pair<std::size_t, int>> {
    Pair p = co_await connect_pair();
    std::string data = std::string(50, 'a') + "\n" + std::string(51, 'b') + "\n";
    (void)co_await p.client.write_all(data);
    co_await sleep_for(2ms);  // both lines in the reader's first fill
    BufferedReader r(p.server);
    std::string line;
    auto first = co_await r.read_until('\n', line, 50);  // 50 bytes before the delimiter: allowed
    std::string second;
    auto refused = co_await r.read_until('\n', second, 50);
    co_return std::pair{first && *first ? line.size() : 0, refused ? 0 : refused.error().code};
  }());
  EXPECT_EQ(exact, 51u);
  EXPECT_EQ(over, EMSGSIZE);
}

TEST(Buffered, WriterDeadlineEndsASendToAPeerThatStoppedReading) {
  Runtime rt({.reactors = 1});
  auto [code, sent_some] = rt.run([]() -> task<std::pair<int, bool>> {
    Pair p = co_await connect_pair();
    BufferedWriter w(p.server, 1 << 16);
    w.set_deadline(Clock::now() + 50ms);
    std::string chunk(1 << 16, 'z');
    for (int i = 0; i < 1000; ++i) {  // far more than the socket buffers take
      auto r = co_await w.write(chunk);
      if (!r) co_return std::pair{r.error().code, r.error().transferred > 0 || i > 0};
    }
    co_return std::pair{0, true};
  }());
  EXPECT_EQ(code, ETIMEDOUT);
  EXPECT_TRUE(sent_some);
}

TEST(Buffered, WriterCoalescesSmallWritesIntoOneSend) {
  Runtime rt({.reactors = 1});
  auto [pending_before_flush, received] = rt.run([]() -> task<std::pair<std::size_t, std::size_t>> {
    Pair p = co_await connect_pair();
    BufferedWriter w(p.client, 4096);
    for (int i = 0; i < 100; ++i) (void)co_await w.write(std::string_view("0123456789"));
    std::size_t pending = w.pending();
    (void)co_await w.flush();
    char buf[4096];
    // Everything arrives in one read: it left as one send.
    auto n = co_await p.server.read_some(buf);
    co_return std::pair{pending, n ? *n : 0};
  }());
  EXPECT_EQ(pending_before_flush, 1000u);
  EXPECT_EQ(received, 1000u);
}

}  // namespace
}  // namespace corio::net
