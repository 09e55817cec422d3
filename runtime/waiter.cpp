#include "corio/runtime/waiter.hpp"

#include "corio/runtime/message.hpp"
#include "corio/runtime/reactor.hpp"

namespace corio::detail {

// A wake posted from another reactor. `waiter` is cleared if the waiter is destroyed first (both happen on
// the waiter's reactor).
struct Waiter::WakeMessage final : Message {
  explicit WakeMessage(Waiter* w) noexcept : waiter(w) {}
  void run() noexcept override {
    if (Waiter* w = waiter) {
      w->message_ = nullptr;
      if (w->armed()) w->home_->timers().disarm(*w);  // its deadline
      w->resume_now();
    }
    delete this;
  }
  Waiter* waiter;
};

void WaitList::push_back(Waiter& w) noexcept {
  w.list_ = this;
  w.prev_ = tail_;
  w.next_ = nullptr;
  if (tail_ != nullptr) tail_->next_ = &w;
  else head_ = &w;
  tail_ = &w;
}

void WaitList::remove(Waiter& w) noexcept {
  if (w.prev_ != nullptr) w.prev_->next_ = w.next_;
  else head_ = w.next_;
  if (w.next_ != nullptr) w.next_->prev_ = w.prev_;
  else tail_ = w.prev_;
  w.prev_ = w.next_ = nullptr;
  w.list_ = nullptr;
}

void WaitList::wake_front(int result) noexcept {
  Waiter* w = head_;
  remove(*w);
  w->wake(result);
}

void Waiter::park(WaitList& list, std::coroutine_handle<> h) noexcept {
  handle_ = h;
  home_ = Reactor::current();
  engaged_ = true;
  list.push_back(*this);
  if (deadline_ != Clock::time_point::max()) home_->timers().arm(*this, deadline_);
}

void Waiter::watch_stop(const std::stop_token* token) {
  // After unlocking: a stop already requested runs cancel_on_home() from here, and it takes the lock.
  // The waiter cannot have resumed meanwhile: every wake resumes it on this thread, later.
  if (token != nullptr) watch(*token, *home_);
}

void Waiter::wake(int result) noexcept {
  result_ = result;
  pending_ = true;
  if (Reactor::current() == home_) {
    if (armed()) home_->timers().disarm(*this);           // its deadline
    home_->timers().arm(*this, Clock::time_point::min());  // the next loop turn
  } else {  // the deadline stays armed: only the home thread touches its timers
    // A wake cannot report failure: running out of memory here ends the process, as noexcept says.
    message_ = new WakeMessage(this);  // NOLINT(bugprone-unhandled-exception-at-new)
    home_->post(message_);
  }
}

void Waiter::fire() noexcept {
  {
    MaybeLock guard(lock_);
    if (list_ != nullptr) {  // still parked: the deadline passed
      list_->remove(*this);
      result_ = -ETIMEDOUT;
      pending_ = true;
    } else if (message_ != nullptr) {
      return;  // woken from another reactor: that message resumes it
    }
  }
  resume_now();
}

void Waiter::resume_now() noexcept {
  if (!unwatch()) return;  // a stop from another thread is on its way; resume_after_cancel() resumes
  resume_after_cancel();
}

void Waiter::resume_after_cancel() noexcept {
  pending_ = false;
  engaged_ = false;
  handle_.resume();
}

void Waiter::cancel_on_home() noexcept {
  MaybeLock guard(lock_);
  if (list_ == nullptr) return;  // already woken: that wake stands
  list_->remove(*this);
  wake(-ECANCELED);
}

bool Waiter::withdraw() noexcept {
  if (list_ != nullptr) list_->remove(*this);
  if (armed()) home_->timers().disarm(*this);
  if (message_ != nullptr) std::exchange(message_, nullptr)->waiter = nullptr;
  engaged_ = false;
  return std::exchange(pending_, false);
}

}  // namespace corio::detail
