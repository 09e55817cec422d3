// FixedBuffers: a reactor's registered (fixed) buffers. io_uring_register_buffers pins them once, so
// READ_FIXED / WRITE_FIXED and zero-copy sends from them (IORING_RECVSEND_FIXED_BUF) skip the per-operation
// page pinning and mapping. Registration happens on the first take(). Where it is not possible (epoll, a
// kernel without it, RLIMIT_MEMLOCK too low) they are plain memory with the same API: take() still works,
// index() is -1, and the reason is on stderr once and in Backend::describe().
//   auto buf = Reactor::current()->backend().fixed_buffers().take();   // nullopt when all are lent
//   std::memcpy(buf->bytes().data(), reply, n);
//   co_await conn.write_fixed(*buf, n);
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace corio {

struct FixedBufferOptions {
  std::uint32_t count = 16;
  std::uint32_t size = 64 * 1024;
};

class FixedBuffers;

// One lent fixed buffer; goes back to its reactor's FixedBuffers when dropped (on that reactor's thread).
class FixedBuffer {
 public:
  FixedBuffer(FixedBuffers& owner, std::uint32_t slot) noexcept : owner_(&owner), slot_(slot) {}
  FixedBuffer(FixedBuffer&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)), slot_(o.slot_) {}
  FixedBuffer& operator=(FixedBuffer&& o) noexcept;
  FixedBuffer(const FixedBuffer&) = delete;
  FixedBuffer& operator=(const FixedBuffer&) = delete;
  ~FixedBuffer();

  std::span<char> bytes() const noexcept;
  // The registered index for READ_FIXED / WRITE_FIXED, or -1 when the buffers are not registered.
  int index() const noexcept;

 private:
  FixedBuffers* owner_;
  std::uint32_t slot_;
};

class FixedBuffers {
 public:
  explicit FixedBuffers(const FixedBufferOptions& options, std::string status = "not registered")
      : options_(options), status_(std::move(status)) {}
  virtual ~FixedBuffers() = default;
  FixedBuffers(const FixedBuffers&) = delete;
  FixedBuffers& operator=(const FixedBuffers&) = delete;

  std::optional<FixedBuffer> take();
  std::uint32_t buffer_size() const noexcept { return options_.size; }
  bool registered() const noexcept { return registered_; }
  // What registration did: "registered 16 x 65536 B", or why the buffers are plain memory.
  const std::string& status() const noexcept { return status_; }

 protected:
  // Called once, with the memory allocated: registers it with the kernel or says why not.
  virtual void register_memory(std::span<char> memory) { (void)memory; }
  FixedBufferOptions options_;
  bool registered_ = false;
  std::string status_;

 private:
  friend class FixedBuffer;
  std::unique_ptr<char[]> memory_;
  std::vector<std::uint32_t> free_;
};

}  // namespace corio
