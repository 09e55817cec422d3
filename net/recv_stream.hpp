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

#include "corio/net/error.hpp"
#include "corio/net/tcp_stream.hpp"
#include "corio/runtime/buffer_pool.hpp"
#include "corio/runtime/operation.hpp"

namespace corio::net {

class RecvStream final : public Operation, private TimerEntry {
 public:
  static constexpr std::size_t kMaxQueued = 3;

  explicit RecvStream(const TcpStream& stream);
  ~RecvStream();
  RecvStream(const RecvStream&) = delete;
  RecvStream& operator=(const RecvStream&) = delete;

  class Next {
   public:
    Next(RecvStream& s, Clock::time_point deadline) noexcept : s_(&s), deadline_(deadline) {}
    bool await_ready() const noexcept { return s_->count_ > 0; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> waiter) {
      const std::stop_token* token = nullptr;
      if constexpr (std::is_base_of_v<corio::detail::PromiseBase, P>) token = &waiter.promise().stop_token;
      return s_->wait(waiter, token, deadline_);
    }
    Result<RecvBuffer> await_resume() { return s_->take(); }

   protected:
    RecvStream* s_;

   private:
    Clock::time_point deadline_;
  };
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
  // Whether next() has a result waiting, so that awaiting it will not suspend (a server that coalesces
  // replies takes what is ready before it sends).
  bool ready() const noexcept { return count_ > 0; }
  // Whether the kernel keeps this receive armed across completions.
  bool multishot() const noexcept { return multishot_; }

 private:
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
  void cancel_on_home() noexcept override;
  void resume_after_cancel() noexcept override { std::exchange(waiter_, {}).resume(); }
  Leftovers leftovers() noexcept override;
  void fire() noexcept override;  // deadline, or a stop seen while not armed
  void buffers_available() noexcept;
  bool wait(std::coroutine_handle<> waiter, const std::stop_token* token, Clock::time_point deadline);
  void arm();
  void push(Item item);
  Item pop() noexcept;
  void wake() noexcept;
  Item take_raw() noexcept;
  Result<RecvBuffer> take();
  bool take_into(RecvBuffer& out) noexcept;
  static BufferPool& pool() noexcept;  // the reactor's: not a member, a few bytes per connection

  // (Laid out for size: every idle connection holds one.)
  StreamRef stream_;
  std::unique_ptr<Rare> rare_;
  // Arrivals not yet read: a small ring in place (no allocation per connection), spilling rarely.
  std::array<Item, kMaxQueued> ring_{};
  std::uint8_t head_ = 0;  // < kMaxQueued
  bool armed_ : 1 = false;
  bool multishot_ : 1;
  bool waiting_buffers_ : 1 = false;
  bool timed_out_ : 1 = false;
  bool cancelled_ : 1 = false;
  bool pausing_ : 1 = false;  // cancelled to pause: one cancel, however many buffers a bundle still brings
  std::uint16_t count_ = 0;  // in the ring, then in the spill
  int held_ = -1;            // buffer taken for a read we issue ourselves
  int slot_ = -1;            // the socket in the reactor's file table (io_uring), while this stream lives
  int end_res_ = 1;          // once <= 0: the stream ended (0) or failed (-errno); next() repeats it
};

}  // namespace corio::net
