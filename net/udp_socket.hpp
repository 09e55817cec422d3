// UdpSocket: a UDP socket driven by the current reactor. send_to/send/recv_from are awaitables that yield
// Result values (a datagram that did not fit the buffer is an EMSGSIZE Error saying so, never a silent
// prefix); DatagramStream receives many datagrams with one multishot receive into the reactor's buffer
// ring where io_uring has it (one recvmsg per datagram elsewhere). GSO: a send with a segment size is one
// sendmsg the kernel cuts into datagrams; GRO: recv_from on a socket with UdpOptions::gro gets several
// datagrams coalesced, and Received::datagrams() cuts them apart again.
//   auto sock = UdpSocket::bind(*Address::parse("127.0.0.1:9000"));
//   DatagramStream rx(*sock);
//   for (;;) {
//     auto d = co_await rx.next();
//     if (!d) break;                                   // closed, stopped, or the socket's error
//     (void)co_await sock->send_to(d->from, d->bytes());
//   }
#pragma once
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "corio/net/address.hpp"
#include "corio/net/armed_receive.hpp"
#include "corio/net/error.hpp"
#include "corio/runtime/buffer_pool.hpp"

namespace corio::net {

class UdpSocket;

struct UdpOptions {
  bool reuse_port = false;         // SO_REUSEPORT: one socket per reactor on one port
  int send_buffer = 0;             // SO_SNDBUF; 0: the kernel's default
  int receive_buffer = 0;          // SO_RCVBUF; 0: the kernel's default
  std::uint16_t segment_size = 0;  // UDP_SEGMENT: every send is cut into datagrams of this size (GSO)
  bool gro = false;                // UDP_GRO: receives may coalesce datagrams (see Received)
};

// An operation's hold on its socket, counted so that close() knows whether any may be pending.
class UdpRef {
 public:
  explicit UdpRef(const UdpSocket& s) noexcept;
  ~UdpRef();
  UdpRef(const UdpRef&) = delete;
  UdpRef& operator=(const UdpRef&) = delete;
  const UdpSocket* operator->() const noexcept { return s_; }
  const UdpSocket& operator*() const noexcept { return *s_; }

 private:
  const UdpSocket* s_;
};

// What recv_from received: the bytes (in the caller's buffer) and who sent them. With GRO the bytes may
// be several datagrams of segment_size bytes each (the last one may be shorter): datagrams() yields them.
struct Received {
  std::span<char> bytes;
  Address from;
  std::size_t segment_size = 0;  // 0: one datagram

  class Datagrams {
   public:
    class iterator {
     public:
      iterator(const Datagrams* d, std::size_t i) noexcept : d_(d), i_(i) {}
      std::span<char> operator*() const noexcept {
        const std::size_t at = i_ * d_->step_;
        return d_->bytes_.subspan(at, std::min(d_->step_, d_->bytes_.size() - at));
      }
      iterator& operator++() noexcept {
        ++i_;
        return *this;
      }
      bool operator==(const iterator& o) const noexcept { return i_ == o.i_; }

     private:
      const Datagrams* d_;
      std::size_t i_;
    };
    Datagrams(std::span<char> bytes, std::size_t segment_size) noexcept
        : bytes_(bytes), step_(segment_size > 0 ? segment_size : std::max<std::size_t>(bytes.size(), 1)) {}
    iterator begin() const noexcept { return {this, 0}; }
    iterator end() const noexcept { return {this, size()}; }
    // One for an empty datagram.
    std::size_t size() const noexcept { return bytes_.empty() ? 1 : (bytes_.size() + step_ - 1) / step_; }

