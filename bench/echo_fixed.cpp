// echo-fixed: a fixed workload for callgrind, N loopback TCP round trips of 64 B on one reactor (as
// net-bench's EchoRoundTrip), without deadlines ("plain") or with a deadline on every read and write on
// both sides. Instruction and allocation counts of a backend change compare here (latency-features.md):
//   CORIO_BACKEND=epoll valgrind --tool=callgrind build/release/bench/echo-fixed deadline 20000
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "corio/net/tcp_listener.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"

using namespace corio;
using namespace corio::net;
using namespace std::chrono_literals;

task<void> echo_exact(TcpStream conn, std::size_t size, bool deadlines) {
  std::vector<char> buf(size);
  for (;;) {
    auto until = deadlines ? Clock::now() + 5s : Clock::time_point::max();
    auto n = co_await conn.read_exact(buf, until);
    if (!n || *n < size) co_return;
    if (!co_await conn.write_all(buf, until)) co_return;
  }
}

int main(int argc, char** argv) {
  const bool deadlines = argc > 1 && std::strcmp(argv[1], "deadline") == 0;
  const int n = argc > 2 ? std::atoi(argv[2]) : 20000;
  const std::size_t size = 64;
  if (n <= 0) {
    std::fprintf(stderr, "usage: echo-fixed [plain|deadline] [ROUND_TRIPS > 0]\n");
    return 2;
  }
  auto listener = TcpListener::bind(Address::loopback_v4(0));
  if (!listener) {
    std::fprintf(stderr, "echo-fixed: %s\n", listener.error().message().c_str());
    return 1;
  }
  Runtime rt({.reactors = 1, .cpus = {0}});
  int done = rt.run([&]() -> task<int> {
    auto client = co_await TcpStream::connect(listener->local_address());
    auto server = co_await listener->accept();
    if (!client || !server) co_return 0;
    spawn(echo_exact(std::move(*server), size, deadlines));
    std::vector<char> msg(size, 'x'), back(size);
    int ok = 0;
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
      auto until = deadlines ? Clock::now() + 5s : Clock::time_point::max();
      if (!co_await client->write_all(msg, until)) break;
      auto r = co_await client->read_exact(back, until);
      if (r && *r == size) ++ok;
    }
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
    std::printf("%.2f us per round trip\n", static_cast<double>(ns) / n / 1000.0);
    client->close();
    co_return ok;
  }());
  std::printf("%d round trips (%s)\n", done, deadlines ? "deadline" : "plain");
  return done == n ? 0 : 1;
}
