// echo-server: sends back whatever each client sends, on one reactor per CPU.
//   echo-server [--listen 127.0.0.1:7000] [--reactors N] [--max-conns N] [--idle-timeout SECONDS]
// Connections beyond --max-conns are closed at once; a connection silent for --idle-timeout is closed
// (slowloris); SIGINT/SIGTERM stops accepting, lets connections finish (--drain-timeout) and exits 0.
#include <vector>

#include "examples/server_main.hpp"

using corio::Clock;
using corio::task;
using corio::net::TcpStream;

int main(int argc, char** argv) {
  return corio::examples::run_server(argc, argv, "echo-server", false, [](const corio::examples::ServerFlags& f) {
    const Clock::duration idle = f.idle_timeout;
    return [idle](TcpStream conn) -> task<void> {
      std::vector<char> buf(std::size_t{16} * 1024);
      for (;;) {
        auto deadline = idle.count() > 0 ? Clock::now() + idle : Clock::time_point::max();
        auto n = co_await conn.read_some(buf).deadline(deadline);
        if (!n || *n == 0) co_return;  // error, idle timeout or end of stream: close
        auto sent = co_await conn.write_all(std::span(buf).first(*n));
        if (!sent) co_return;
      }
    };
  });
}
