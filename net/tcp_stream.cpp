#include "corio/net/tcp_stream.hpp"

#include "corio/net/net_metrics.hpp"

#include <liburing.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corio/runtime/reactor.hpp"
#include "corio/runtime/uring_flags.hpp"

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
  Readiness readiness() const noexcept override { return {.fd = fd, .events = EPOLLOUT, .once = true}; }
  // The kernel copies the address when it takes the submission, which may come after a frame destroyed
  // right after queueing it: lent, so that abandoning waits for the kernel.
  std::span<const char> lent() const noexcept override {
    return {reinterpret_cast<const char*>(to.sockaddr_ptr()), static_cast<std::size_t>(to.length())};
  }
  int fd;
  Address to;
  bool started = false;
};

}  // namespace

void RecvImpl::prepare(io_uring_sqe& sqe) noexcept {
  if (fixed_index >= 0) io_uring_prep_read_fixed(&sqe, stream->fd(), buf.data(), buf.size(), 0, fixed_index);
  else io_uring_prep_recv(&sqe, stream->fd(), buf.data(), buf.size(), 0);
}

int RecvImpl::perform() noexcept {
  ssize_t n = ::recv(stream->fd(), buf.data(), buf.size(), MSG_DONTWAIT);
  return n >= 0 ? static_cast<int>(n) : -errno;
}

Readiness RecvImpl::readiness() const noexcept { return {stream->fd(), EPOLLIN}; }

Error io_error(const TcpStream& s, const char* what, int res) {
  std::string context = std::string(what) + " " + s.peer().to_string();
  if (res == -ECANCELED && !s.is_open()) context += " (stream closed)";
  return make_error(res, std::move(context));
}

Result<std::size_t> RecvImpl::await_resume() const {
  if (result() < 0) return io_error(*stream, "read from", result());
  detail::net_metrics().received.add(static_cast<std::uint64_t>(result()));
  return static_cast<std::size_t>(result());
}

void SendImpl::prepare(io_uring_sqe& sqe) noexcept {
  const int fd = stream->fd();
  std::span<const char> rest = buf.subspan(done);
  // A zero-copy send ends only with the kernel's notification, which comes once the peer has taken the
  // bytes: a write that a deadline, a stop or close() may have to end sooner copies instead, and so does
  // every round after the kernel reported copying on this connection.
  mode.zero_copy = mode.zero_copy && !can_end_early() && !stream->zero_copy_disabled();
  if (mode.zero_copy) {
    io_uring_prep_send_zc(&sqe, fd, rest.data(), rest.size(), MSG_NOSIGNAL, mode.report_usage ? IORING_SEND_ZC_REPORT_USAGE : 0);
    if (mode.fixed_index >= 0) {
      sqe.ioprio |= IORING_RECVSEND_FIXED_BUF;
      sqe.buf_index = static_cast<std::uint16_t>(mode.fixed_index);
    }
  } else if (mode.fixed_index >= 0) {
    // WRITE_FIXED has no MSG_NOSIGNAL: the Runtime ignores SIGPIPE, so a closed peer is an EPIPE value.
    io_uring_prep_write_fixed(&sqe, fd, rest.data(), rest.size(), 0, mode.fixed_index);
  } else {
    io_uring_prep_send(&sqe, fd, rest.data(), rest.size(), MSG_NOSIGNAL | (mode.no_wait ? MSG_DONTWAIT : 0));
  }
}

void SendImpl::complete(int res, std::uint32_t flags) noexcept {
  if (flags & IORING_CQE_F_NOTIF) {  // the kernel is done with the buffer: now the send has ended
    if (static_cast<std::uint32_t>(res) & IORING_NOTIF_USAGE_ZC_COPIED) stream->disable_zero_copy();
    res = sent;
    flags = 0;
  } else if (flags & IORING_CQE_F_MORE) {  // a zero-copy send's result; its notification follows
    sent = res;
    return;
  }
  if (all && res == 0 && done < buf.size()) res = -EIO;  // TCP sends no 0 bytes of a non-empty message
  if (all && res > 0) {
    done += static_cast<std::size_t>(res);
    if (done < buf.size()) {
      // A short send: the rest goes in another round, unless a stop or a close() came meanwhile. Then
      // the operation ends stopped, having sent `done` bytes (never as a success).
      if (cancel_requested() || !stream->is_open()) {
        res = -ECANCELED;
      } else {
        submit_on_current_reactor();
        return;
      }
    }
  }
  Operation::complete(res, flags);
}

int SendImpl::perform() noexcept {
  for (;;) {
    std::span<const char> rest = buf.subspan(done);
    ssize_t n = ::send(stream->fd(), rest.data(), rest.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN && mode.no_wait) return 0;
    if (n < 0) return -errno;  // EAGAIN: wait for room; what was sent stays counted in done
    if (!all || static_cast<std::size_t>(n) == rest.size()) return static_cast<int>(n);
    if (n == 0) return -EIO;  // never loop on it
    done += static_cast<std::size_t>(n);
  }
}

