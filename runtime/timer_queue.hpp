// TimerQueue: a reactor's pending timers, an intrusive binary min-heap ordered by (deadline, arming order).
// Arming, disarming and firing allocate nothing once the heap has grown; 100,000 pending timers cost one
// pointer each in the heap. Timers with equal deadlines fire in the order they were armed.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace corio {

using Clock = std::chrono::steady_clock;

class TimerQueue;

class TimerEntry {
 public:
  TimerEntry() = default;
  TimerEntry(const TimerEntry&) = delete;
  TimerEntry& operator=(const TimerEntry&) = delete;
  bool armed() const noexcept { return slot_ != kUnarmed; }
  Clock::time_point deadline() const noexcept { return deadline_; }

 protected:
  ~TimerEntry() = default;
  // Runs on the reactor thread when the deadline passes; the entry is already disarmed.
  virtual void fire() noexcept = 0;

 private:
  friend class TimerQueue;
  static constexpr std::size_t kUnarmed = ~std::size_t{0};
  Clock::time_point deadline_{};
  std::uint64_t order_ = 0;
  std::size_t slot_ = kUnarmed;
};

class TimerQueue {
 public:
  void arm(TimerEntry& t, Clock::time_point deadline);
  void disarm(TimerEntry& t) noexcept;
  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  std::optional<Clock::time_point> next_deadline() const noexcept {
    if (heap_.empty()) return std::nullopt;
    return heap_.front()->deadline_;
  }
  // Fires the timers due at `now` that were armed before the call, earliest first. Returns how many fired.
  std::size_t fire_due(Clock::time_point now);

 private:
  static bool before(const TimerEntry* a, const TimerEntry* b) noexcept {
    return a->deadline_ < b->deadline_ || (a->deadline_ == b->deadline_ && a->order_ < b->order_);
  }
  void place(TimerEntry* t, std::size_t slot) noexcept {
    heap_[slot] = t;
    t->slot_ = slot;
  }
  void sift_up(std::size_t slot) noexcept;
  void sift_down(std::size_t slot) noexcept;

  std::vector<TimerEntry*> heap_;
  std::uint64_t next_order_ = 0;
};

}  // namespace corio
