// TcpStream: a connected TCP socket driven by the current reactor. Reads and writes are awaitables that
// yield Result values: end of stream is read_some() == 0, a reset is an Error (ECONNRESET), a deadline
// that passes is an Error with ETIMEDOUT; none throws.
//   auto conn = co_await TcpStream::connect(addr, 2s);
//   if (!conn) { log(conn.error().message()); co_return; }   // "connect 127.0.0.1:7000: Connection refused"
//   auto n = co_await conn->read_some(buf).timeout(5s);
#pragma once
#include <chrono>
#include <cstddef>
#include <optional>
#include <span>

#include "net/address.hpp"
#include "net/error.hpp"
#include "net/socket_options.hpp"
#include "runtime/operation.hpp"
#include "runtime/task.hpp"

namespace corio::net {

class TcpStream;

struct RecvImpl : Operation {
  RecvImpl(const TcpStream& s, std::span<char> buf) noexcept : stream(&s), buf(buf) {}
  void prepare(io_uring_sqe& sqe) noexcept override;
  int perform() noexcept override;
  Readiness readiness() const noexcept override;
  Result<std::size_t> await_resume() const;
  const TcpStream* stream;
  std::span<char> buf;
};

struct SendImpl : Operation {
  SendImpl(const TcpStream& s, std::span<const char> buf) noexcept : stream(&s), buf(buf) {}
  void prepare(io_uring_sqe& sqe) noexcept override;
  int perform() noexcept override;
  Readiness readiness() const noexcept override;
  Result<std::size_t> await_resume() const;
  const TcpStream* stream;
  std::span<const char> buf;
};

class TcpStream {
 public:
  TcpStream() = default;
  // Takes ownership of a connected socket.
  TcpStream(int fd, Address peer) noexcept : fd_(fd), peer_(peer) {}
  TcpStream(TcpStream&& o) noexcept : fd_(std::exchange(o.fd_, -1)), peer_(o.peer_) {}
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
  // Fills `buf` unless the stream ends first: returns the bytes read (< buf.size() only at end of stream).
  task<Result<std::size_t>> read_exact(std::span<char> buf, Clock::time_point deadline = Clock::time_point::max()) const;
  // Writes all of `buf`, across short writes.
  task<Result<void>> write_all(std::span<const char> buf, Clock::time_point deadline = Clock::time_point::max()) const;

  // Half-close: no more writes from this side (the peer reads end of stream); reads go on.
  Result<void> shutdown_write() const;
  void close() noexcept;

  int fd() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  const Address& peer() const noexcept { return peer_; }

 private:
  int fd_ = -1;
  Address peer_;
};

}  // namespace corio::net
