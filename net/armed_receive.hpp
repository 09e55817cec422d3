// ArmedReceive: what RecvStream and DatagramStream share. One receive into the reactor's BufferPool kept
// armed (multishot where the kernel has it), its results queued for one reader, who awaits the next with a
// deadline and a stop. The stream says where its bytes come from (open(), pool(), buffer_waiter()) and keeps
// its own queue; this holds the reader's side, the pauses (too many unread, the ring dry) and the re-arming.
#pragma once
#include <coroutine>
#include <cstdint>
#include <stop_token>
#include <type_traits>

#include "corio/net/error.hpp"
#include "corio/runtime/buffer_pool.hpp"
#include "corio/runtime/operation.hpp"

namespace corio::net::detail {

class ArmedReceive : public Operation, private TimerEntry {
 public:
  ArmedReceive(const ArmedReceive&) = delete;
  ArmedReceive& operator=(const ArmedReceive&) = delete;

  // Whether a result is waiting, so that awaiting the next will not suspend.
  bool ready() const noexcept { return count_ > 0; }
  // Whether the kernel keeps this receive armed across completions.
  bool multishot() const noexcept { return multishot_; }

 protected:
  explicit ArmedReceive(bool multishot) noexcept : multishot_(multishot) {}
  ~ArmedReceive() = default;

  // The stream's side.
  virtual bool open() const noexcept = 0;  // its socket: closed ends the stream (ECANCELED)
  virtual BufferPool& pool() const noexcept = 0;
  virtual BufferWaiter& buffer_waiter() = 0;  // told when the pool has buffers again

  // First in the stream's destructor: leaves an armed receive to the backend and gives back what is held
  // outside the queue (the stream gives back its queue).
  void retire_receive() noexcept;
  // The reader: false when it need not suspend (a result, a stop, the end).
  bool wait(std::coroutine_handle<> waiter, const std::stop_token* token, Clock::time_point deadline);
  void arm();
  // A completion that is no result: a cancel (pause, stop, close), a dry ring (ENOBUFS: grow the pool or
  // wait for it), no multishot here (EINVAL). True when `res` was one of those and is dealt with.
  bool recovered(int res) noexcept;
  // Too many results unread: one cancel pauses the receive until the reader catches up.
  void pause_if_full(std::size_t max_queued) noexcept;
  void buffers_back() noexcept;
  void wake() noexcept;
  // What the reader gets with nothing queued: ECANCELED, ETIMEDOUT, else end_res_.
  int idle_result() const noexcept { return cancelled_ ? -ECANCELED : timed_out_ ? -ETIMEDOUT : end_res_; }
  Leftovers leftovers() noexcept override { return {.pool_buffer = std::exchange(held_, -1)}; }

  // (Laid out for size, after the bases: every idle connection holds one.)
  std::uint16_t count_ = 0;  // results queued
  std::uint8_t head_ = 0;    // the first of them in the stream's ring
  bool armed_ : 1 = false;
  bool multishot_ : 1;
  bool waiting_buffers_ : 1 = false;
  bool timed_out_ : 1 = false;
  bool cancelled_ : 1 = false;
  bool pausing_ : 1 = false;  // cancelled to pause: one cancel, however many results still arrive
  int held_ = -1;             // buffer taken for a receive we issue ourselves
  int end_res_ = 1;           // once <= 0: the stream ended (0) or failed (-errno); the reader gets it again

 private:
  void cancel_on_home() noexcept override;
  void resume_after_cancel() noexcept override { std::exchange(waiter_, {}).resume(); }
  void fire() noexcept override;  // deadline, or a stop seen while not armed
};

// The awaitable of a stream S's next result: S::take() gives it, S::wait() (ArmedReceive's, or one of its own
// in front) suspends for it.
template <class S, class T>
class NextResult {
 public:
  NextResult(S& s, Clock::time_point deadline) noexcept : s_(&s), deadline_(deadline) {}
  bool await_ready() const noexcept { return s_->ready(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> waiter) {
    const std::stop_token* token = nullptr;
    if constexpr (std::is_base_of_v<corio::detail::PromiseBase, P>) token = &waiter.promise().stop_token;
    return s_->wait(waiter, token, deadline_);
  }
  Result<T> await_resume() { return s_->take(); }

 protected:
  S* s_;

 private:
  Clock::time_point deadline_;
};

}  // namespace corio::net::detail
