// echo-server: sends back whatever each client sends, on one reactor per CPU.
//   echo-server [--listen 127.0.0.1:7000] [--reactors N] [--max-conns N] [--idle-timeout SECONDS] [--coalesce on|off]
// Connections beyond --max-conns are closed at once; a connection silent for --idle-timeout, or that
// stops reading its echo for that long, is closed (slowloris, stalled readers); SIGINT/SIGTERM stops accepting, lets connections finish (--drain-timeout) and exits 0.
#include <sys/uio.h>

#include <array>
#include <stdexcept>

#include "examples/server_main.hpp"
#include "corio/net/recv_stream.hpp"

using corio::Clock;
using corio::RecvBuffer;
using corio::task;
using corio::net::Connection;
using corio::net::RecvStream;
using corio::net::TcpStream;

// Chunks that arrived while the last reply was being sent (a pipelining client's requests, a bundle's
// buffers: on io_uring, whose multishot receive queues them meanwhile) go out with this one in one
// sendmsg instead of one send each. A frame of its own, so that a plain echo does not carry the parts.
// While a peer that stops reading holds it up, the connection keeps up to 8 buffers here and the 3 its
// stream queues (4 in all without --coalesce).
[[gnu::noinline]] static task<bool> echo_gathered(const TcpStream& conn, RecvStream& rx, RecvBuffer& chunk,
                                                  Clock::time_point deadline) {
  constexpr std::size_t kParts = corio::net::SendvAllImpl::kWindow;
  std::array<RecvBuffer, kParts - 1> more;
  std::array<iovec, kParts> parts{};
  std::size_t n = 0;
  parts[n++] = {chunk.bytes().data(), chunk.size()};
  // next_into does not suspend while ready(); false: the end of the stream, which the caller's next read sees.
  for (RecvBuffer& m : more) {
    if (!rx.ready() || !co_await rx.next_into(m)) break;
    parts[n++] = {m.bytes().data(), m.size()};
  }
  auto sent = co_await conn.write_all(std::span<const iovec>(parts.data(), n), deadline);
  chunk.release();
  co_return sent.ok();
}

// The write is a task of its own, so that what it needs lives only while it runs, not in the frame that
// every idle connection keeps (noinline: the compiler would otherwise fold it into that frame).
[[gnu::noinline]] static task<bool> echo(const TcpStream& conn, RecvStream& rx, RecvBuffer& chunk, bool coalesce,
                                         Clock::time_point deadline) {
  if (coalesce && rx.ready()) co_return co_await echo_gathered(conn, rx, chunk, deadline);
  auto sent = co_await conn.write_all(chunk.bytes(), deadline);  // a client that stops reading, too
  chunk.release();                                               // the buffer goes back to the pool now
  co_return sent.ok();
}

int main(int argc, char** argv) {
  return corio::examples::run_server(
      argc, argv, "echo-server", false,
      [](const corio::examples::ServerFlags& f) {
        const Clock::duration idle = f.idle_timeout;
        bool coalesce = true;
        if (auto it = f.extra.find("--coalesce"); it != f.extra.end()) {
          if (it->second != "on" && it->second != "off") throw std::invalid_argument("--coalesce " + it->second + ": expected on or off");
          coalesce = it->second == "on";
        }
        // A byte stream has no requests: a connection never says idle(), so a drain lets it run until its
        // client closes or --drain-timeout.
        return [idle, coalesce](Connection& c) -> task<void> {
          // Bytes arrive in the reactor's pool buffers: a connection holds one only while echoing it.
          RecvStream rx(c.stream());
          RecvBuffer chunk;
          for (;;) {
            auto deadline = idle.count() > 0 ? Clock::now() + idle : Clock::time_point::max();
            // False at the end of the stream, on an error or the idle timeout (rx.status() says which): close.
            if (!co_await rx.next_into(chunk, deadline)) co_return;
            if (!co_await echo(c.stream(), rx, chunk, coalesce, deadline)) co_return;
          }
        };
      },
      {"--coalesce"});
}