   private:
    std::span<char> bytes_;
    std::size_t step_;
  };
  // The datagrams in bytes: one, or with GRO each segment (an empty datagram is one empty span).
  Datagrams datagrams() const noexcept { return {bytes, segment_size}; }
};

struct SendToImpl : Operation {
  SendToImpl(const UdpSocket& s, const Address* to, std::span<const char> bytes, std::uint16_t segment) noexcept;
  void prepare(io_uring_sqe& sqe) noexcept override;
  int perform() noexcept override;
  Readiness readiness() const noexcept override;
  std::span<const char> lent() const noexcept override { return bytes; }
  // The bytes sent (all of them: a datagram goes whole or not at all).
  Result<std::size_t> await_resume() const;
  void fill() noexcept;
  UdpRef socket;
  Address to;  // empty: the connected peer
  std::span<const char> bytes;
  std::uint16_t segment;  // > 0: GSO, one UDP_SEGMENT cmsg
  // Read by the kernel while the send is in flight: here, with the operation.
  msghdr msg{};
  iovec iov{};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(std::uint16_t))> control{};
};

struct RecvFromImpl : Operation {
  RecvFromImpl(const UdpSocket& s, std::span<char> buf) noexcept : socket(s), buf(buf) {}
  void prepare(io_uring_sqe& sqe) noexcept override;
  int perform() noexcept override;
  Readiness readiness() const noexcept override;
  std::span<const char> lent() const noexcept override { return buf; }
  Result<Received> await_resume() const;
  void fill() noexcept;
  UdpRef socket;
  std::span<char> buf;
  // Written by the kernel: the sender, the control messages (UDP_GRO), the flags (MSG_TRUNC).
  msghdr msg{};
  iovec iov{};
  sockaddr_in6 from{};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int))> control{};
};

class UdpSocket {
 public:
  UdpSocket() = default;
  // (A socket moves with no operation alive on it.)
  UdpSocket(UdpSocket&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)), gro_(o.gro_), local_(o.local_), peer_(o.peer_) {}
  UdpSocket& operator=(UdpSocket&& o) noexcept;
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;
  ~UdpSocket() { close(); }

  // A socket bound to `local` (port 0: the kernel picks; local_address() says which). Errors name the
  // step and the address: "bind 127.0.0.1:53: Permission denied", "setsockopt UDP_GRO ...: ...".
  static Result<UdpSocket> bind(const Address& local, const UdpOptions& options = {});
  // A socket connected to `peer` (bound to a port the kernel picks): send() goes there, and only its
  // datagrams are received. ICMP errors from it (ECONNREFUSED) come back as receive and send errors.
  static Result<UdpSocket> connect(const Address& peer, const UdpOptions& options = {});

  // One datagram to `to`. With segment_size > 0, GSO: the kernel cuts `bytes` into datagrams of that size
  // (the last may be shorter) in one sendmsg. Takes .timeout(d), .deadline(t), .stop_token(t).
  Op<SendToImpl> send_to(const Address& to, std::span<const char> bytes, std::uint16_t segment_size = 0) const noexcept {
    return Op<SendToImpl>(*this, &to, bytes, segment_size);
  }
  // One datagram to the connected peer (as send_to otherwise).
  Op<SendToImpl> send(std::span<const char> bytes, std::uint16_t segment_size = 0) const noexcept {
    return Op<SendToImpl>(*this, nullptr, bytes, segment_size);
  }
  // One datagram into `buf`, with its sender. A datagram longer than `buf` is an EMSGSIZE Error naming
  // both sizes (its prefix is in buf, Error::transferred long). With GRO give a buffer of 64 KiB.
  Op<RecvFromImpl> recv_from(std::span<char> buf) const noexcept { return Op<RecvFromImpl>(*this, buf); }

  // UDP_SEGMENT on the socket: every send from now on is cut into datagrams of `size` bytes (0: off).
  // Fails with the kernel's errno (ENOPROTOOPT on kernels before 4.18), naming the option.
  Result<void> set_segment_size(std::uint16_t size) const;
  // UDP_GRO: let the kernel coalesce arriving datagrams (recv_from reports the segment size). A
  // DatagramStream refuses a GRO socket: its pool buffers are too small for coalesced datagrams.
  Result<void> set_gro(bool on);

  // Ends every operation pending on the socket (they fail with ECANCELED, "socket closed") and closes it
  // after them. The socket must outlive the operations on it: close() it, let them end, then let it go.
  void close() noexcept;

  int fd() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  bool gro() const noexcept { return gro_; }
  const Address& local_address() const noexcept { return local_; }
  // The connected peer (an empty Address, family AF_UNSPEC, when not connected).
  const Address& peer() const noexcept { return peer_; }

 private:
  friend class UdpRef;
  static constexpr std::uint16_t kManyUsers = 0xffff;
  static Result<UdpSocket> open(const Address& at, const UdpOptions& options, bool connect);
  int fd_ = -1;
  mutable std::uint16_t users_ = 0;
  bool gro_ = false;
  Address local_;
  Address peer_;
};

