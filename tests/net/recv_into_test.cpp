// RecvStream::next_into: the same receive as next() with a bool result, the bytes in a buffer the caller
// keeps; status() says why it returned false (end of stream, ETIMEDOUT, ECANCELED), and every buffer goes
// back to the pool. Also the stream's size, which every idle connection pays for.
#include <gtest/gtest.h>

#include <string>

#include "corio/net/recv_stream.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/task_scope.hpp"
#include "corio/runtime/time.hpp"
#include "tests/net/loopback_pair.hpp"

namespace corio::net {
namespace {

using namespace std::chrono_literals;

// Issue 18: RecvStream is most of an idle echo connection's handler frame.
static_assert(sizeof(RecvStream) <= 216, "RecvStream grew: every idle connection pays for it");

BufferPool& pool() { return Reactor::current()->backend().buffers(); }

TEST(RecvStreamInto, ReceivesEverythingThenReportsTheEndOfTheStream) {
  Runtime rt({.reactors = 1});
  auto [got, ended_ok, lent] = rt.run([]() -> task<std::tuple<std::string, bool, std::uint32_t>> {
    auto pair = co_await testing::connect_pair();
    const std::string data(100'000, 'x');
    TaskScope scope;
    scope.spawn([](TcpStream s, const std::string& d) -> task<void> { (void)co_await s.write_all(d); }(
        std::move(pair.client), data));
    std::string got;
    bool ended_ok = false;
    {
      RecvStream rx(pair.server);
      RecvBuffer chunk;
      while (co_await rx.next_into(chunk, Clock::now() + 5s)) got.append(chunk.bytes().data(), chunk.size());
      EXPECT_TRUE(chunk.empty()) << "false leaves no buffer";
      ended_ok = rx.status().ok();
    }
    co_await scope.join();
    co_return std::tuple{got, ended_ok, pool().lent()};
  }());
  EXPECT_EQ(got.size(), 100'000u);
  EXPECT_TRUE(ended_ok) << "the end of the stream is not an error";
  EXPECT_EQ(lent, 0u) << "every buffer went back";
}

TEST(RecvStreamInto, ATimeoutAndAStopAreReportedAndTheStreamGoesOn) {
  Runtime rt({.reactors = 1});
  auto [timed_out, then_data, stopped] = rt.run([]() -> task<std::tuple<bool, bool, bool>> {
    auto pair = co_await testing::connect_pair();
    RecvStream rx(pair.server);
    RecvBuffer chunk;
    bool timed_out = !co_await rx.next_into(chunk, Clock::now() + 20ms) && rx.status().error().timed_out();
    (void)co_await pair.client.write_all(std::string_view("abc"));
    bool then_data = co_await rx.next_into(chunk, Clock::now() + 5s) && chunk.size() == 3 && rx.status().ok();
    std::stop_source stop;
    stop.request_stop();
    bool stopped = co_await with_stop_token(stop.get_token(), [](RecvStream& rx, RecvBuffer& chunk) -> task<bool> {
      co_return !co_await rx.next_into(chunk) && rx.status().error().cancelled();
    }(rx, chunk));
    co_return std::tuple{timed_out, then_data, stopped};
  }());
  EXPECT_TRUE(timed_out);
  EXPECT_TRUE(then_data) << "a timeout leaves the receive armed; status() is ok again after bytes";
  EXPECT_TRUE(stopped);
}

}  // namespace
}  // namespace corio::net
