// frame-server: echoes length-prefixed frames (4-byte big-endian length, then the payload).
//   frame-server [--listen 127.0.0.1:7000] [--max-frame BYTES] [--max-frame-memory BYTES] [--reactors N]
//                [--max-conns N] [--idle-timeout S]
// Replies are buffered and leave together when the next request is not already here (whole), so
// pipelined requests get coalesced responses and a request split across segments holds back none. A
// frame over --max-frame closes the connection without allocating it; the payloads of all connections
// together hold at most --max-frame-memory (default 256 MiB): a frame that would pass it closes its
// connection, so clients that each send most of a large frame and stall cannot exhaust memory.
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <vector>

#include "examples/flags.hpp"

#include "examples/server_main.hpp"
#include "corio/net/framing.hpp"
#include "corio/runtime/log.hpp"

using corio::Clock;
using corio::task;
using corio::net::Connection;

int main(int argc, char** argv) {
  return corio::examples::run_server(argc, argv, "frame-server", true, [](const corio::examples::ServerFlags& f) {
    const Clock::duration idle = f.idle_timeout;
    const std::uint32_t max_frame = f.max_frame;
    unsigned long memory = 256ul << 20;
    if (auto it = f.extra.find("--max-frame-memory");
        it != f.extra.end() && (!corio::examples::parse_number(it->second.c_str(), 1ul << 40, memory) || memory == 0)) {
      throw std::invalid_argument("--max-frame-memory: not a valid value: \"" + it->second + "\"");
    }
    auto frames = std::make_shared<corio::net::MemoryBudget>(memory);
    return [idle, max_frame, frames](Connection& conn) -> task<void> {
      corio::net::MemoryBudget::Lease lease(*frames);
      corio::net::BufferedReader reader(conn.stream());
      corio::net::BufferedWriter writer(conn.stream());
      std::vector<char> payload;
      for (;;) {
        // Per request: a client that stops sending or stops reading for --idle-timeout is closed.
        const auto deadline = idle.count() > 0 ? Clock::now() + idle : Clock::time_point::max();
        reader.set_deadline(deadline);
        writer.set_deadline(deadline);
        if (!corio::net::frame_buffered(reader)) {  // about to wait for the client: send what is ready first
          auto flushed = co_await writer.flush();
          if (!flushed) co_return;
          if (reader.buffered() == 0) {  // between requests: a shutdown may end the connection here
            std::vector<char>().swap(payload);  // an idle connection holds none of the frame budget
            lease.release();
            if (!conn.idle()) co_return;
            auto more = co_await reader.await_data();
            if (!more || *more == 0) co_return;
            conn.busy();  // the next request has begun: a shutdown lets it finish
          }
        }
        auto got = co_await read_frame(reader, payload, max_frame, &lease);
        if (!got) {
          if (got.error().code == ENOBUFS) {  // under attack this repeats: say it once a second
            corio::log::limited(corio::log::Level::warning, "frame memory", std::chrono::seconds(1), "frame-server: %s: %s",
                                conn.stream().peer().to_string().c_str(), got.error().message().c_str());
          } else if (got.error().code == EMSGSIZE || got.error().code == EPROTO) {
            std::fprintf(stderr, "frame-server: %s: %s\n", conn.stream().peer().to_string().c_str(), got.error().message().c_str());
          }
          co_return;  // closes the connection
        }
        if (!*got) co_return;  // the client closed
        auto sent = co_await write_frame(writer, payload);
        if (!sent) co_return;
      }
    };
  }, {"--max-frame-memory"});
}
