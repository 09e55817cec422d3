#include "corio/runtime/timer_queue.hpp"

namespace corio {

void TimerQueue::arm(TimerEntry& t, Clock::time_point deadline) {
  if (t.armed()) disarm(t);
  t.deadline_ = deadline;
  t.order_ = next_order_++;
  heap_.push_back(&t);
  t.slot_ = heap_.size() - 1;
  sift_up(t.slot_);
}

void TimerQueue::disarm(TimerEntry& t) noexcept {
  if (!t.armed()) return;
  std::size_t slot = t.slot_;
  TimerEntry* last = heap_.back();
  heap_.pop_back();
  t.slot_ = TimerEntry::kUnarmed;
  if (last == &t) return;
  place(last, slot);
  sift_up(slot);
  sift_down(last->slot_);
}

std::size_t TimerQueue::fire_due(Clock::time_point now) {
  // Timers armed by the ones firing now wait for the next call, even if already due: a task that keeps
  // sleeping until a past deadline must not keep the reactor from its I/O.
  const std::uint64_t armed_before = next_order_;
  std::size_t fired = 0;
  while (!heap_.empty() && heap_.front()->deadline_ <= now && heap_.front()->order_ < armed_before) {
    TimerEntry* t = heap_.front();
    disarm(*t);
    ++fired;
    t->fire();
  }
  return fired;
}

void TimerQueue::sift_up(std::size_t slot) noexcept {
  TimerEntry* t = heap_[slot];
  while (slot > 0) {
    std::size_t parent = (slot - 1) / 2;
    if (!before(t, heap_[parent])) break;
    place(heap_[parent], slot);
    slot = parent;
  }
  place(t, slot);
}

void TimerQueue::sift_down(std::size_t slot) noexcept {
  TimerEntry* t = heap_[slot];
  const std::size_t n = heap_.size();
  for (;;) {
    std::size_t child = 2 * slot + 1;
    if (child >= n) break;
    if (child + 1 < n && before(heap_[child + 1], heap_[child])) ++child;
    if (!before(heap_[child], t)) break;
    place(heap_[child], slot);
    slot = child;
  }
  place(t, slot);
}

}  // namespace corio
