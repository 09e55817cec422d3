// Channel (one reactor) and SharedChannel (any reactors): order, the bound, close, stops, awaiters
// destroyed with an item in hand, and many producers on several reactors delivering every item once.
#include "corio/runtime/channel.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "corio/runtime/runtime.hpp"
#include "corio/runtime/task_scope.hpp"
#include "corio/runtime/time.hpp"
#include "corio/runtime/when_all.hpp"

namespace corio {
namespace {

using namespace std::chrono_literals;

TEST(Channel, ItemsComeOutInOrderAndTheBoundHolds) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Channel<int> ch(2);
    std::size_t most = 0;
    std::vector<int> got;
    TaskScope scope;
    scope.spawn([](Channel<int>& ch) -> task<void> {
      for (int i = 0; i < 100; ++i) EXPECT_FALSE(co_await ch.send(i));
      ch.close();
    }(ch));
    for (;;) {
      most = std::max(most, ch.size());
      if (got.size() % 7 == 0) co_await yield{};  // let the producer fill up
      auto r = co_await ch.recv();
      if (!r) {
        EXPECT_EQ(r.error, std::errc::broken_pipe);
        break;
      }
      got.push_back(*r);
    }
    co_await scope.join();
    EXPECT_EQ(most, 2u);
    EXPECT_EQ(got.size(), 100u);
    for (int i = 0; i < static_cast<int>(got.size()); ++i) EXPECT_EQ(got[i], i);
  }());
}

TEST(Channel, CloseDrainsThenRefuses) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Channel<std::string> ch(4);
    EXPECT_FALSE(co_await ch.send("a"));
    EXPECT_TRUE(ch.try_send("b"));
    ch.close();
    EXPECT_EQ(co_await ch.send("c"), std::errc::broken_pipe);
    std::string late = "d";
    EXPECT_FALSE(ch.try_send(std::move(late)));
    EXPECT_EQ(late, "d");  // refused: still the caller's
    auto a = co_await ch.recv();
    auto b = co_await ch.recv();
    auto end = co_await ch.recv();
    EXPECT_EQ(*a, "a");
    EXPECT_EQ(*b, "b");
    EXPECT_EQ(end.error, std::errc::broken_pipe);
  }());
}

TEST(Channel, CloseWakesParkedReceiversAndSenders) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Channel<int> empty(1), full(1);
    EXPECT_FALSE(co_await full.send(1));
    std::error_code recv_error, send_error;
    TaskScope scope;
    scope.spawn([](Channel<int>& ch, std::error_code& e) -> task<void> { e = (co_await ch.recv()).error; }(empty, recv_error));
    scope.spawn([](Channel<int>& ch, std::error_code& e) -> task<void> { e = co_await ch.send(2); }(full, send_error));
    co_await yield{};
    empty.close();
    full.close();
    co_await scope.join();
    EXPECT_EQ(recv_error, std::errc::broken_pipe);
    EXPECT_EQ(send_error, std::errc::broken_pipe);
  }());
}

TEST(Channel, StoppedSendAndRecvEndWithECanceledAndLeaveItWorking) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Channel<int> ch(1);
    auto recv = [](Channel<int>& ch) -> task<std::error_code> { co_return (co_await ch.recv()).error; };
    auto send = [](Channel<int>& ch, int v) -> task<std::error_code> { co_return co_await ch.send(v); };
    EXPECT_FALSE(co_await with_timeout(5ms, recv(ch)));  // empty: stopped
    EXPECT_FALSE(co_await send(ch, 1));
    EXPECT_FALSE(co_await with_timeout(5ms, send(ch, 2)));  // full: stopped, 2 not sent
    auto one = co_await ch.recv();
    EXPECT_EQ(*one, 1);
    EXPECT_FALSE(ch.try_recv().has_value());
  }());
}

TEST(Channel, SendAndRecvEndWithETimedOutAtTheirDeadline) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Channel<int> ch(1);
    EXPECT_EQ((co_await ch.recv(Clock::now() + 2ms)).error, std::errc::timed_out);
    EXPECT_FALSE(co_await ch.send(1, Clock::now() + 2ms));
    EXPECT_EQ(co_await ch.send(2, Clock::now() + 2ms), std::errc::timed_out);  // full: 2 not sent
    auto one = co_await ch.recv(Clock::now() + 2ms);
    EXPECT_EQ(*one, 1);
    EXPECT_EQ(ch.size(), 0u);
  }());
}

TEST(Channel, AnItemHandedToADestroyedReceiverGoesBack) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    Channel<int> ch(1);
    bool got = false;
    {
      TaskScope scope;
      scope.spawn([](Channel<int>& ch, bool& got) -> task<void> {
        auto r = co_await ch.recv();
        got = r.value.has_value();
      }(ch, got));
      EXPECT_TRUE(ch.try_send(7));  // handed to the parked receiver...
      EXPECT_EQ(ch.size(), 0u);
    }  // ...destroyed before it resumed
    EXPECT_FALSE(got);
    auto again = co_await ch.recv();
    EXPECT_EQ(*again, 7);
    // Handed, then one more queued behind it: the give-back holds one over the bound, and no sender
    // refills past it.
    {
      TaskScope scope;
      scope.spawn([](Channel<int>& ch, bool& got) -> task<void> { got = (co_await ch.recv()).value.has_value(); }(ch, got));
      EXPECT_TRUE(ch.try_send(8));
      EXPECT_TRUE(ch.try_send(9));
    }
    EXPECT_EQ(ch.size(), 2u);
    EXPECT_FALSE(ch.try_send(10));
    EXPECT_EQ(*ch.try_recv(), 8);
    EXPECT_FALSE(ch.try_send(10));  // still at the bound
    EXPECT_EQ(*ch.try_recv(), 9);
  }());
}

