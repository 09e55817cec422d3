// write_all(std::span<const iovec>): many buffers gathered into sendmsg rounds. Every byte arrives in
// order across short sends and window boundaries (more parts than one round takes, empty parts, a slow
// reader); stopped, timed out, closed under it or reset by the peer it says exactly what the peer got;
// its frame destroyed while the kernel holds the send leaves the peer an in-order prefix.
#include <gtest/gtest.h>
#include <sys/uio.h>

#include <cerrno>
#include <string>
#include <vector>

#include "corio/net/socket_options.hpp"
#include "corio/net/tcp_listener.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/task_scope.hpp"
#include "corio/runtime/time.hpp"
#include "tests/net/loopback_pair.hpp"

namespace corio::net {
namespace {

using namespace std::chrono_literals;

// Parts of uneven sizes (some empty), each with its own byte pattern; their concatenation in `all`.
struct Parts {
  std::vector<std::string> bytes;
  std::vector<iovec> iov;
  std::string all;
};

Parts make_parts(std::size_t count, std::size_t scale) {
  Parts p;
  for (std::size_t i = 0; i < count; ++i) {
    std::string s((i % 7 == 3) ? 0 : (i * 977 + 13) % scale + 1, '\0');
    for (std::size_t j = 0; j < s.size(); ++j) s[j] = static_cast<char>('A' + (i + j / 512) % 26);
    p.all += s;
    p.bytes.push_back(std::move(s));
  }
  for (std::string& s : p.bytes) p.iov.push_back({s.data(), s.size()});
  return p;
}

// Reads everything until end of stream (or 10 s), `chunk` bytes at a time with a pause between.
task<std::string> read_all(const TcpStream& s, std::size_t chunk, Clock::duration pause) {
  std::vector<char> buf(chunk);
  std::string got;
  const auto give_up = Clock::now() + 10s;
  for (;;) {
    auto n = co_await s.read_some(buf).deadline(give_up);
    if (!n || *n == 0) co_return got;
    got.append(buf.data(), *n);
    if (pause.count() > 0) co_await sleep_for(pause);
  }
}

TEST(GatherWrite, EveryByteInOrderAcrossShortSends) {
  Runtime rt({.reactors = 1});
  const Parts parts = make_parts(45, 200'000);  // ~4.5 MiB in 45 parts: six rounds at least, many short sends
  auto got = rt.run([](const Parts& p) -> task<std::string> {
    auto pair = co_await testing::connect_pair();
    (void)set_send_buffer(pair.client.fd(), 64 * 1024);
    std::string got;
    TaskScope scope;
    scope.spawn([](const TcpStream& s, std::string& out) -> task<void> { out = co_await read_all(s, 7000, 0ms); }(pair.server, got));
    auto w = co_await pair.client.write_all(p.iov, Clock::now() + 10s);
    if (!w) co_return "write: " + w.error().message();
    pair.client.close();
    co_await scope.join();
    co_return got;
  }(parts));
  ASSERT_EQ(got.size(), parts.all.size());
  EXPECT_TRUE(got == parts.all) << "bytes out of order";
}

TEST(GatherWrite, NoPartsOrOnlyEmptyOnesIsDone) {
  Runtime rt({.reactors = 1});
  auto got = rt.run([]() -> task<std::string> {
    auto pair = co_await testing::connect_pair();
    std::string empty;
    std::vector<iovec> parts = {{empty.data(), 0}, {empty.data(), 0}};
    auto none = co_await pair.client.write_all(std::span<const iovec>());
    auto blanks = co_await pair.client.write_all(parts);
    co_return std::string(none ? "ok" : none.error().message()) + " " + (blanks ? "ok" : blanks.error().message());
  }());
  EXPECT_EQ(got, "ok ok");
}

enum class Cut { deadline, stop, close, reset };

struct Outcome {
  int code = 0;
  std::string message;
  std::size_t transferred = 0;
  std::string received;
};

// A gathered write of ~8 MiB to a reader that stops reading, ended part-way as `cut` says.
task<Outcome> cut_write(Cut cut, const Parts& p) {
  auto pair = co_await testing::connect_pair();
  (void)set_send_buffer(pair.client.fd(), 64 * 1024);
  (void)set_receive_buffer(pair.server.fd(), 64 * 1024);
  Outcome out;
  std::stop_source stop;
  TaskScope scope;
  scope.spawn([](Cut c, TcpStream& client, TcpStream& server, std::stop_source& st) -> task<void> {
    co_await sleep_for(30ms);  // the write is in the kernel, the socket full
    if (c == Cut::stop) st.request_stop();
    if (c == Cut::close) client.close();
    if (c == Cut::reset) {
      (void)set_linger(server.fd(), 0s);
      server.close();
    }
  }(cut, pair.client, pair.server, stop));
  auto write = [&]() -> task<Result<void>> {
    co_return co_await pair.client.write_all(p.iov, cut == Cut::deadline ? Clock::now() + 30ms : Clock::now() + 10s);
  };
  Result<void> r = co_await with_stop_token(stop.get_token(), write());
  out.code = r ? 0 : r.error().code;
  out.message = r ? "" : r.error().message();
  out.transferred = r ? p.all.size() : r.error().transferred;
  co_await scope.join();
  if (cut != Cut::reset) {
    pair.client.close();  // the peer reads what was sent, then the end
    out.received = co_await read_all(pair.server, 64 * 1024, 0ms);
  }
  co_return out;
}

class GatherWriteCut : public ::testing::TestWithParam<Cut> {};

TEST_P(GatherWriteCut, SaysExactlyWhatThePeerGot) {
  Runtime rt({.reactors = 1});
  const Parts parts = make_parts(80, 200'000);
  Outcome o = rt.run(cut_write(GetParam(), parts));
  switch (GetParam()) {
    case Cut::deadline:
      EXPECT_EQ(o.code, ETIMEDOUT) << o.message;
      break;
    case Cut::stop:
      EXPECT_EQ(o.code, ECANCELED) << o.message;
      break;
    case Cut::close:
      EXPECT_EQ(o.code, ECANCELED) << o.message;
      EXPECT_NE(o.message.find("(stream closed)"), std::string::npos) << o.message;
      break;
    case Cut::reset:
      EXPECT_TRUE(o.code == ECONNRESET || o.code == EPIPE) << o.message;
      return;  // the peer is gone: nothing to compare
  }
  EXPECT_GT(o.transferred, 0u);
  EXPECT_LT(o.transferred, parts.all.size()) << "a partial write reported as done";
  ASSERT_EQ(o.received.size(), o.transferred);
  EXPECT_TRUE(o.received == parts.all.substr(0, o.transferred)) << "the peer's bytes are not the prefix";
}

const char* name_of(Cut c) {
  switch (c) {
    case Cut::deadline: return "Deadline";
    case Cut::stop: return "Stop";
    case Cut::close: return "Close";
    case Cut::reset: return "PeerReset";
  }
  return "Unknown";
}
void PrintTo(Cut c, std::ostream* os) { *os << name_of(c); }
std::string cut_name(const ::testing::TestParamInfo<Cut>& info) { return name_of(info.param); }

INSTANTIATE_TEST_SUITE_P(Cuts, GatherWriteCut, ::testing::Values(Cut::deadline, Cut::stop, Cut::close, Cut::reset), cut_name);

// The writing task destroyed while its send is in the kernel (the peer does not read): the abandon waits
// for the kernel, and the peer then reads an in-order prefix of the parts.
TEST(GatherWrite, FrameDestroyedInFlightLeavesAPrefix) {
  Runtime rt({.reactors = 1});
  const Parts parts = make_parts(80, 200'000);
  auto got = rt.run([](const Parts& p) -> task<std::string> {
    auto pair = co_await testing::connect_pair();
    (void)set_send_buffer(pair.client.fd(), 64 * 1024);
    (void)set_receive_buffer(pair.server.fd(), 64 * 1024);
    {
      TaskScope scope;
      scope.spawn([](const TcpStream& s, const Parts& p) -> task<void> {
        // Its own copy of the iovecs: destroyed with the frame, as a caller's would be.
        std::vector<iovec> iov = p.iov;
        (void)co_await s.write_all(iov);
      }(pair.client, p));
      co_await sleep_for(20ms);
    }  // the scope destroys the writer's frame with its send in flight
    pair.client.close();
    std::string received = co_await read_all(pair.server, 64 * 1024, 0ms);
    if (received.empty() || received.size() >= p.all.size()) co_return "got " + std::to_string(received.size()) + " bytes";
    co_return received == p.all.substr(0, received.size()) ? "prefix" : "not a prefix";
  }(parts));
  EXPECT_EQ(got, "prefix");
}

}  // namespace
}  // namespace corio::net
