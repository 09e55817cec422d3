// echo-server: sends back whatever each client sends, on one reactor per CPU.
//   echo-server [--listen 127.0.0.1:7000] [--reactors N] [--max-conns N] [--idle-timeout SECONDS]
// Connections beyond --max-conns are closed at once; a connection silent for --idle-timeout, or that
// stops reading its echo for that long, is closed (slowloris, stalled readers); SIGINT/SIGTERM stops accepting, lets connections finish (--drain-timeout) and exits 0.
#include "examples/server_main.hpp"
#include "corio/net/recv_stream.hpp"

using corio::Clock;
using corio::task;
using corio::net::Connection;
using corio::net::RecvStream;
using corio::net::TcpStream;

int main(int argc, char** argv) {
  return corio::examples::run_server(argc, argv, "echo-server", false, [](const corio::examples::ServerFlags& f) {
    const Clock::duration idle = f.idle_timeout;
    // A byte stream has no requests: a connection never says idle(), so a drain lets it run until its
    // client closes or --drain-timeout.
    return [idle](Connection& c) -> task<void> {
      TcpStream& conn = c.stream();
      // Bytes arrive in the reactor's pool buffers: a connection holds one only while echoing it.
      RecvStream rx(conn);
      for (;;) {
        auto deadline = idle.count() > 0 ? Clock::now() + idle : Clock::time_point::max();
        auto chunk = co_await rx.next(deadline);
        if (!chunk || chunk->empty()) co_return;  // error, idle timeout or end of stream: close
        auto sent = co_await conn.write_all(chunk->bytes(), deadline);  // a client that stops reading, too
        if (!sent) co_return;
      }
    };
  });
}