Readiness SendImpl::readiness() const noexcept { return {stream->fd(), EPOLLOUT}; }

Result<std::size_t> SendImpl::await_resume() const {
  if (result() == -EAGAIN && mode.no_wait) return std::size_t{0};  // io_uring: MSG_DONTWAIT found no room
  if (result() < 0) return io_error(*stream, "write to", result());
  detail::net_metrics().sent.add(static_cast<std::uint64_t>(result()));
  return static_cast<std::size_t>(result());
}

namespace {
// How a write_all ends: every byte sent, or an Error saying how many the peer was sent.
Result<void> all_sent(const TcpStream& s, int res, std::size_t total, std::size_t done) {
  detail::net_metrics().sent.add(res >= 0 ? total : done);
  if (res >= 0) return {};
  Error e = io_error(s, "write to", res);
  e.transferred = done;
  return e;
}
}  // namespace

Result<void> SendAllImpl::await_resume() const { return all_sent(*stream, result(), buf.size(), done); }

SendvAllImpl::SendvAllImpl(const TcpStream& s, std::span<const iovec> p, Clock::time_point until) noexcept
    : stream(s), parts(p) {
  for (const iovec& v : parts) total += v.iov_len;
  deadline_ = until;
}

void SendvAllImpl::fill() noexcept {
  std::size_t n = 0;
  for (std::size_t i = next; i < parts.size() && n < kWindow; ++i) {
    const std::size_t from = i == next ? skip : 0;
    if (parts[i].iov_len == from) continue;
    window[n++] = {static_cast<char*>(parts[i].iov_base) + from, parts[i].iov_len - from};
  }
  msg.msg_iov = window.data();
  msg.msg_iovlen = n;
}

void SendvAllImpl::advance(std::size_t n) noexcept {
  done += n;
  while (n > 0 && next < parts.size()) {
    const std::size_t rest = parts[next].iov_len - skip;
    if (n < rest) {
      skip += n;
      return;
    }
    n -= rest;
    ++next;
    skip = 0;
  }
}

void SendvAllImpl::prepare(io_uring_sqe& sqe) noexcept {
  if (total == 0) {  // nothing to send: done, as on epoll, whatever state the socket is in
    io_uring_prep_nop(&sqe);
    return;
  }
  fill();
  io_uring_prep_sendmsg(&sqe, stream->fd(), &msg, MSG_NOSIGNAL);
}

void SendvAllImpl::complete(int res, std::uint32_t flags) noexcept {
  if (res == 0 && done < total) res = -EIO;  // as in SendImpl
  if (res > 0) {
    advance(static_cast<std::size_t>(res));
    if (done < total) {  // a short send: the rest in another round, unless a stop or a close() came
      if (!cancel_requested() && stream->is_open()) {
        submit_on_current_reactor();
        return;
      }
      res = -ECANCELED;
    }
  }
  Operation::complete(res < 0 ? res : 0, flags);
}

int SendvAllImpl::perform() noexcept {
  while (done < total) {
    fill();
    const ssize_t n = ::sendmsg(stream->fd(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) return -errno;  // EAGAIN: wait for room; what was sent stays counted
    if (n == 0) return -EIO;
    advance(static_cast<std::size_t>(n));
  }
  return 0;
}

Readiness SendvAllImpl::readiness() const noexcept { return {stream->fd(), EPOLLOUT}; }

Result<void> SendvAllImpl::await_resume() const { return all_sent(*stream, result(), total, done); }

TcpStream& TcpStream::operator=(TcpStream&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    peer_ = o.peer_;
    plain_sends_ = o.plain_sends_;
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

SendMode TcpStream::send_mode(std::size_t size, int fixed_index) const noexcept {
  const Features& f = Reactor::current()->backend().features();
  return {.zero_copy = f.send_zc && !plain_sends_ && size >= f.send_zc_threshold,
          .report_usage = f.send_zc_report,
          .fixed_index = fixed_index};
}

Op<SendImpl> TcpStream::write_fixed(const FixedBuffer& b, std::size_t len) const noexcept {
  std::span<const char> data = b.bytes().first(std::min(len, b.bytes().size()));
  return Op<SendImpl>(*this, data, send_mode(data.size(), b.index()));
}

Result<void> TcpStream::shutdown_write() const {
  if (::shutdown(fd_, SHUT_WR) != 0) return make_error(errno, "shutdown " + peer_.to_string());
  return {};
}

void TcpStream::reset_on_close() const noexcept {
  if (fd_ < 0) return;
  const linger now{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &now, sizeof now);
}

int TcpStream::release() noexcept {
  if (Reactor* r = Reactor::current(); r != nullptr && fd_ >= 0) r->backend().forget_descriptor(fd_);
  return std::exchange(fd_, -1);
}

void TcpStream::close() noexcept {
  if (fd_ < 0) return;
  // Off a reactor (a stream outliving its runtime) nothing can be pending: a plain close.
  if (Reactor* r = Reactor::current()) r->backend().close(fd_, users_ > 0);
  else ::close(fd_);
  fd_ = -1;
}

}  // namespace corio::net
