// A stream handed to another reactor and closed there leaves nothing behind on the reactor it waited on.
// On epoll a socket stays registered between waits; were its registration remembered after the file was
// closed on another reactor, the next socket given the same number here would find a wait that the stale
// interest seems to cover never armed, and hang until its deadline. Two ways out: moved as an object after
// a connect (the connect's writability interest goes with its completion), and release()d after a read
// (the backend forgets the descriptor). The handing reactor is held (blocked) until the other has closed
// the stream, so that no event for the old file can tidy up first; the number is then reused at once.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "corio/net/tcp_listener.hpp"
#include "corio/net/tcp_stream.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/task_scope.hpp"
#include "corio/runtime/time.hpp"

namespace corio::net {
namespace {

using namespace std::chrono_literals;

enum class Handoff { moved_after_connect, released_after_read };

struct Parcel {
  std::atomic<TcpStream*> moved{nullptr};
  std::atomic<int> released{-1};
  std::atomic<bool> closed{false};
};

// On reactor 1: closes what reactor 0 hands over.
task<void> close_what_arrives(Parcel& p) {
  co_await submit_to(1, [&p]() -> task<void> {
    for (;;) {
      if (TcpStream* s = p.moved.load()) {
        s->close();
        delete s;
        break;
      }
      if (const int fd = p.released.load(); fd >= 0) {
        TcpStream(fd, Address()).close();
        break;
      }
      if (co_await sleep_for(1ms)) co_return;  // stopped: the test ended early
    }
    p.closed = true;
  });
}

void hold_until_closed(const Parcel& p) {
  for (int i = 0; i < 5000 && !p.closed.load(); ++i) std::this_thread::sleep_for(1ms);
}

task<std::string> reuse_after(Handoff how) {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  if (!l) co_return l.error().message();
  const Address at = l->local_address();
  Parcel parcel;
  TaskScope scope;
  scope.spawn(close_what_arrives(parcel));
  std::string out;
  if (how == Handoff::moved_after_connect) {
    auto s1 = co_await TcpStream::connect(at, 2s);  // waits for writability
    if (!s1) co_return s1.error().message();  // (not accepted: the backlog holds both connections)
    const int n = s1->fd();
    parcel.moved = new TcpStream(std::move(*s1));  // before this reactor polls again
    hold_until_closed(parcel);
    auto s2 = co_await TcpStream::connect(at, 1s);  // the lowest free number: n again
    if (!s2) co_return "the next connect on the same number: " + s2.error().message();
    out = s2->fd() == n ? "number reused, connected" : "number not reused";
  } else {
    const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // the next client, numbered before
    auto pair_client = co_await TcpStream::connect(at, 2s);
    if (!pair_client) co_return pair_client.error().message();
    auto s1 = co_await l->accept().timeout(2s);
    if (!s1) co_return s1.error().message();
    scope.spawn([](const TcpStream& w) -> task<void> {
      co_await sleep_for(20ms);
      (void)co_await w.write_all(std::string_view("x"));
    }(*pair_client));
    char b[8];
    auto r = co_await s1->read_some(b);  // waits for readability
    if (!r || *r != 1) co_return "the first read failed";
    const int n = s1->fd();
    parcel.released = s1->release();  // before this reactor polls again
    hold_until_closed(parcel);
    if (::connect(c, at.sockaddr_ptr(), at.length()) != 0) co_return "raw connect failed";
    auto a2 = co_await l->accept().timeout(2s);  // the lowest free number: n again
    if (!a2) co_return a2.error().message();
    scope.spawn([](int fd) -> task<void> {
      co_await sleep_for(20ms);
      (void)::send(fd, "y", 1, MSG_NOSIGNAL);
    }(c));
    auto r2 = co_await a2->read_some(b).timeout(1s);
    if (!r2) co_return "the next read on the same number: " + r2.error().message();
    out = a2->fd() == n ? "number reused, read " + std::string(b, *r2) : "number not reused";
    ::close(c);
  }
  co_await scope.join();
  co_return out;
}

RuntimeOptions epoll_two_reactors() {
  RuntimeOptions o{.reactors = 2, .pin = false};
  o.backend.kind = BackendOptions::Kind::epoll;
  return o;
}

TEST(StreamHandoff, AStreamMovedAfterAConnectAndClosedElsewhereLeavesItsNumberUsable) {
  Runtime rt(epoll_two_reactors());
  EXPECT_EQ(rt.run(reuse_after(Handoff::moved_after_connect)), "number reused, connected");
}

TEST(StreamHandoff, AStreamReleasedAfterAReadAndClosedElsewhereLeavesItsNumberUsable) {
  Runtime rt(epoll_two_reactors());
  EXPECT_EQ(rt.run(reuse_after(Handoff::released_after_read)), "number reused, read y");
}

}  // namespace
}  // namespace corio::net
