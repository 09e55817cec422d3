// BufferPool: a reactor's receive buffers. A buffer is lent only while received bytes wait for the
// application, so an idle connection holds none. Where the kernel has provided buffer rings, the io_uring
// backend makes the pool one: the kernel picks a buffer as data arrives (IOSQE_BUFFER_SELECT with group()).
// Otherwise a receive takes a buffer just before it reads. A RecvBuffer gives its buffer back when dropped.
// The pool grows a slab at a time when it runs dry; a kernel ring stops at its size (limit) and then
// receives wait (ENOBUFS) until buffers come back. An incremental ring (IOU_PBUF_RING_INC) packs
// receives one after another into the same buffer: each completion lends a slice of it, and the buffer
// goes back to the kernel once the kernel has filled it and every slice has been given back.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace corio {

struct BufferPoolOptions {
  std::uint32_t buffer_size = 4096;
  std::uint32_t slab = 64;     // buffers allocated at a time; the first slab at start
  std::uint32_t limit = 4096;  // a kernel ring's entries (a power of two, at most 32768)
};

// Told when a pool that had run dry has buffers again.
class BufferWaiter {
 public:
  virtual void buffers_available() noexcept = 0;

 protected:
  ~BufferWaiter() = default;
};

class BufferPool {
 public:
  explicit BufferPool(const BufferPoolOptions& options);
  virtual ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // True when the kernel picks buffers from group(); false: take() one before reading.
  virtual bool kernel_selects() const noexcept { return false; }
  virtual std::uint16_t group() const noexcept { return 0; }

  std::uint32_t buffer_size() const noexcept { return options_.buffer_size; }
  char* data(std::uint16_t id) const noexcept {
    return slabs_[id / options_.slab].get() + std::size_t{id % options_.slab} * options_.buffer_size;
  }
  std::uint32_t allocated() const noexcept { return allocated_; }
  // Buffers held by the application (lent out and not yet given back; on an incremental ring, a buffer
  // counts once while any slice of it is held: what the held bytes pin).
  std::uint32_t lent() const noexcept { return lent_; }
  // Buffers given back while the pool or the kernel still had them (not published again): 0 unless the
  // accounting is wrong, which tests check.
  std::uint32_t returned_twice() const noexcept { return returned_twice_; }
  // Times the kernel found the ring empty (ENOBUFS).
  std::uint32_t ran_dry() const noexcept { return ran_dry_; }

  // A buffer to read into (pools the kernel does not select from): grows without limit.
  std::uint16_t take();
  // True when receives fill slices of a buffer (IOU_PBUF_RING_INC) rather than whole buffers.
  bool incremental() const noexcept { return !used_.empty(); }
  // A completion carried IORING_CQE_F_BUFFER for buffer `id` with result `res` and CQE `flags`: the
  // application holds it (an incremental ring: a slice of it) until give_back(id). Returns where the
  // received bytes start in the buffer (0 unless incremental).
  std::uint32_t lend(std::uint16_t id, int res, std::uint32_t flags) noexcept {
    if (incremental()) return lend_slice(id, res, flags);
    ++lent_;
    available_[id] = 0;
    return 0;
  }
  // Returns a buffer (or slice) taken or lent; wakes receives waiting for one.
  void give_back(std::uint16_t id) noexcept;
  // Adds a slab after the kernel ran out (ENOBUFS). False at the limit: wait() for buffers instead.
  bool grow();
  void wait(BufferWaiter& w) { waiters_.push_back(&w); }
  void unwait(BufferWaiter& w) noexcept;

 protected:
  // Makes buffer `id` available again: to the kernel's ring, or to take().
  virtual void publish(std::uint16_t id) noexcept { free_.push_back(id); }
  // Allocates up to a slab of buffers without passing `limit` in all; false when none fit.
  bool add_slab(std::uint32_t limit);
  // Makes the pool incremental (before the first slab): a ring registered with IOU_PBUF_RING_INC.
  void track_slices() {
    used_.assign(options_.limit, 0);
    slices_.assign(options_.limit, 0);
  }
  static constexpr std::uint32_t kMaxBuffers = 65536;  // buffer ids are 16 bits

  BufferPoolOptions options_;

 private:
  std::uint32_t lend_slice(std::uint16_t id, int res, std::uint32_t flags) noexcept;
  // Incremental rings only, by buffer id: bytes the kernel has filled (buffer_size once it let go), and
  // slices the application holds.
  std::vector<std::uint32_t> used_;
  std::vector<std::uint32_t> slices_;
  std::vector<std::uint8_t> available_;  // by buffer id: free to take(), or in the kernel's ring
  std::vector<std::unique_ptr<char[]>> slabs_;
  std::vector<std::uint16_t> free_;
  std::vector<BufferWaiter*> waiters_;
  std::uint32_t allocated_ = 0;
  std::uint32_t lent_ = 0;
  std::uint32_t ran_dry_ = 0;
  std::uint32_t returned_twice_ = 0;
};

// Received bytes in a pool buffer; the buffer goes back to its pool when this is dropped (on the reactor's
// thread). consume(n) drops bytes from the front, for parsers that take what they need.
class RecvBuffer {
 public:
  RecvBuffer() = default;
  RecvBuffer(BufferPool& pool, std::uint16_t id, std::uint32_t size) noexcept
      : pool_(&pool), id_(id), begin_(0), end_(size) {}
  // `size` bytes from `offset` (a slice of an incremental ring's buffer).
  RecvBuffer(BufferPool& pool, std::uint16_t id, std::uint32_t offset, std::uint32_t size) noexcept
      : pool_(&pool), id_(id), begin_(offset), end_(offset + size) {}
  RecvBuffer(RecvBuffer&& o) noexcept
      : pool_(std::exchange(o.pool_, nullptr)), id_(o.id_), begin_(o.begin_), end_(o.end_) {}
  RecvBuffer& operator=(RecvBuffer&& o) noexcept {
    if (this != &o) {
      release();
      pool_ = std::exchange(o.pool_, nullptr);
      id_ = o.id_;
      begin_ = o.begin_;
      end_ = o.end_;
    }
    return *this;
  }
  ~RecvBuffer() { release(); }

  std::span<char> bytes() const noexcept {
    return pool_ == nullptr ? std::span<char>() : std::span(pool_->data(id_) + begin_, end_ - begin_);
  }
  std::size_t size() const noexcept { return pool_ == nullptr ? 0 : end_ - begin_; }
  bool empty() const noexcept { return size() == 0; }
  void consume(std::size_t n) noexcept { begin_ += static_cast<std::uint32_t>(std::min(n, size())); }
  void release() noexcept {
    if (pool_ != nullptr) std::exchange(pool_, nullptr)->give_back(id_);
  }

 private:
  BufferPool* pool_ = nullptr;
  std::uint16_t id_ = 0;
  std::uint32_t begin_ = 0;
  std::uint32_t end_ = 0;
};

}  // namespace corio
