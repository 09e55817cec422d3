// TaskScope: join waits for every child (counted), a stop reaches children blocked in sleeps, socket
// reads and channel receives, leaving the scope destroys what is left (a read still in the kernel
// included), and the first exception stops the rest and reaches the parent.
#include "corio/runtime/task_scope.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <stdexcept>

#include "corio/net/tcp_stream.hpp"
#include "corio/runtime/channel.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"
#include "tests/net/loopback_pair.hpp"
#include "tests/runtime/live_count.hpp"

namespace corio {
namespace {

using namespace std::chrono_literals;

using testing::Live;

task<void> nap(Clock::duration d, int& live, int& ended) {
  Live alive(live);
  co_await sleep_for(d);
  ++ended;
}

TEST(TaskScope, JoinWaitsForEveryChildAndThoseSpawnedMeanwhile) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    int live = 0, ended = 0;
    TaskScope scope;
    for (int i = 0; i < 20; ++i) scope.spawn(nap(std::chrono::microseconds(100 * i), live, ended));
    scope.spawn([](TaskScope& scope, int& live, int& ended) -> task<void> {
      co_await sleep_for(3ms);
      scope.spawn(nap(2ms, live, ended));  // while the parent is in join()
    }(scope, live, ended));
    EXPECT_EQ(scope.size(), 21u);
    co_await scope.join();
    EXPECT_EQ(ended, 21);
    EXPECT_EQ(live, 0);
    EXPECT_EQ(scope.size(), 0u);
    co_await scope.join();  // nothing left: at once
  }());
}

TEST(TaskScope, StopReachesSleepsSocketReadsAndChannelsAndJoinWaitsForThem) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    auto pair = co_await net::testing::connect_pair();
    Channel<int> ch(1);
    int live = 0, ended = 0, cancelled = 0;
    TaskScope scope;
    for (int i = 0; i < 5; ++i) scope.spawn(nap(10s, live, ended));
    scope.spawn([](net::TcpStream& s, int& live, int& cancelled) -> task<void> {
      Live alive(live);
      char buf[16];
      auto n = co_await s.read_some(buf);
      if (!n && n.error().cancelled()) ++cancelled;
    }(pair.server, live, cancelled));
    scope.spawn([](Channel<int>& ch, int& live, int& cancelled) -> task<void> {
      Live alive(live);
      auto r = co_await ch.recv();
      if (r.error == std::errc::operation_canceled) ++cancelled;
    }(ch, live, cancelled));
    co_await sleep_for(2ms);
    EXPECT_EQ(live, 7);
    auto t0 = Clock::now();
    scope.request_stop();
    co_await scope.join();
    EXPECT_LT(Clock::now() - t0, 5s);
    EXPECT_EQ(live, 0);
    EXPECT_EQ(ended, 5);  // the sleeps ended early, each ran its rest
    EXPECT_EQ(cancelled, 2);
    // The socket still works after its read was cancelled.
    EXPECT_TRUE(co_await pair.client.write_all(std::string_view("x")));
    char buf[4];
    auto n = co_await pair.server.read_some(buf);
    EXPECT_TRUE(n && *n == 1);
  }());
}

TEST(TaskScope, AStopOfTheJoiningTaskStopsTheChildren) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    int live = 0, ended = 0;
    auto parent = [](int& live, int& ended) -> task<void> {
      TaskScope scope;
      for (int i = 0; i < 3; ++i) scope.spawn(nap(10s, live, ended));
      co_await scope.join();
    };
    bool in_time = co_await with_timeout(5ms, parent(live, ended));
    EXPECT_FALSE(in_time);
    EXPECT_EQ(live, 0);
    EXPECT_EQ(ended, 3);
  }());
}

