// Socket-option helpers. Each returns an Error naming the option on failure; the buffer setters return
// the size the kernel actually granted (Linux doubles the request, within net.core.[rw]mem_max).
//   SocketOptions opts{.nodelay = true, .keepalive = Keepalive{30s, 10s, 3}};
//   if (auto r = opts.apply(fd); !r) log(r.error().message());
#pragma once
#include <chrono>
#include <optional>

#include "corio/net/error.hpp"

namespace corio::net {

Result<void> set_nodelay(int fd, bool on);
Result<int> set_send_buffer(int fd, int bytes);
Result<int> set_receive_buffer(int fd, int bytes);
// SO_KEEPALIVE with TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT: probe after `idle` of silence, every
// `interval`, and drop the connection after `count` unanswered probes.
Result<void> set_keepalive(int fd, std::chrono::seconds idle, std::chrono::seconds interval, int count);
Result<void> set_reuseport(int fd, bool on);
// SO_LINGER: nullopt turns lingering off; 0 s makes close() send a reset.
Result<void> set_linger(int fd, std::optional<std::chrono::seconds> linger);

struct Keepalive {
  std::chrono::seconds idle{30};
  std::chrono::seconds interval{10};
  int count = 3;
};

// What a listener applies to every accepted socket (and connect to its own).
struct SocketOptions {
  bool nodelay = true;
  int send_buffer = 0;     // 0: the kernel's default
  int receive_buffer = 0;  // 0: the kernel's default
  std::optional<Keepalive> keepalive;
  std::optional<std::chrono::seconds> linger;
  Result<void> apply(int fd) const;
};

}  // namespace corio::net
