// TcpStream: a connected TCP socket driven by the current reactor. Reads and writes are awaitables that
// yield Result values: end of stream is read_some() == 0, a reset is an Error (ECONNRESET), a deadline
// that passes is an Error with ETIMEDOUT; none throws.
//   auto conn = co_await TcpStream::connect(addr, 2s);
//   if (!conn) { log(conn.error().message()); co_return; }   // "connect 127.0.0.1:7000: Connection refused"
//   auto n = co_await conn->read_some(buf).timeout(5s);
#pragma once
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <span>

#include "corio/net/address.hpp"
#include "corio/net/error.hpp"
#include "corio/net/socket_options.hpp"
#include "corio/runtime/fixed_buffers.hpp"
#include "corio/runtime/operation.hpp"
#include "corio/runtime/task.hpp"

namespace corio::net {

class TcpStream;

// An operation's hold on its stream: counted while the operation lives, so that close() knows whether
// any may be pending (see TcpStream::close).
class StreamRef {
 public:
  explicit StreamRef(const TcpStream& s) noexcept;
  ~StreamRef();
  StreamRef(const StreamRef&) = delete;
  StreamRef& operator=(const StreamRef&) = delete;
  const TcpStream* operator->() const noexcept { return s_; }
  const TcpStream& operator*() const noexcept { return *s_; }

 private:
  const TcpStream* s_;
};

struct RecvImpl : Operation {
  RecvImpl(const TcpStream& s, std::span<char> buf, int fixed_index = -1) noexcept
      : stream(s), buf(buf), fixed_index(fixed_index) {}
  void prepare(io_uring_sqe& sqe) noexcept override;
  int perform() noexcept override;
  Readiness readiness() const noexcept override;
  std::span<const char> lent() const noexcept override { return buf; }
  Result<std::size_t> await_resume() const;
  StreamRef stream;
  std::span<char> buf;
  int fixed_index;  // READ_FIXED from this registered buffer, when >= 0
};

// How a send is issued on io_uring: zero-copy (IORING_OP_SEND_ZC: the operation ends only when the
// kernel's notification says the buffer is free again), and/or from a registered buffer.
struct SendMode {
  bool zero_copy = false;
  bool report_usage = false;  // ask the kernel whether it copied anyway
  int fixed_index = -1;
  bool no_wait = false;       // take what the socket has room for now: 0 bytes rather than a wait
};

struct SendImpl : Operation {
  SendImpl(const TcpStream& s, std::span<const char> buf, SendMode mode = {}) noexcept
      : stream(s), buf(buf), mode(mode) {}
  void prepare(io_uring_sqe& sqe) noexcept override;
  int perform() noexcept override;
  Readiness readiness() const noexcept override;
  std::span<const char> lent() const noexcept override { return buf; }
  void complete(int res, std::uint32_t flags) noexcept override;
  Result<std::size_t> await_resume() const;
  StreamRef stream;
  std::span<const char> buf;
  SendMode mode;
  int sent = 0;           // a zero-copy send's result, held until its notification
  bool all = false;       // SendAllImpl: re-issue after a short send until every byte is out
  std::size_t done = 0;   // bytes sent by earlier rounds (all), and by the last one once it ends
};

// write_all(): one operation that re-issues itself after short sends (no task frame per write). Stopped,
// timed out or failed part-way, it is an Error whose `transferred` says how many bytes the peer was sent.
struct SendAllImpl : SendImpl {
  SendAllImpl(const TcpStream& s, std::span<const char> buf, SendMode mode, Clock::time_point until) noexcept
      : SendImpl(s, buf, mode) {
    all = true;
    deadline_ = until;
  }
  Result<void> await_resume() const;
};

// write_all() of several buffers in order: one sendmsg of up to kWindow of them a round, re-issued after
// a short send, so that replies ready together go out in one system call. Ends as SendAllImpl does.
struct SendvAllImpl : Operation {
  static constexpr std::size_t kWindow = 8;
  SendvAllImpl(const TcpStream& s, std::span<const iovec> parts, Clock::time_point until) noexcept;
  void prepare(io_uring_sqe& sqe) noexcept override;
  int perform() noexcept override;
  Readiness readiness() const noexcept override;
  // The kernel reads the message header and its iovecs when it takes the submission, and the parts'
  // bytes as it sends (only whether something is lent matters: abandoning then waits for the kernel).
  std::span<const char> lent() const noexcept override {
    return {reinterpret_cast<const char*>(&msg), sizeof msg};  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
  }
  void complete(int res, std::uint32_t flags) noexcept override;
  Result<void> await_resume() const;
  void fill() noexcept;               // the window: the parts from `next`, less what was sent of it
  void advance(std::size_t n) noexcept;  // `n` more bytes went out
  StreamRef stream;
  std::span<const iovec> parts;
  std::size_t next = 0;  // the first part not all sent
  std::size_t skip = 0;  // bytes of parts[next] sent
  std::size_t done = 0;
  std::size_t total = 0;
  std::array<iovec, kWindow> window{};
  msghdr msg{};
};

class TcpStream {
 public:
  TcpStream() = default;
  // Takes ownership of a connected socket.
  TcpStream(int fd, Address peer) noexcept : fd_(fd), peer_(peer) {}
  // (A stream moves with no operation alive on it.)
  TcpStream(TcpStream&& o) noexcept : fd_(std::exchange(o.fd_, -1)), plain_sends_(o.plain_sends_), peer_(o.peer_) {}
  TcpStream& operator=(TcpStream&& o) noexcept;
  TcpStream(const TcpStream&) = delete;
  TcpStream& operator=(const TcpStream&) = delete;
  ~TcpStream() { close(); }

