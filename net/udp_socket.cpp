#include "corio/net/udp_socket.hpp"

#include <liburing.h>
#include <netinet/udp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "corio/net/net_metrics.hpp"
#include "corio/net/socket_options.hpp"
#include "corio/runtime/reactor.hpp"

namespace corio::net {

namespace {

// "receive on 127.0.0.1:5000 (socket closed): Operation canceled".
Error udp_error(const UdpSocket& s, std::string context, int res) {
  if (res == -ECANCELED && !s.is_open()) context += " (socket closed)";
  return make_error(res, std::move(context));
}

Error truncated(const UdpSocket& s, std::size_t length, const Address& from, std::size_t room) {
  Error e = explained_error(EMSGSIZE, "receive on " + s.local_address().to_string(),
                            "a datagram of " + std::to_string(length) + " B from " + from.to_string() +
                                " did not fit the " + std::to_string(room) + " B buffer (truncated)");
  e.transferred = std::min(length, room);
  return e;
}

Result<void> set_udp_option(int fd, int name, int value, const char* what, const Address& local) {
  if (::setsockopt(fd, SOL_UDP, name, &value, sizeof value) != 0) {
    return make_error(errno, std::string("setsockopt ") + what + " " + std::to_string(value) + " on " + local.to_string());
  }
  return {};
}

}  // namespace

SendToImpl::SendToImpl(const UdpSocket& s, const Address* to, std::span<const char> bytes, std::uint16_t segment) noexcept
    : socket(s), to(to != nullptr ? *to : Address()), bytes(bytes), segment(segment) {}

void SendToImpl::fill() noexcept {
  iov = {const_cast<char*>(bytes.data()), bytes.size()};  // NOLINT(cppcoreguidelines-pro-type-const-cast): sendmsg only reads
  msg = {};
  if (to.family() != AF_UNSPEC) {
    msg.msg_name = const_cast<sockaddr*>(to.sockaddr_ptr());  // NOLINT(cppcoreguidelines-pro-type-const-cast)
    msg.msg_namelen = to.length();
  }
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (segment > 0) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof segment);
    std::memcpy(CMSG_DATA(c), &segment, sizeof segment);
  }
}

void SendToImpl::prepare(io_uring_sqe& sqe) noexcept {
  fill();
  io_uring_prep_sendmsg(&sqe, socket->fd(), &msg, 0);
}

int SendToImpl::perform() noexcept {
  fill();
  ssize_t n = ::sendmsg(socket->fd(), &msg, MSG_DONTWAIT);
  return n >= 0 ? static_cast<int>(n) : -errno;
}

Readiness SendToImpl::readiness() const noexcept { return {socket->fd(), EPOLLOUT}; }

Result<std::size_t> SendToImpl::await_resume() const {
  if (result() < 0) {
    const std::string where = (to.family() != AF_UNSPEC ? to : socket->peer()).to_string();
    if (segment == 0) return udp_error(*socket, "send to " + where, result());
    const std::size_t n = (bytes.size() + segment - 1) / segment;
    return udp_error(*socket, "send " + std::to_string(n) + " segments of " + std::to_string(segment) + " B to " + where +
                                  " (UDP GSO)", result());
  }
  detail::net_metrics().sent.add(static_cast<std::uint64_t>(result()));
  return static_cast<std::size_t>(result());
}

void RecvFromImpl::fill() noexcept {
  iov = {buf.data(), buf.size()};
  msg = {};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof from;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  control = {};
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
}

void RecvFromImpl::prepare(io_uring_sqe& sqe) noexcept {
  fill();
  // MSG_TRUNC: the result is the datagram's length even when it did not fit, which is how it is reported.
  io_uring_prep_recvmsg(&sqe, socket->fd(), &msg, MSG_TRUNC);
}

int RecvFromImpl::perform() noexcept {
  fill();
  ssize_t n = ::recvmsg(socket->fd(), &msg, MSG_DONTWAIT | MSG_TRUNC);
  return n >= 0 ? static_cast<int>(n) : -errno;
}

