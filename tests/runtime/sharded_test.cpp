// Sharded<T>: each shard is built, called and destroyed on its own reactor; a call to the caller's own
// shard runs inline; map_reduce and invoke_on_all reach every reactor; errors come back to the caller.
#include "corio/runtime/sharded.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <map>
#include <string>

#include "corio/runtime/time.hpp"

namespace corio {
namespace {

using namespace std::chrono_literals;

std::atomic<int> built_on_wrong_reactor{0};
std::atomic<int> destroyed_on_wrong_reactor{0};

struct Shard {
  explicit Shard(int base) : base(base), home(Reactor::current()->id()) {}
  ~Shard() {
    if (Reactor::current() == nullptr || Reactor::current()->id() != home) ++destroyed_on_wrong_reactor;
  }
  int base;
  unsigned home;
  std::map<std::string, int> values;
};

TEST(Sharded, EachShardLivesOnItsReactorAndCallsGoThere) {
  built_on_wrong_reactor = destroyed_on_wrong_reactor = 0;
  Runtime rt({.reactors = 3, .pin = false});
  rt.run([]() -> task<void> {
    Sharded<Shard> s;
    co_await s.start(100);
    EXPECT_EQ(s.size(), 3u);
    for (unsigned i = 0; i < 3; ++i) {
      auto where = co_await s.invoke_on(i, [i](Shard& sh) {
        sh.values["k"] = static_cast<int>(i);
        return std::pair{sh.home, Reactor::current()->id()};
      });
      EXPECT_EQ(where.first, i);
      EXPECT_EQ(where.second, i);
    }
    // A task-returning call is awaited on the shard's reactor.
    int slept = co_await s.invoke_on(2, [](Shard& sh) -> task<int> {
      co_await sleep_for(1ms);
      co_return sh.base + static_cast<int>(Reactor::current()->id());
    });
    EXPECT_EQ(slept, 102);
    co_await s.invoke_on_all([](Shard& sh) { sh.values["all"] = 1; });
    int total = co_await s.map_reduce([](Shard& sh) { return sh.values["k"] + sh.values["all"]; }, 0, std::plus<>{});
    EXPECT_EQ(total, (0 + 1 + 2) + 3);
    EXPECT_EQ(s.local().home, 0u);
    co_await s.stop();
    EXPECT_EQ(s.size(), 0u);
  }());
  EXPECT_EQ(destroyed_on_wrong_reactor.load(), 0);
}

TEST(Sharded, ALocalCallRunsInlineWithoutAHop) {
  Runtime rt({.reactors = 2, .pin = false});
  rt.run([]() -> task<void> {
    Sharded<Shard> s;
    co_await s.start(0);
    bool ran = false;
    auto call = s.invoke_on(0, [&ran](Shard&) { ran = true; });
    EXPECT_FALSE(ran);  // lazy, like every task
    co_await std::move(call);
    EXPECT_TRUE(ran);
    co_await s.stop();
  }());
}

TEST(Sharded, ErrorsComeBackToTheCaller) {
  Runtime rt({.reactors = 2, .pin = false});
  rt.run([]() -> task<void> {
    Sharded<Shard> s;
    co_await s.start(0);
    EXPECT_THROW(co_await s.invoke_on(1, [](Shard&) -> int { throw std::runtime_error("shard 1"); }), std::runtime_error);
    EXPECT_THROW(co_await s.invoke_on(0, [](Shard&) -> int { throw std::runtime_error("shard 0"); }), std::runtime_error);
    EXPECT_THROW(co_await s.invoke_on(7, [](Shard&) { return 0; }), std::out_of_range);
    co_await s.stop();
  }());
}

}  // namespace
}  // namespace corio
