#include "corio/runtime/buffer_pool.hpp"

#include <algorithm>
#include <stdexcept>

namespace corio {

BufferPool::BufferPool(const BufferPoolOptions& options) : options_(options) {
  if (options_.buffer_size == 0 || options_.slab == 0 || options_.limit == 0) {
    throw std::invalid_argument("BufferPoolOptions: buffer_size, slab and limit must be positive");
  }
  options_.slab = std::min(options_.slab, options_.limit);
}

BufferPool::~BufferPool() = default;

bool BufferPool::add_slab(std::uint32_t limit) {
  const std::uint32_t n = std::min(options_.slab, limit - std::min(limit, allocated_));
  if (n == 0) return false;
  // Untouched buffers cost address space only: pages become resident when data first lands in them.
  free_.reserve(allocated_ + n);
  available_.resize(allocated_ + n, 1);
  slabs_.push_back(std::make_unique_for_overwrite<char[]>(std::size_t{options_.slab} * options_.buffer_size));
  for (std::uint32_t i = 0; i < n; ++i) publish(static_cast<std::uint16_t>(allocated_ + i));
  allocated_ += n;
  return true;
}

std::uint16_t BufferPool::take() {
  // Readers that take their own buffers are never refused: past the limit, up to what an id can name.
  if (free_.empty() && !add_slab(kMaxBuffers)) throw std::length_error("BufferPool: more than 65536 buffers lent");
  std::uint16_t id = free_.back();
  free_.pop_back();
  available_[id] = 0;
  ++lent_;
  return id;
}

std::uint32_t BufferPool::lend_slice(std::uint16_t id, int res, std::uint32_t flags) noexcept {
  constexpr std::uint32_t kBufMore = 1U << 4;  // IORING_CQE_F_BUF_MORE (6.12): the kernel keeps the buffer
  const std::uint32_t at = used_[id];
  if (slices_[id]++ == 0) ++lent_;
  // A result of no bytes (end of stream, an error) consumed nothing, whatever the flags say: the buffer
  // stays at the ring's head. Bytes without BUF_MORE took the buffer's last byte: the kernel let go.
  if (res > 0 && (flags & kBufMore)) {
    used_[id] = std::min(at + static_cast<std::uint32_t>(res), options_.buffer_size - 1);
  } else if (res > 0) {
    used_[id] = options_.buffer_size;
    available_[id] = 0;
  }
  return at;
}

void BufferPool::give_back(std::uint16_t id) noexcept {
  if (incremental()) {
    if (--slices_[id] > 0) return;  // another slice is still read
    --lent_;
    if (used_[id] < options_.buffer_size) return;  // the kernel is still filling it
    used_[id] = 0;
  } else {
    --lent_;
  }
  if (available_[id] != 0) {  // the kernel still has it (or the pool does): publishing it again would let
    ++returned_twice_;        // two receives fill it at once
    return;
  }
  available_[id] = 1;
  publish(id);
  if (waiters_.empty()) return;
  std::vector<BufferWaiter*> woken;
  woken.swap(waiters_);
  for (BufferWaiter* w : woken) w->buffers_available();
}

bool BufferPool::grow() {
  ++ran_dry_;
  return add_slab(options_.limit);
}

void BufferPool::unwait(BufferWaiter& w) noexcept {
  waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), &w), waiters_.end());
}

}  // namespace corio