TEST(TaskScope, LeavingWithoutJoinDestroysWhatIsLeftEvenWithAReadInTheKernel) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    auto pair = co_await net::testing::connect_pair();
    int live = 0, ended = 0;
    {
      TaskScope scope;
      for (int i = 0; i < 4; ++i) scope.spawn(nap(10s, live, ended));
      scope.spawn([](net::TcpStream& s, int& live) -> task<void> {
        Live alive(live);
        char buf[16];
        (void)co_await s.read_some(buf);
      }(pair.server, live));
      co_await yield{};
      EXPECT_EQ(live, 5);
    }
    EXPECT_EQ(live, 0);  // gone with the scope, before it returned
    EXPECT_EQ(ended, 0);
    EXPECT_TRUE(co_await pair.client.write_all(std::string_view("y")));
    char buf[4];
    auto n = co_await pair.server.read_some(buf);
    EXPECT_TRUE(n && *n == 1);  // the abandoned read took nothing
  }());
}

TEST(TaskScope, TheFirstExceptionStopsTheOthersAndReachesJoin) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    int live = 0, ended = 0;
    TaskScope scope;
    for (int i = 0; i < 3; ++i) scope.spawn(nap(10s, live, ended));
    auto fail = [](const char* what, Clock::duration after) -> task<void> {
      co_await sleep_for(after);
      throw std::runtime_error(what);
    };
    scope.spawn(fail("first", 1ms));
    scope.spawn(fail("second", 1ms));
    std::string what;
    try {
      co_await scope.join();
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    EXPECT_EQ(what, "first");
    EXPECT_EQ(scope.failures(), 2u);
    EXPECT_EQ(live, 0);
    EXPECT_EQ(ended, 3);
    EXPECT_TRUE(scope.stop_token().stop_requested());
  }());
}

// A child holding the last reference to the object that owns the scope: its end destroys the scope.
struct Session {
  TaskScope scope;
  int& ended;
  explicit Session(int& e) : ended(e) {}
  ~Session() { ++ended; }
};
task<void> keep_alive(std::shared_ptr<Session> session) {
  co_await sleep_for(1ms);
  (void)session;
}

TEST(TaskScope, AChildMayOwnItsScope) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    int ended = 0;
    {
      auto session = std::make_shared<Session>(ended);
      session->scope.spawn(keep_alive(session));
    }  // only the child holds the session now
    co_await sleep_for(5ms);
    EXPECT_EQ(ended, 1);
  }());
}

TEST(TaskScope, AJoinerDestroyedWhileJoiningIsForgotten) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    int live = 0, ended = 0;
    std::optional<TaskScope> outer(std::in_place);
    TaskScope inner;
    inner.spawn(nap(2ms, live, ended));
    outer->spawn([](TaskScope& inner) -> task<void> { co_await inner.join(); }(inner));
    co_await yield{};
    outer.reset();  // destroys the task parked in inner.join()
    co_await inner.join();  // the destroyed joiner is not resumed; this one is
    EXPECT_EQ(ended, 1);
  }());
}

TEST(TaskScope, ASecondJoinerAtOnceIsRefused) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    int live = 0, ended = 0;
    TaskScope scope;
    scope.spawn(nap(2ms, live, ended));
    TaskScope joiners;
    joiners.spawn([](TaskScope& s) -> task<void> { co_await s.join(); }(scope));
    EXPECT_THROW(co_await scope.join(), std::logic_error);
    co_await joiners.join();
    EXPECT_EQ(ended, 1);
  }());
}

TEST(TaskScope, AParentTokenStopsTheChildrenBeforeJoin) {
  Runtime rt({.reactors = 1});
  rt.run([]() -> task<void> {
    int live = 0, ended = 0;
    std::stop_source parent;
    TaskScope scope(parent.get_token());
    for (int i = 0; i < 3; ++i) scope.spawn(nap(10s, live, ended));
    parent.request_stop();
    co_await sleep_for(2ms);  // not joining yet: the stop reached them anyway
    EXPECT_EQ(ended, 3);
    co_await scope.join();
  }());
}

TEST(TaskScope, SpawnFromAnotherReactorIsRefused) {
  Runtime rt({.reactors = 2, .pin = false});
  rt.run([]() -> task<void> {
    TaskScope scope;
    int live = 0, ended = 0;
    bool refused = co_await submit_to(1, [&] {
      try {
        scope.spawn(nap(1ms, live, ended));
        return false;
      } catch (const std::logic_error&) {
        return true;
      }
    });
    EXPECT_TRUE(refused);
    EXPECT_EQ(scope.size(), 0u);
  }());
}

}  // namespace
}  // namespace corio
