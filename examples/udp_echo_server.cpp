// udp-echo-server: sends every datagram back to its sender, on one reactor per CPU.
//   udp-echo-server [--listen 127.0.0.1:7000] [--reactors N] [--backend uring|epoll] [--disable FEATURE,...]
//                   [--enable FEATURE,...]
// Each reactor has its own socket on the port (SO_REUSEPORT: the kernel spreads senders over them by
// address) and one receive loop on it: a multishot recvmsg into the reactor's buffer ring on io_uring.
// Prints "listening on HOST:PORT" first; SIGINT/SIGTERM stops it (exit 0).
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "examples/flags.hpp"
#include "corio/net/udp_socket.hpp"
#include "corio/runtime/log.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/signal_set.hpp"
#include "corio/runtime/task_scope.hpp"

using corio::task;
using corio::net::Datagram;
using corio::net::DatagramStream;
using corio::net::UdpSocket;

namespace {

std::atomic<std::uint64_t> echoed{0};

// One echo: the datagram's pool buffer goes back when `d` does, once the kernel has sent its copy.
task<void> echo_one(const UdpSocket& socket, Datagram d) {
  if (auto sent = co_await socket.send_to(d.from, d.bytes()); sent) echoed.fetch_add(1, std::memory_order_relaxed);
}

// One reactor's loop. Each echo goes out on its own, so that the receive never waits for a send: the sends
// of one loop turn go to the kernel together (one io_uring_enter), with the next receives.
task<void> echo(UdpSocket socket) {
  DatagramStream rx(socket);
  corio::TaskScope sends;  // ends before the socket: no send outlives it
  for (;;) {
    auto d = co_await rx.next();
    if (!d) {
      if (d.error().cancelled()) break;  // stopped (or the socket closed)
      // e.g. too long: dropped, and said once per 10 s however many come (a flood must not flood stderr)
      corio::log::limited(corio::log::Level::warning, "udp receive", std::chrono::seconds(10), "%s", d.error().message().c_str());
      continue;
    }
    sends.spawn(echo_one(socket, std::move(*d)));
  }
  co_await sends.join();
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:7000";
  unsigned long reactors = 0;
  corio::BackendOptions backend;
  const char* usage = "[--listen ADDR] [--reactors N] [--backend uring|epoll] [--disable FEATURE,...] [--enable FEATURE,...]";
  bool ok = corio::examples::parse_pairs(argc, argv, {{"--listen", listen}}, {{"--reactors", reactors, 1024}}, usage,
                                         [&](std::string_view flag, const char* value) -> std::optional<bool> {
                                           if (flag == "--backend") return corio::examples::parse_backend(value, backend.kind);
                                           if (flag == "--disable") return corio::examples::parse_disable(value, backend);
                                           if (flag == "--enable") return corio::examples::parse_enable(value, backend);
                                           return std::nullopt;
                                         });
  if (!ok) return 2;
  auto at = corio::net::Address::parse(listen);
  if (!at) {
    std::fprintf(stderr, "udp-echo-server: --listen: %s\n", at.error().message().c_str());
    return 2;
  }
  try {
    corio::SignalSet signals({SIGINT, SIGTERM});  // before the runtime: its threads inherit the mask
    corio::Runtime rt({.reactors = static_cast<unsigned>(reactors), .backend = backend});
    return rt.run([&]() -> task<int> {
      // All sockets bound here, so that a port in use fails before anything runs; the first one takes
      // the port (for :0), the others join it.
      std::vector<UdpSocket> sockets;
      for (unsigned i = 0; i < rt.size(); ++i) {
        auto s = UdpSocket::bind(i == 0 ? *at : sockets[0].local_address(), {.reuse_port = true});
        if (!s) {
          std::fprintf(stderr, "udp-echo-server: %s\n", s.error().message().c_str());
          co_return 1;
        }
        sockets.push_back(std::move(*s));
      }
      std::printf("listening on %s\n", sockets[0].local_address().to_string().c_str());
      std::fflush(stdout);
      // Each socket moves into a loop on its reactor (it is used, and closed, there); a stop of the scope
      // reaches every reactor.
      corio::TaskScope scope;
      for (unsigned i = 0; i < rt.size(); ++i) {
        scope.spawn([](unsigned id, UdpSocket s) -> task<void> {
          co_await corio::submit_to(id, echo(std::move(s)));
        }(i, std::move(sockets[i])));
      }
      const int sig = co_await signals.next();
      scope.request_stop();
      co_await scope.join();
      std::fprintf(stderr, "udp-echo-server: %s: stopped; echoed %llu datagrams\n",
                   sig > 0 ? strsignal(sig) : "signal read failed", static_cast<unsigned long long>(echoed.load()));
      co_return 0;
    }());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "udp-echo-server: %s\n", e.what());
    return 1;
  }
}
