#include "corio/net/tcp_listener.hpp"

#include <liburing.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "corio/runtime/reactor.hpp"

namespace corio::net {

namespace {
constexpr int kAcceptFlags = SOCK_CLOEXEC | SOCK_NONBLOCK;  // non-blocking: the epoll path needs it

int accept_now(int listener, sockaddr_storage* peer, socklen_t* len) noexcept {
  int fd = ::accept4(listener, reinterpret_cast<sockaddr*>(peer), len, kAcceptFlags);
  return fd >= 0 ? fd : -errno;
}
}  // namespace

void AcceptImpl::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_accept(&sqe, listener->fd(), reinterpret_cast<sockaddr*>(&peer), &peer_len, kAcceptFlags);
}

int AcceptImpl::perform() noexcept { return accept_now(listener->fd(), &peer, &peer_len); }

Readiness AcceptImpl::readiness() const noexcept { return {listener->fd(), EPOLLIN}; }

Result<TcpStream> AcceptImpl::await_resume() { return listener->adopt(result(), &peer, peer_len); }

AcceptStream::AcceptStream(const TcpListener& l) noexcept
    : listener_(&l), multishot_(l.options().multishot_accept && Reactor::current()->backend().features().multishot_accept) {}

AcceptStream::~AcceptStream() {
  retire();
  for (int fd : queue_) {
    if (fd >= 0) ::close(fd);
  }
}

void AcceptStream::prepare(io_uring_sqe& sqe) noexcept {
  if (multishot_) io_uring_prep_multishot_accept(&sqe, listener_->fd(), nullptr, nullptr, kAcceptFlags);
  else io_uring_prep_accept(&sqe, listener_->fd(), nullptr, nullptr, kAcceptFlags);
}

int AcceptStream::perform() noexcept { return accept_now(listener_->fd(), nullptr, nullptr); }

Readiness AcceptStream::readiness() const noexcept { return {listener_->fd(), EPOLLIN}; }

bool AcceptStream::wait(std::coroutine_handle<> waiter, const std::stop_token* token) {
  if (listener_->fd() < 0) {  // closed: nothing more to accept
    queue_.push_back(-ECANCELED);
    return false;
  }
  if (token != nullptr && token->stop_requested()) {
    queue_.push_back(-ECANCELED);
    return false;
  }
  waiter_ = waiter;
  if (!armed_) {
    armed_ = true;
    submit_on_current_reactor();
  }
  if (token != nullptr) watch(*token, reactor());
  return true;
}

void AcceptStream::complete(int res, std::uint32_t flags) noexcept {
  if (!(flags & IORING_CQE_F_MORE)) {
    armed_ = false;
    settled();
  }
  queue_.push_back(res);
  if (waiter_ && unwatch()) std::exchange(waiter_, {}).resume();
}

void AcceptStream::cancel_on_home() noexcept {
  if (armed_) reactor().backend().cancel(*this);  // ends with an ECANCELED completion
}

Result<TcpStream> AcceptStream::take() {
  int res = queue_.front();
  queue_.pop_front();
  return listener_->adopt(res, nullptr, 0);  // multishot accept cannot return peer addresses
}

Result<TcpStream> TcpListener::adopt(int res, const sockaddr_storage* peer, socklen_t peer_len) const {
  if (res < 0 && fd_ < 0) return make_error(ECANCELED, "accept on " + local_.to_string() + " (listener closed)");
  if (res < 0) return make_error(res, "accept on " + local_.to_string());
  sockaddr_storage asked{};
  if (peer == nullptr) {
    peer_len = sizeof asked;
    ::getpeername(res, reinterpret_cast<sockaddr*>(&asked), &peer_len);
    peer = &asked;
  }
  TcpStream stream(res, Address::from(reinterpret_cast<const sockaddr*>(peer), peer_len));
  if (auto r = options_.accepted.apply(stream.fd()); !r) {
    return make_error(r.error().code, "accept from " + stream.peer().to_string() + ": " + r.error().context);
  }
  return stream;
}

namespace {
// Whether a socket already listens on `at`: a bind without SO_REUSEPORT (with SO_REUSEADDR, so that
// connections in TIME_WAIT do not count) fails then.
Result<void> refuse_if_listened_on(const Address& at, const std::string& where) {
  int probe = ::socket(at.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return make_error(errno, "socket for " + where);
  int one = 1;
  ::setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const int rc = ::bind(probe, at.sockaddr_ptr(), at.length());
  const int err = errno;
  ::close(probe);
  if (rc == 0) return {};
  return make_error(err, "bind " + where + (err == EADDRINUSE ? " (another socket listens there; share_port joins it)" : ""));
}
}  // namespace

Result<TcpListener> TcpListener::bind(const Address& at, ListenOptions options) {
  const std::string where = at.to_string();
  if (options.reuseport && !options.share_port && at.port() != 0) {
    if (auto free = refuse_if_listened_on(at, where); !free) return free.error();
  }
  int fd = ::socket(at.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
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

void TcpListener::close() noexcept {
  if (fd_ < 0) return;
  if (Reactor* r = Reactor::current()) r->backend().close(fd_, true);
  else ::close(fd_);
  fd_ = -1;
}

}  // namespace corio::net
