#include "net/tcp_stream.hpp"

#include <liburing.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace corio::net {

namespace {

struct ConnectImpl : Operation {
  ConnectImpl(int fd, const Address& to) noexcept : fd(fd), to(to) {}
  void prepare(io_uring_sqe& sqe) noexcept override { io_uring_prep_connect(&sqe, fd, to.sockaddr_ptr(), to.length()); }
  // Readiness path: start a non-blocking connect, then wait for writability and read its outcome.
  int perform() noexcept override {
    if (!started) {
      started = true;
      if (::connect(fd, to.sockaddr_ptr(), to.length()) == 0) return 0;
      return errno == EINPROGRESS ? -EAGAIN : -errno;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
    return err == 0 ? 0 : -err;
  }
  Readiness readiness() const noexcept override { return {fd, EPOLLOUT}; }
  int fd;
  Address to;  // read by the kernel: lives as long as the operation
  bool started = false;
};

}  // namespace

void RecvImpl::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_recv(&sqe, stream->fd(), buf.data(), buf.size(), 0);
}

int RecvImpl::perform() noexcept {
  ssize_t n = ::recv(stream->fd(), buf.data(), buf.size(), MSG_DONTWAIT);
  return n >= 0 ? static_cast<int>(n) : -errno;
}

Readiness RecvImpl::readiness() const noexcept { return {stream->fd(), EPOLLIN}; }

Result<std::size_t> RecvImpl::await_resume() const {
  if (result() < 0) return make_error(result(), "read from " + stream->peer().to_string());
  return static_cast<std::size_t>(result());
}

void SendImpl::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_send(&sqe, stream->fd(), buf.data(), buf.size(), MSG_NOSIGNAL);
}

int SendImpl::perform() noexcept {
  ssize_t n = ::send(stream->fd(), buf.data(), buf.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  return n >= 0 ? static_cast<int>(n) : -errno;
}

Readiness SendImpl::readiness() const noexcept { return {stream->fd(), EPOLLOUT}; }

Result<std::size_t> SendImpl::await_resume() const {
  if (result() < 0) return make_error(result(), "write to " + stream->peer().to_string());
  return static_cast<std::size_t>(result());
}

TcpStream& TcpStream::operator=(TcpStream&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    peer_ = o.peer_;
  }
  return *this;
}

task<Result<TcpStream>> TcpStream::connect(Address to, std::optional<Clock::duration> timeout, SocketOptions options) {
  const std::string what = "connect " + to.to_string();
  int fd = ::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) co_return make_error(errno, what + ": socket");
  TcpStream stream(fd, to);
  if (auto r = options.apply(fd); !r) co_return make_error(r.error().code, what + ": " + r.error().context);
  Op<ConnectImpl> op(fd, to);
  int res = co_await op.deadline(timeout ? Clock::now() + *timeout : Clock::time_point::max());
  if (res < 0) co_return make_error(res, what);
  co_return std::move(stream);
}

task<Result<std::size_t>> TcpStream::read_exact(std::span<char> buf, Clock::time_point deadline) const {
  std::size_t got = 0;
  while (got < buf.size()) {
    auto r = co_await read_some(buf.subspan(got)).deadline(deadline);
    if (!r) co_return r.error();
    if (*r == 0) break;  // end of stream
    got += *r;
  }
  co_return got;
}

task<Result<void>> TcpStream::write_all(std::span<const char> buf, Clock::time_point deadline) const {
  std::size_t sent = 0;
  while (sent < buf.size()) {
    auto r = co_await write_some(buf.subspan(sent)).deadline(deadline);
    if (!r) co_return r.error();
    sent += *r;
  }
  co_return Result<void>{};
}

Result<void> TcpStream::shutdown_write() const {
  if (::shutdown(fd_, SHUT_WR) != 0) return make_error(errno, "shutdown " + peer_.to_string());
  return {};
}

void TcpStream::close() noexcept {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

}  // namespace corio::net
