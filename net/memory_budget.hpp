// MemoryBudget: a bound on the bytes a server holds for one purpose across all its connections and
// reactors, such as the payloads of frames still arriving (read_frame). Each connection holds a Lease;
// the lease grows before memory is allocated, refuses growth past the limit, and gives its bytes back
// when released or destroyed. The budget must outlive its leases; a lease belongs to one task.
//   net::MemoryBudget frames(256 << 20);               // shared by every connection of the server
//   net::MemoryBudget::Lease lease(frames);            // one per connection
//   auto got = co_await read_frame(reader, payload, max_frame, &lease);   // ENOBUFS once it is all in use
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace corio::net {

class MemoryBudget {
 public:
  explicit MemoryBudget(std::size_t limit) noexcept : limit_(limit) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  std::size_t limit() const noexcept { return limit_; }
  std::size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
  std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }  // growths refused

  class Lease {
   public:
    explicit Lease(MemoryBudget& budget) noexcept : budget_(&budget) {}
    ~Lease() { release(); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

    // Holds `bytes` in all (more or fewer than now). False, holding what it held, when growing to it
    // would pass the budget's limit.
    bool hold(std::size_t bytes) noexcept { return bytes <= held_ ? (shrink(bytes), true) : grow(bytes); }
    void release() noexcept { shrink(0); }
    std::size_t held() const noexcept { return held_; }
    const MemoryBudget& budget() const noexcept { return *budget_; }

   private:
    bool grow(std::size_t bytes) noexcept;
    void shrink(std::size_t bytes) noexcept {
      budget_->used_.fetch_sub(held_ - bytes, std::memory_order_relaxed);
      held_ = bytes;
    }
    MemoryBudget* budget_;
    std::size_t held_ = 0;
  };

 private:
  const std::size_t limit_;
  std::atomic<std::size_t> used_{0};
  std::atomic<std::uint64_t> refused_{0};
};

inline bool MemoryBudget::Lease::grow(std::size_t bytes) noexcept {
  const std::size_t more = bytes - held_;
  std::size_t used = budget_->used_.load(std::memory_order_relaxed);
  do {
    if (more > budget_->limit_ - used) {  // used never passes the limit
      budget_->refused_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  } while (!budget_->used_.compare_exchange_weak(used, used + more, std::memory_order_relaxed));
  held_ = bytes;
  return true;
}

}  // namespace corio::net
