#include "corio/runtime/fixed_buffers.hpp"

namespace corio {

FixedBuffer& FixedBuffer::operator=(FixedBuffer&& o) noexcept {
  if (this != &o) {
    if (owner_ != nullptr) owner_->free_.push_back(slot_);
    owner_ = std::exchange(o.owner_, nullptr);
    slot_ = o.slot_;
  }
  return *this;
}

FixedBuffer::~FixedBuffer() {
  if (owner_ != nullptr) owner_->free_.push_back(slot_);  // capacity reserved for every slot: no allocation
}

std::span<char> FixedBuffer::bytes() const noexcept {
  return {owner_->memory_.get() + std::size_t{slot_} * owner_->options_.size, owner_->options_.size};
}

int FixedBuffer::index() const noexcept { return owner_->registered_ ? static_cast<int>(slot_) : -1; }

std::optional<FixedBuffer> FixedBuffers::take() {
  if (!memory_) {
    const std::size_t bytes = std::size_t{options_.count} * options_.size;
    memory_ = std::make_unique_for_overwrite<char[]>(bytes);
    free_.reserve(options_.count);
    for (std::uint32_t i = options_.count; i > 0; --i) free_.push_back(i - 1);
    register_memory({memory_.get(), bytes});
  }
  if (free_.empty()) return std::nullopt;
  std::uint32_t slot = free_.back();
  free_.pop_back();
  return FixedBuffer(*this, slot);
}

}  // namespace corio