Readiness RecvFromImpl::readiness() const noexcept { return {socket->fd(), EPOLLIN}; }

Result<Received> RecvFromImpl::await_resume() const {
  if (result() < 0) return udp_error(*socket, "receive on " + socket->local_address().to_string(), result());
  const auto n = static_cast<std::size_t>(result());
  const Address sender = Address::from(reinterpret_cast<const sockaddr*>(&from), msg.msg_namelen);  // NOLINT
  if (n > buf.size() || (msg.msg_flags & MSG_TRUNC)) return truncated(*socket, n, sender, buf.size());
  Received r{.bytes = buf.first(n), .from = sender};
  msghdr m = msg;  // (CMSG_NXTHDR takes it mutable)
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int size = 0;
      std::memcpy(&size, CMSG_DATA(c), sizeof size);
      r.segment_size = static_cast<std::size_t>(size);
    }
  }
  detail::net_metrics().received.add(n);
  return r;
}

UdpSocket& UdpSocket::operator=(UdpSocket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    gro_ = o.gro_;
    local_ = o.local_;
    peer_ = o.peer_;
  }
  return *this;
}

Result<UdpSocket> UdpSocket::open(const Address& at, const UdpOptions& options, bool connect) {
  const std::string what = (connect ? "connect " : "bind ") + at.to_string();
  int fd = ::socket(at.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(errno, what + ": socket");
  UdpSocket s;
  s.fd_ = fd;
  s.local_ = at;  // named in option errors until the bind says where it is
  auto failed = [&](const Error& e) { return make_error(e.code, what + ": " + e.context); };
  if (options.reuse_port) {
    if (auto r = set_reuseport(fd, true); !r) return failed(r.error());
  }
  if (options.send_buffer > 0) {
    if (auto r = set_send_buffer(fd, options.send_buffer); !r) return failed(r.error());
  }
  if (options.receive_buffer > 0) {
    if (auto r = set_receive_buffer(fd, options.receive_buffer); !r) return failed(r.error());
  }
  if (options.segment_size > 0) {
    if (auto r = s.set_segment_size(options.segment_size); !r) return failed(r.error());
  }
  if (options.gro) {
    if (auto r = s.set_gro(true); !r) return failed(r.error());
  }
  if (connect) {
    if (::connect(fd, at.sockaddr_ptr(), at.length()) != 0) return make_error(errno, what);
    s.peer_ = at;
  } else if (::bind(fd, at.sockaddr_ptr(), at.length()) != 0) {
    return make_error(errno, what);
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) return make_error(errno, what + ": getsockname");  // NOLINT
  s.local_ = Address::from(reinterpret_cast<const sockaddr*>(&bound), len);  // NOLINT
  return s;
}

Result<UdpSocket> UdpSocket::bind(const Address& local, const UdpOptions& options) { return open(local, options, false); }

Result<UdpSocket> UdpSocket::connect(const Address& peer, const UdpOptions& options) { return open(peer, options, true); }

Result<void> UdpSocket::set_segment_size(std::uint16_t size) const {
  return set_udp_option(fd_, UDP_SEGMENT, size, "UDP_SEGMENT", local_);
}

Result<void> UdpSocket::set_gro(bool on) {
  if (auto r = set_udp_option(fd_, UDP_GRO, on ? 1 : 0, "UDP_GRO", local_); !r) return r;
  gro_ = on;
  return {};
}

void UdpSocket::close() noexcept {
  if (fd_ < 0) return;
  // Off a reactor (a socket outliving its runtime) nothing can be pending: a plain close.
  if (Reactor* r = Reactor::current()) r->backend().close(fd_, users_ > 0);
  else ::close(fd_);
  fd_ = -1;
}

// DatagramStream

DatagramStream::DatagramStream(const UdpSocket& socket)
    : ArmedReceive(Reactor::current()->backend().features().multishot_recv),
      socket_(socket),
      pool_(&Reactor::current()->backend().datagram_buffers()) {}

DatagramStream::~DatagramStream() {
  retire_receive();  // an armed receive is cancelled; the backend settles its last completions
  while (count_ > 0) {
    Item item = pop();
    if (item.buf >= 0) pool_->give_back(static_cast<std::uint16_t>(item.buf));
  }
}

void DatagramStream::fill(char* data, std::size_t len) noexcept {
  iov_ = {data, len};
  msg_ = {};
  msg_.msg_name = &name_;
  msg_.msg_namelen = sizeof name_;
  msg_.msg_iov = &iov_;
  msg_.msg_iovlen = 1;
}

void DatagramStream::prepare(io_uring_sqe& sqe) noexcept {
  const int fd = socket_->fd();
  if (!pool_->kernel_selects()) {
    fill(pool_->data(static_cast<std::uint16_t>(held_)), pool_->buffer_size());
    io_uring_prep_recvmsg(&sqe, fd, &msg_, MSG_TRUNC);
    return;
  }
  if (multishot_) {
    // Only the lengths count: each picked buffer holds an io_uring_recvmsg_out, msg_namelen bytes of
    // name, msg_controllen of control (none), then the payload.
    msg_ = {};
    msg_.msg_namelen = sizeof name_;
    io_uring_prep_recvmsg_multishot(&sqe, fd, &msg_, MSG_TRUNC);
  } else {
    fill(nullptr, 0);  // length 0: the picked buffer's
    io_uring_prep_recvmsg(&sqe, fd, &msg_, MSG_TRUNC);
  }
  sqe.flags |= IOSQE_BUFFER_SELECT;
  sqe.buf_group = pool_->group();
}

int DatagramStream::perform() noexcept {
  if (held_ < 0) {
    try {
      held_ = pool_->take();
    } catch (const std::exception&) {
      return -ENOMEM;
    }
  }
  fill(pool_->data(static_cast<std::uint16_t>(held_)), pool_->buffer_size());
  ssize_t n = ::recvmsg(socket_->fd(), &msg_, MSG_DONTWAIT | MSG_TRUNC);
  if (n < 0 && errno == EAGAIN) {
    pool_->give_back(static_cast<std::uint16_t>(std::exchange(held_, -1)));  // wait holding nothing
    return -EAGAIN;
  }
  return n >= 0 ? static_cast<int>(n) : -errno;
}

Readiness DatagramStream::readiness() const noexcept { return {socket_->fd(), EPOLLIN}; }

std::span<const char> DatagramStream::lent() const noexcept {
  return {reinterpret_cast<const char*>(&msg_), sizeof msg_};  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
}

bool DatagramStream::wait(std::coroutine_handle<> waiter, const std::stop_token* token, Clock::time_point deadline) {
  if (socket_->gro()) return false;  // take() says why
  return ArmedReceive::wait(waiter, token, deadline);
}

DatagramStream::Item DatagramStream::parse(int res, int buf) noexcept {
  if (res < 0) return {.res = res, .buf = -1, .offset = 0, .length = 0, .from = {}};
  if (buf < 0) return {.res = 0, .buf = -1, .offset = 0, .length = 0, .from = Address::from(reinterpret_cast<const sockaddr*>(&name_), msg_.msg_namelen)};  // NOLINT
  char* data = pool_->data(static_cast<std::uint16_t>(buf));
  auto give_back = [&] { pool_->give_back(static_cast<std::uint16_t>(buf)); };
  if (pool_->kernel_selects() && multishot_) {
    io_uring_recvmsg_out* out = io_uring_recvmsg_validate(data, res, &msg_);
    if (out == nullptr) {
      give_back();
      return {.res = -EPROTO, .buf = -1, .offset = 0, .length = 0, .from = {}};
    }
    const Address from = Address::from(static_cast<const sockaddr*>(io_uring_recvmsg_name(out)),
                                       std::min<socklen_t>(out->namelen, msg_.msg_namelen));
    if (out->flags & MSG_TRUNC) {
      give_back();
      return {.res = -EMSGSIZE, .buf = -1, .offset = 0, .length = out->payloadlen, .from = from};
    }
    const auto* payload = static_cast<const char*>(io_uring_recvmsg_payload(out, &msg_));
    return {.res = static_cast<int>(io_uring_recvmsg_payload_length(out, res, &msg_)),
            .buf = buf,
            .offset = static_cast<std::uint32_t>(payload - data),
            .length = 0,
            .from = from};
  }
  // One datagram per receive: the payload at the buffer's start, the sender in name_.
  const Address from = Address::from(reinterpret_cast<const sockaddr*>(&name_), msg_.msg_namelen);  // NOLINT
  if (static_cast<std::uint32_t>(res) > pool_->buffer_size() || (msg_.msg_flags & MSG_TRUNC)) {
    give_back();
    return {.res = -EMSGSIZE, .buf = -1, .offset = 0, .length = static_cast<std::uint32_t>(res), .from = from};
  }
  return {.res = res, .buf = buf, .offset = 0, .length = 0, .from = from};
}

void DatagramStream::complete(int res, std::uint32_t flags) noexcept {
  int buf = -1;
  if (flags & IORING_CQE_F_BUFFER) {
    buf = static_cast<int>(flags >> IORING_CQE_BUFFER_SHIFT);
    pool_->lend(static_cast<std::uint16_t>(buf), res, flags);  // never incremental: a whole buffer
  } else if (held_ >= 0) {
    buf = std::exchange(held_, -1);
  }
  if (res < 0 && buf >= 0) pool_->give_back(static_cast<std::uint16_t>(std::exchange(buf, -1)));
  if (!(flags & IORING_CQE_F_MORE)) {
    armed_ = false;
    settled();
  }
  if (recovered(res)) return;
  push(parse(res, buf));
  pause_if_full(kMaxQueued);
  wake();
}

void DatagramStream::push(const Item& item) {
  if (count_ < kMaxQueued) {
    ring_[(head_ + count_) % kMaxQueued] = item;
  } else {
    if (!spill_) spill_ = std::make_unique<std::vector<Item>>();
    spill_->push_back(item);
  }
  ++count_;
}

DatagramStream::Item DatagramStream::pop() noexcept {
  Item item = ring_[head_];
  head_ = static_cast<std::uint8_t>((head_ + 1) % kMaxQueued);
  --count_;
  if (spill_ && !spill_->empty()) {  // the ring was full: refill its freed slot from the spill, in order
    ring_[(head_ + kMaxQueued - 1) % kMaxQueued] = spill_->front();
    spill_->erase(spill_->begin());
  }
  return item;
}

Result<Datagram> DatagramStream::take() {
  const std::string where = "receive on " + socket_->local_address().to_string();
  if (socket_->gro()) {
    return explained_error(EINVAL, where, "the socket has UDP_GRO on: coalesced datagrams need recv_from and a 64 KiB buffer");
  }
  int res;
  if (count_ > 0) {
    Item item = pop();
    if (item.res >= 0) {
      Datagram d{.payload = {}, .from = item.from};
      if (item.buf >= 0) {
        d.payload = RecvBuffer(*pool_, static_cast<std::uint16_t>(item.buf), item.offset + static_cast<std::uint32_t>(item.res));
        d.payload.consume(item.offset);
      }
      detail::net_metrics().received.add(static_cast<std::uint64_t>(item.res));
      return d;
    }
    if (item.res == -EMSGSIZE) {
      const std::size_t room = multishot_ ? pool_->buffer_size() - sizeof(io_uring_recvmsg_out) - sizeof name_ : pool_->buffer_size();
      return truncated(*socket_, item.length, item.from, room);
    }
    res = item.res;
  } else {
    res = idle_result() < 0 ? idle_result() : -EIO;
  }
  return udp_error(*socket_, where, res);
}

}  // namespace corio::net