  // Connects to `to`, failing with ETIMEDOUT after `timeout` (none: the kernel's own SYN retries).
  static task<Result<TcpStream>> connect(Address to, std::optional<Clock::duration> timeout = std::nullopt,
                                         SocketOptions options = {});

  // One receive: bytes read, 0 at end of stream. Takes .timeout(d), .deadline(t), .stop_token(t).
  Op<RecvImpl> read_some(std::span<char> buf) const noexcept { return Op<RecvImpl>(*this, buf); }
  // One send (may be short). MSG_NOSIGNAL: a closed peer is an EPIPE value, never SIGPIPE.
  Op<SendImpl> write_some(std::span<const char> buf) const noexcept { return Op<SendImpl>(*this, buf); }
  // One send that never waits: what the socket has room for now is sent, 0 when it has none. Needs no
  // deadline, so it costs no timer: a server sends a response this way, then write_all()s any rest with
  // its write timeout.
  Op<SendImpl> try_write(std::span<const char> buf) const noexcept {
    return Op<SendImpl>(*this, buf, SendMode{.no_wait = true});
  }
  // Fills `buf` unless the stream ends first: returns the bytes read (< buf.size() only at end of stream).
  task<Result<std::size_t>> read_exact(std::span<char> buf, Clock::time_point deadline = Clock::time_point::max()) const;
  // One receive into a registered buffer (READ_FIXED), up to `max` bytes.
  Op<RecvImpl> read_fixed(const FixedBuffer& b, std::size_t max) const noexcept {
    return Op<RecvImpl>(*this, b.bytes().first(std::min(max, b.bytes().size())), b.index());
  }
  // One send of the first `len` bytes of a registered buffer: WRITE_FIXED, or a zero-copy send from it at
  // or above the backend's send_zc_threshold.
  Op<SendImpl> write_fixed(const FixedBuffer& b, std::size_t len) const noexcept;
  // Writes all of `buf`, across short writes; zero-copy sends for the parts of at least send_zc_threshold
  // bytes where the kernel has them (until the kernel reports it copies anyway, as it does on loopback),
  // unless the write has a deadline or a stop token that can fire: a zero-copy send ends only when the
  // peer has taken the bytes, which a deadline cannot hurry. (After one that timed out on a peer that
  // stopped reading, a server may reset_on_close(): the kernel then drops what the peer left.)
  Op<SendAllImpl> write_all(std::span<const char> buf, Clock::time_point deadline = Clock::time_point::max()) const noexcept {
    return Op<SendAllImpl>(*this, buf, send_mode(buf.size(), -1), deadline);
  }
  // Writes every byte of `parts`, in order, gathered into one sendmsg (8 parts at a time): several replies
  // that are ready together, or a header and a body, without copying them into one buffer. Never
  // zero-copy. `parts` and their bytes must stay valid until it completes.
  Op<SendvAllImpl> write_all(std::span<const iovec> parts, Clock::time_point deadline = Clock::time_point::max()) const noexcept {
    return Op<SendvAllImpl>(*this, parts, deadline);
  }

  // Half-close: no more writes from this side (the peer reads end of stream); reads go on.
  Result<void> shutdown_write() const;
  // Ends every operation pending on the stream (its reads, writes and RecvStreams fail with ECANCELED,
  // "stream closed") and closes the socket after them, so the peer sees the end of the stream (once a
  // RecvStream on it, which holds it in the reactor's file table, is gone too). Destroying the stream
  // closes it as well, but the stream must outlive the operations on it: close() it, let them end, then
  // let it go. (A zero-copy write_all, one with no deadline or stop, still ends only once
  // the kernel's notification frees its buffer.)
  void close() noexcept;
  // Makes the close, whenever it comes, a reset (SO_LINGER 0): what is still unsent is dropped at once,
  // bytes write_all reported sent included. For a peer that stopped reading: a plain close would leave
  // the kernel holding its unsent bytes, and the end of stream queued behind them, until the peer reads or
  // TCP gives up.
  void reset_on_close() const noexcept;

  int fd() const noexcept { return fd_; }
  // Gives the descriptor up without closing it, to hand it to another reactor (make a TcpStream of it
  // there): on the reactor it was used on, while no operation or RecvStream uses it. This reactor's backend
  // forgets it. (A stream moved to another reactor as an object is fine too, unless it waited here on the
  // epoll backend for anything but its connect: release it instead.)
  int release() noexcept;
  bool is_open() const noexcept { return fd_ >= 0; }
  const Address& peer() const noexcept { return peer_; }
  // write_all() sends plainly from now on: the kernel reported a zero-copy send on this connection as copied,
  // or the socket carries kernel TLS (which takes no zero-copy sends).
  bool zero_copy_disabled() const noexcept { return plain_sends_; }
  void disable_zero_copy() const noexcept { plain_sends_ = true; }

 private:
  friend class StreamRef;
  // A count of live operations that stops counting (stays "some") once it reaches kManyUsers.
  static constexpr std::uint16_t kManyUsers = 0xffff;
  SendMode send_mode(std::size_t size, int fixed_index) const noexcept;
  int fd_ = -1;
  mutable bool plain_sends_ = false;
  mutable std::uint16_t users_ = 0;
  Address peer_;
};

inline StreamRef::StreamRef(const TcpStream& s) noexcept : s_(&s) {
  if (s.users_ < TcpStream::kManyUsers) ++s.users_;
}
inline StreamRef::~StreamRef() {
  if (s_->users_ < TcpStream::kManyUsers) --s_->users_;
}

// The Error of a failed read or write on `s`: "read from 127.0.0.1:5000: Connection reset by peer", and
// "(stream closed)" for an operation that close() cancelled.
Error io_error(const TcpStream& s, const char* what, int res);

}  // namespace corio::net