inline UdpRef::UdpRef(const UdpSocket& s) noexcept : s_(&s) {
  if (s.users_ < UdpSocket::kManyUsers) ++s.users_;
}
inline UdpRef::~UdpRef() {
  if (s_->users_ < UdpSocket::kManyUsers) --s_->users_;
}

// A datagram from a DatagramStream: its payload in a pool buffer (back to the pool when this goes), and
// its sender.
struct Datagram {
  RecvBuffer payload;
  Address from;
  std::span<char> bytes() const noexcept { return payload.bytes(); }
  std::size_t size() const noexcept { return payload.size(); }
};

// DatagramStream: datagrams with their senders, received into the reactor's BufferPool. On io_uring with
// the provided buffer ring and multishot receive it is one IORING_OP_RECVMSG with IORING_RECV_MULTISHOT:
// armed once, a completion per datagram, each buffer holding the kernel's io_uring_recvmsg_out header,
// the sender's address and the payload (so a datagram fits in buffer_size - 44 bytes; a longer one is an
// EMSGSIZE Error and the stream goes on). Elsewhere (epoll, the feature switched off) each next() is one
// recvmsg. At most kMaxQueued datagrams wait unread: beyond that the receive pauses (the kernel's socket
// buffer holds the rest, or drops them, as UDP does) until they are read. Closing the socket ends the
// stream (ECANCELED, "socket closed"); dropping an armed stream cancels its receive (and waits for the
// kernel's last completion: the kernel reads the stream's msghdr).
class DatagramStream final : public detail::ArmedReceive, private BufferWaiter {
 public:
  static constexpr std::size_t kMaxQueued = 64;

  explicit DatagramStream(const UdpSocket& socket);
  ~DatagramStream();

  using Next = detail::NextResult<DatagramStream, Datagram>;
  // The next datagram: ETIMEDOUT after `deadline` (the receive stays armed), ECANCELED when the awaiting
  // task is stopped or the socket closed, EMSGSIZE for a datagram too long for a pool buffer, the
  // socket's error otherwise (a stream goes on after each of these but a close).
  Next next(Clock::time_point deadline = Clock::time_point::max()) noexcept { return Next(*this, deadline); }

 private:
  friend Next;
  struct Item {
    int res;                // payload bytes, or -errno
    int buf;                // pool buffer when res >= 0 (-1: none, an empty datagram)
    std::uint32_t offset;   // where the payload starts in it
    std::uint32_t length;   // EMSGSIZE: the datagram's length
    Address from;
  };
  void prepare(io_uring_sqe& sqe) noexcept override;
  int perform() noexcept override;
  Readiness readiness() const noexcept override;
  void complete(int res, std::uint32_t flags) noexcept override;
  std::span<const char> lent() const noexcept override;
  bool open() const noexcept override { return socket_->is_open(); }
  BufferPool& pool() const noexcept override { return *pool_; }
  BufferWaiter& buffer_waiter() noexcept override { return *this; }
  void buffers_available() noexcept override { buffers_back(); }
  bool wait(std::coroutine_handle<> waiter, const std::stop_token* token, Clock::time_point deadline);
  void fill(char* data, std::size_t len) noexcept;
  Item parse(int res, int buf) noexcept;
  void push(const Item& item);
  Item pop() noexcept;
  Result<Datagram> take();

  UdpRef socket_;
  BufferPool* pool_;
  std::array<Item, kMaxQueued> ring_{};
  std::unique_ptr<std::vector<Item>> spill_;  // completions that came while the pause was on its way
  // Read by the kernel at submission (multishot: the name and control lengths that shape each buffer);
  // written by it for one-shot receives.
  msghdr msg_{};
  iovec iov_{};
  sockaddr_in6 name_{};
};

}  // namespace corio::net
