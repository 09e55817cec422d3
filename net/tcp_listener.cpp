#include "net/tcp_listener.hpp"

#include <liburing.h>
#include <unistd.h>

namespace corio::net {

void AcceptImpl::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_accept(&sqe, listener->fd(), reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_CLOEXEC);
}

Result<TcpStream> AcceptImpl::await_resume() {
  if (result() < 0) return make_error(result(), "accept on " + listener->local_address().to_string());
  TcpStream stream(result(), Address::from(reinterpret_cast<const sockaddr*>(&peer), peer_len));
  if (auto r = listener->options().accepted.apply(stream.fd()); !r) {
    return make_error(r.error().code, "accept from " + stream.peer().to_string() + ": " + r.error().context);
  }
  return stream;
}

Result<TcpListener> TcpListener::bind(const Address& at, ListenOptions options) {
  const std::string where = at.to_string();
  int fd = ::socket(at.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(errno, "socket for " + where);
  TcpListener l(fd, at, options);
  int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    return make_error(errno, "setsockopt SO_REUSEADDR on " + where);
  }
  if (l.options_.reuseport) {
    if (auto r = set_reuseport(fd, true); !r) return make_error(r.error().code, r.error().context + " on " + where);
  }
  if (::bind(fd, at.sockaddr_ptr(), at.length()) != 0) return make_error(errno, "bind " + where);
  if (::listen(fd, l.options_.backlog) != 0) return make_error(errno, "listen " + where);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) return make_error(errno, "getsockname " + where);
  l.local_ = Address::from(reinterpret_cast<const sockaddr*>(&bound), len);
  return l;
}

TcpListener::~TcpListener() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace corio::net
