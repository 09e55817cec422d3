#include "corio/net/armed_receive.hpp"

#include "corio/runtime/reactor.hpp"

namespace corio::net::detail {

void ArmedReceive::retire_receive() noexcept {
  retire();  // an armed receive is left to the backend, with the buffer it holds (leftovers())
  if (TimerEntry::armed()) Reactor::current()->timers().disarm(*this);
  if (waiting_buffers_) pool().unwait(buffer_waiter());
  if (held_ >= 0) pool().give_back(static_cast<std::uint16_t>(std::exchange(held_, -1)));
}

bool ArmedReceive::wait(std::coroutine_handle<> waiter, const std::stop_token* token, Clock::time_point deadline) {
  timed_out_ = false;
  cancelled_ = false;
  if (token != nullptr && token->stop_requested()) {
    cancelled_ = true;
    return false;
  }
  if (end_res_ <= 0) return false;
  if (!open()) {
    end_res_ = -ECANCELED;  // closed: nothing to receive
    return false;
  }
  waiter_ = waiter;
  if (!armed_ && !waiting_buffers_) arm();
  Reactor& home = *Reactor::current();
  if (deadline != Clock::time_point::max()) home.timers().arm(*this, deadline);
  if (token != nullptr) watch(*token, home);
  return true;
}

void ArmedReceive::arm() {
  // Closed (close() cancelled the receive, or came while it waited for buffers): the stream ends, as
  // close() says.
  if (!open()) {
    end_res_ = -ECANCELED;
    wake();
    return;
  }
  if (held_ < 0 && !pool().kernel_selects()) held_ = pool().take();
  armed_ = true;
  pausing_ = false;
  submit_on_current_reactor();
}

bool ArmedReceive::recovered(int res) noexcept {
  if (res != -ECANCELED && res != -ENOBUFS && (res != -EINVAL || !multishot_)) return false;
  if (res == -ENOBUFS && !pool().grow()) {  // the ring is at its size: wait for buffers to come back
    waiting_buffers_ = true;
    pool().wait(buffer_waiter());
    return true;
  }
  if (res == -EINVAL) multishot_ = false;  // this kernel has no multishot receive
  // ECANCELED: our own pause (too many unread), a stop (fire() reports it), or close() (arm() ends the
  // stream).
  if (waiter_ && !armed_ && !cancelled_) arm();
  return true;
}

void ArmedReceive::pause_if_full(std::size_t max_queued) noexcept {
  if (count_ < max_queued || !armed_ || pausing_) return;
  pausing_ = true;
  reactor().backend().cancel(*this);
}

void ArmedReceive::buffers_back() noexcept {
  waiting_buffers_ = false;
  if (waiter_ && !armed_ && !cancelled_) arm();
}

void ArmedReceive::wake() noexcept {
  if (!waiter_) return;
  if (TimerEntry::armed()) reactor().timers().disarm(*this);
  if (unwatch()) std::exchange(waiter_, {}).resume();
}

void ArmedReceive::fire() noexcept {
  if (!cancelled_) timed_out_ = true;
  if (waiter_ && unwatch()) std::exchange(waiter_, {}).resume();
}

void ArmedReceive::cancel_on_home() noexcept {
  if (!waiter_) return;
  cancelled_ = true;
  if (armed_) reactor().backend().cancel(*this);
  // Not resumed from here (we may be inside request_stop()): on the next loop turn.
  Reactor::current()->timers().arm(*this, Clock::time_point::min());
}

}  // namespace corio::net::detail
