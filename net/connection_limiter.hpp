// ConnectionLimiter: at most N connections at once across all reactors (the guide's semaphore). Beyond
// it, a server accepts and closes at once (load shedding): the client learns quickly and the server stays
// responsive. Lock-free; shared by the reactors of one server.
#pragma once
#include <atomic>
#include <cstdint>
#include <optional>
#include <utility>

namespace corio::net {

class ConnectionLimiter {
 public:
  // A held slot; released when destroyed.
  class Permit {
   public:
    explicit Permit(ConnectionLimiter* l) noexcept : limiter_(l) {}
    Permit(Permit&& o) noexcept : limiter_(std::exchange(o.limiter_, nullptr)) {}
    Permit& operator=(Permit&&) = delete;
    ~Permit() {
      if (limiter_ != nullptr) limiter_->active_.fetch_sub(1, std::memory_order_release);
    }

   private:
    ConnectionLimiter* limiter_;
  };

  // 0: no limit.
  explicit ConnectionLimiter(std::uint32_t max) noexcept : max_(max) {}

  std::optional<Permit> try_acquire() noexcept {
    std::uint32_t now = active_.fetch_add(1, std::memory_order_acquire);
    if (max_ != 0 && now >= max_) {
      active_.fetch_sub(1, std::memory_order_relaxed);
      shed_.fetch_add(1, std::memory_order_relaxed);
      return std::nullopt;
    }
    return Permit(this);
  }
  std::uint32_t active() const noexcept { return active_.load(std::memory_order_acquire); }
  std::uint64_t shed() const noexcept { return shed_.load(std::memory_order_relaxed); }
  std::uint32_t max() const noexcept { return max_; }

 private:
  const std::uint32_t max_;
  std::atomic<std::uint32_t> active_{0};
  std::atomic<std::uint64_t> shed_{0};
};

}  // namespace corio::net
