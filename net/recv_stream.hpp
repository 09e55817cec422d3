// RecvStream: receives a connection's bytes into its reactor's BufferPool, so that a connection waiting
// for data holds no buffer. On io_uring with a provided buffer ring it is one multishot receive: armed
// once, it yields a completion (with a kernel-picked buffer) per arrival until the connection ends. When
// the ring runs dry (ENOBUFS) the pool grows, or the receive waits for buffers to come back, and re-arms:
// no bytes are lost. Elsewhere (epoll, or the ring switched off) each next() takes a buffer and reads.
// At most kMaxQueued buffers wait unread per stream: beyond that it stops receiving until they are read,
// so one slow reader cannot drain the pool. Buffers the application keeps count against the pool: keeping
// all of them (BufferPoolOptions::limit) stops every receive on the reactor until one comes back, so copy
// out what you keep for long. On io_uring the stream registers its socket in the reactor's file table for
// its lifetime (the socket stays open until it goes). Closing the TcpStream ends the receive: next() then
// fails with ECANCELED (a stream waiting for pool buffers sees the close when they come back).
// Dropping an armed stream costs no system call: the backend settles the receive's last completions.
//   RecvStream rx(conn);
//   for (;;) {
//     auto chunk = co_await rx.next(Clock::now() + 30s);
//     if (!chunk || chunk->empty()) break;          // error, timeout, or end of stream
//     co_await conn.write_all(chunk->bytes());      // the buffer returns to the pool when chunk goes
//   }
// next_into(buffer) is the same receive for a frame that many idle connections keep: it yields a bool and
// leaves no Result in the frame while it waits (status() says why it returned false).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "corio/net/armed_receive.hpp"
#include "corio/net/error.hpp"
#include "corio/net/tcp_stream.hpp"
#include "corio/runtime/buffer_pool.hpp"

namespace corio::net {

class RecvStream final : public detail::ArmedReceive {
 public:
  static constexpr std::size_t kMaxQueued = 3;

  explicit RecvStream(const TcpStream& stream);
  ~RecvStream();

  using Next = detail::NextResult<RecvStream, RecvBuffer>;
  // The next bytes received: an empty buffer at end of stream; ETIMEDOUT after `deadline` (the receive
  // stays armed), ECANCELED when the awaiting task is stopped, the socket's error otherwise.
  Next next(Clock::time_point deadline = Clock::time_point::max()) noexcept { return Next(*this, deadline); }

  class NextInto : private Next {
   public:
    NextInto(RecvStream& s, RecvBuffer& out, Clock::time_point deadline) noexcept : Next(s, deadline), out_(&out) {}
    using Next::await_ready;
    using Next::await_suspend;
    bool await_resume() noexcept { return s_->take_into(*out_); }

   private:
    RecvBuffer* out_;
  };
  // next() into `out` (what it held goes back to the pool first): true with bytes; false at the end of the
  // stream, on ETIMEDOUT, ECANCELED or the socket's error, which status() then gives.
  NextInto next_into(RecvBuffer& out, Clock::time_point deadline = Clock::time_point::max()) noexcept {
    return NextInto(*this, out, deadline);
  }
  // Why next_into() last returned false: ok at the end of the stream, else the error next() would have
  // returned.
  Result<void> status() const;
  // ready() (ArmedReceive's): a server that coalesces replies takes what is ready before it sends.

 private:
  friend Next;
  struct Item {
    int res;               // bytes, 0 at end of stream, or -errno
    std::uint16_t buf;     // pool buffer when res > 0
    std::uint16_t offset;  // where the bytes start in it (an incremental ring's slice; buffers <= 64 KiB)
  };
  // What only a stream that ran ahead of its reader, or out of pool buffers, needs: out of line, so that
  // every connection does not carry it.
  struct Rare;
  void prepare(io_uring_sqe& sqe) noexcept override;
  int perform() noexcept override;
  Readiness readiness() const noexcept override;
  void complete(int res, std::uint32_t flags) noexcept override;
  bool open() const noexcept override { return stream_->is_open(); }
  // The reactor's: not a member, a few bytes per connection.
  BufferPool& pool() const noexcept override;
  BufferWaiter& buffer_waiter() override;
  void push(Item item);
  Item pop() noexcept;
  Item take_raw() noexcept;
  Result<RecvBuffer> take();
  bool take_into(RecvBuffer& out) noexcept;

  // (Laid out for size: slot_ fills the base's tail.)
  int slot_ = -1;  // the socket in the reactor's file table (io_uring), while this stream lives
  StreamRef stream_;
  std::unique_ptr<Rare> rare_;
  // Arrivals not yet read: a small ring in place (no allocation per connection), spilling rarely.
  std::array<Item, kMaxQueued> ring_{};
};

}  // namespace corio::net