// Each producer sends (producer, seq) for seq = 0..n-1 from its own reactor; consumers on every reactor.
struct Item {
  int producer;
  int seq;
};

task<void> produce(SharedChannel<Item>& ch, int producer, int n) {
  for (int seq = 0; seq < n; ++seq) {
    if (co_await ch.send(Item{producer, seq})) co_return;
  }
}

task<std::vector<Item>> consume(SharedChannel<Item>& ch) {
  std::vector<Item> got;
  for (;;) {
    auto r = co_await ch.recv();
    if (!r) co_return got;
    got.push_back(*r);
  }
}

TEST(SharedChannel, ManyProducersOnSeveralReactorsDeliverEveryItemOnceInProducerOrder) {
  constexpr int kProducers = 6, kConsumers = 3, kItems = 5000;
  Runtime rt({.reactors = 3, .pin = false});
  auto received = rt.run([]() -> task<std::vector<std::vector<Item>>> {
    SharedChannel<Item> ch(8);
    auto producers = [](SharedChannel<Item>& ch) -> task<void> {
      std::vector<task<void>> all;
      for (int p = 0; p < kProducers; ++p) {
        all.push_back([](SharedChannel<Item>& ch, int p) -> task<void> {
          co_await submit_to(static_cast<unsigned>(p % 3), produce(ch, p, kItems));
        }(ch, p));
      }
      co_await when_all(std::move(all));
      ch.close();
    };
    std::vector<task<std::vector<Item>>> consumers;
    for (int c = 0; c < kConsumers; ++c) {
      consumers.push_back([](SharedChannel<Item>& ch, int c) -> task<std::vector<Item>> {
        co_return co_await submit_to(static_cast<unsigned>(c % 3), consume(ch));
      }(ch, c));
    }
    auto [done, got] = co_await when_all(producers(ch), when_all(std::move(consumers)));
    co_return std::move(got);
  }());
  std::map<int, int> count;
  std::size_t total = 0;
  for (const auto& got : received) {
    std::map<int, int> last;
    for (const Item& it : got) {
      auto [pos, fresh] = last.try_emplace(it.producer, it.seq);
      if (!fresh) {
        EXPECT_LT(pos->second, it.seq) << "producer " << it.producer << " out of order";
        pos->second = it.seq;
      }
      ++count[it.producer * kItems + it.seq];
    }
    total += got.size();
  }
  EXPECT_EQ(total, std::size_t{kProducers} * kItems);
  EXPECT_EQ(count.size(), std::size_t{kProducers} * kItems);
  for (const auto& [key, n] : count) ASSERT_EQ(n, 1) << "item " << key;
}

// Receives with deadlines about as short as the gaps between sends, on another reactor: every deadline
// races a wake, and still no item is lost or doubled.
TEST(SharedChannel, DeadlinesRacingWakesLoseNothing) {
  constexpr int kItems = 3000;
  Runtime rt({.reactors = 2, .pin = false});
  auto [received, timeouts] = rt.run([]() -> task<std::pair<std::vector<int>, int>> {
    SharedChannel<int> ch(2);
    auto produce = [](SharedChannel<int>& ch) -> task<void> {
      for (int i = 0; i < kItems; ++i) {
        if (co_await ch.send(i)) co_return;
        if (i % 3 == 0) co_await sleep_for(std::chrono::microseconds(20 * (i % 7)));
      }
      ch.close();
    };
    auto consume = [](SharedChannel<int>& ch) -> task<std::pair<std::vector<int>, int>> {
      co_return co_await submit_to(1, [](SharedChannel<int>& ch) -> task<std::pair<std::vector<int>, int>> {
        std::vector<int> got;
        int timeouts = 0;
        for (int round = 0;; ++round) {
          auto r = co_await ch.recv(Clock::now() + std::chrono::microseconds(10 + 15 * (round % 5)));
          if (r) got.push_back(*r);
          else if (r.error == std::errc::timed_out) ++timeouts;
          else break;
        }
        co_return std::pair{std::move(got), timeouts};
      }(ch));
    };
    auto [none, out] = co_await when_all(produce(ch), consume(ch));
    co_return std::move(out);
  }());
  EXPECT_EQ(received.size(), std::size_t{kItems});
  for (int i = 0; i < static_cast<int>(received.size()); ++i) ASSERT_EQ(received[i], i);
  std::printf("%d receives timed out\n", timeouts);
}

TEST(SharedChannel, CloseAndStopReachReceiversOnOtherReactors) {
  Runtime rt({.reactors = 2, .pin = false});
  rt.run([]() -> task<void> {
    SharedChannel<int> ch(1);
    auto recv_on_1 = [](SharedChannel<int>& ch) -> task<std::error_code> {
      co_return co_await submit_to(1, [](SharedChannel<int>& ch) -> task<std::error_code> {
        co_return (co_await ch.recv()).error;
      }(ch));
    };
    auto close_later = [](SharedChannel<int>& ch) -> task<void> {
      co_await sleep_for(5ms);
      ch.close();
    };
    auto [closed, none] = co_await when_all(recv_on_1(ch), close_later(ch));
    EXPECT_EQ(closed, std::errc::broken_pipe);

    SharedChannel<int> other(1);
    auto stopped = co_await with_timeout(5ms, recv_on_1(other));  // the stop crosses to reactor 1
    EXPECT_FALSE(stopped.has_value());
    EXPECT_TRUE(other.try_send(3));
    EXPECT_EQ(*other.try_recv(), 3);
  }());
}

}  // namespace
}  // namespace corio
