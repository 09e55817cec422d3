// What the example servers share: their flags, and a net::Server stopped by SIGINT/SIGTERM through
// net::shutdown_on_signal (a second signal cuts the drain short). An example supplies its connection handler:
//   int main(int argc, char** argv) { return corio::examples::run_server(argc, argv, "echo-server", make_handler); }
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>
#include <string>

#include "corio/net/server.hpp"
#include "corio/runtime/backend.hpp"
#include "corio/runtime/task.hpp"

namespace corio::examples {

struct ServerFlags {
  std::string listen = "127.0.0.1:7000";
  bool reuse_port = false;                        // --reuse-port: share a port another server listens on
  net::ServerOptions::Accept accept{};            // --accept reuse-port|least-loaded: how reactors get connections
  unsigned reactors = 0;                          // 0: one per CPU
  std::uint32_t max_conns = 0;                    // 0: no limit
  std::chrono::seconds idle_timeout{0};           // 0: none
  std::chrono::seconds drain_timeout{5};
  std::string metrics;                            // --metrics HOST:PORT: a Prometheus endpoint there
  std::uint32_t max_frame = 16u << 20;            // frame-server only
  BackendOptions backend;                         // --backend uring|epoll, --disable/--enable FEATURES
  std::map<std::string, std::string> extra;       // an example's own flags, by name ("--cert")
};

using Handler = net::Server::Handler;

// What an example runs in the runtime around its connections: `start` before the first accept (to build
// sharded state), `stop` once the last connection has ended.
struct ServerHooks {
  std::function<task<void>()> start;
  std::function<task<void>()> stop;
};

// Parses the flags (`--max-frame` only when `with_frames`; `extra` names an example's own flags, which
// land in ServerFlags::extra), starts the server, prints "listening on HOST:PORT", serves until
// SIGINT/SIGTERM, drains, prints its counters to stderr. make_handler may throw to refuse its flags (the
// message is printed, exit 1). Returns the process exit code: 0, or 1 when the drain was cut short (by a
// second signal or the drain timeout: connections were dropped).
int run_server(int argc, char** argv, const char* name, bool with_frames,
               const std::function<Handler(const ServerFlags&)>& make_handler,
               const std::vector<std::string>& extra = {}, const ServerHooks& hooks = {});

}  // namespace corio::examples
