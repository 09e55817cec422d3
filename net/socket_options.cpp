#include "corio/net/socket_options.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <string>

namespace corio::net {

namespace {

template <class T>
Result<void> set(int fd, int level, int name, const T& value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
    return make_error(errno, std::string("setsockopt ") + what);
  }
  return {};
}

Result<int> set_buffer(int fd, int name, int bytes, const char* what) {
  if (auto r = set(fd, SOL_SOCKET, name, bytes, what); !r) return r.error();
  int granted = 0;
  socklen_t len = sizeof granted;
  if (::getsockopt(fd, SOL_SOCKET, name, &granted, &len) != 0) {
    return make_error(errno, std::string("getsockopt ") + what);
  }
  return granted;
}

}  // namespace

Result<void> set_nodelay(int fd, bool on) { return set(fd, IPPROTO_TCP, TCP_NODELAY, int{on}, "TCP_NODELAY"); }

Result<int> set_send_buffer(int fd, int bytes) { return set_buffer(fd, SO_SNDBUF, bytes, "SO_SNDBUF"); }

Result<int> set_receive_buffer(int fd, int bytes) { return set_buffer(fd, SO_RCVBUF, bytes, "SO_RCVBUF"); }

Result<void> set_keepalive(int fd, std::chrono::seconds idle, std::chrono::seconds interval, int count) {
  if (auto r = set(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"); !r) return r;
  if (auto r = set(fd, IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(idle.count()), "TCP_KEEPIDLE"); !r) return r;
  if (auto r = set(fd, IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(interval.count()), "TCP_KEEPINTVL"); !r) {
    return r;
  }
  return set(fd, IPPROTO_TCP, TCP_KEEPCNT, count, "TCP_KEEPCNT");
}

Result<void> set_reuseport(int fd, bool on) { return set(fd, SOL_SOCKET, SO_REUSEPORT, int{on}, "SO_REUSEPORT"); }

Result<void> set_linger(int fd, std::optional<std::chrono::seconds> linger) {
  ::linger l{linger.has_value() ? 1 : 0, linger ? static_cast<int>(linger->count()) : 0};
  return set(fd, SOL_SOCKET, SO_LINGER, l, "SO_LINGER");
}

Result<void> SocketOptions::apply(int fd) const {
  if (auto r = set_nodelay(fd, nodelay); !r) return r;
  if (send_buffer > 0) {
    if (auto r = set_send_buffer(fd, send_buffer); !r) return r.error();
  }
  if (receive_buffer > 0) {
    if (auto r = set_receive_buffer(fd, receive_buffer); !r) return r.error();
  }
  if (keepalive) {
    if (auto r = set_keepalive(fd, keepalive->idle, keepalive->interval, keepalive->count); !r) return r;
  }
  if (linger) return set_linger(fd, linger);
  return {};
}

}  // namespace corio::net
