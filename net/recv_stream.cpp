#include "corio/net/recv_stream.hpp"

#include "corio/net/net_metrics.hpp"

#include <liburing.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <new>
#include <vector>

#include "corio/runtime/reactor.hpp"

namespace corio::net {

struct RecvStream::Rare final : BufferWaiter {
  explicit Rare(RecvStream& s) noexcept : stream(&s) {}
  void buffers_available() noexcept override { stream->buffers_back(); }
  RecvStream* stream;
  std::vector<Item> spill;  // arrivals beyond the ring, in order
};

RecvStream::RecvStream(const TcpStream& stream)
    : ArmedReceive(Reactor::current()->backend().features().multishot_recv), stream_(stream) {
  if (stream.is_open()) slot_ = Reactor::current()->backend().register_file(stream.fd());
}

RecvStream::~RecvStream() {
  retire_receive();
  while (count_ > 0) {
    Item item = pop();
    if (item.res > 0) pool().give_back(item.buf);
  }
  if (slot_ >= 0) Reactor::current()->backend().unregister_file(slot_);
}

BufferPool& RecvStream::pool() const noexcept { return Reactor::current()->backend().buffers(); }

BufferWaiter& RecvStream::buffer_waiter() {
  if (!rare_) rare_ = std::make_unique<Rare>(*this);
  return *rare_;
}

void RecvStream::prepare(io_uring_sqe& sqe) noexcept {
  const int fd = slot_ >= 0 ? slot_ : stream_->fd();
  BufferPool& pool = RecvStream::pool();
  if (!pool.kernel_selects()) {
    io_uring_prep_recv(&sqe, fd, pool.data(static_cast<std::uint16_t>(held_)), pool.buffer_size(), 0);
  } else {
    if (multishot_) io_uring_prep_recv_multishot(&sqe, fd, nullptr, 0, 0);
    else io_uring_prep_recv(&sqe, fd, nullptr, 0, 0);  // length 0: the picked buffer's
    sqe.flags |= IOSQE_BUFFER_SELECT;
    sqe.buf_group = pool.group();
  }
  if (slot_ >= 0) sqe.flags |= IOSQE_FIXED_FILE;
}

int RecvStream::perform() noexcept {
  BufferPool& pool = RecvStream::pool();
  if (held_ < 0) {
    try {
      held_ = pool.take();
    } catch (const std::exception&) {
      return -ENOMEM;
    }
  }
  ssize_t n = ::recv(stream_->fd(), pool.data(static_cast<std::uint16_t>(held_)), pool.buffer_size(), MSG_DONTWAIT);
  if (n < 0 && errno == EAGAIN) {
    pool.give_back(static_cast<std::uint16_t>(std::exchange(held_, -1)));  // wait holding nothing
    return -EAGAIN;
  }
  return n >= 0 ? static_cast<int>(n) : -errno;
}

Readiness RecvStream::readiness() const noexcept { return {stream_->fd(), EPOLLIN}; }

void RecvStream::complete(int res, std::uint32_t flags) noexcept {
  BufferPool& pool = RecvStream::pool();
  int buf = -1;
  std::uint32_t offset = 0;
  if (flags & IORING_CQE_F_BUFFER) {
    buf = static_cast<int>(flags >> IORING_CQE_BUFFER_SHIFT);
    offset = pool.lend(static_cast<std::uint16_t>(buf), res, flags);
  } else if (held_ >= 0) {
    buf = std::exchange(held_, -1);
  }
  if (res <= 0 && buf >= 0) pool.give_back(static_cast<std::uint16_t>(std::exchange(buf, -1)));
  if (!(flags & IORING_CQE_F_MORE)) {
    armed_ = false;
    settled();
  }
  if (recovered(res)) return;
  push({res, static_cast<std::uint16_t>(buf), static_cast<std::uint16_t>(offset)});
  if (res > 0) detail::net_metrics().received.add(static_cast<std::uint64_t>(res));
  if (res <= 0) end_res_ = res;
  else pause_if_full(kMaxQueued);
  wake();
}

void RecvStream::push(Item item) {
  if (count_ < kMaxQueued) {
    ring_[(head_ + count_) % kMaxQueued] = item;
  } else {
    if (!rare_) rare_ = std::make_unique<Rare>(*this);
    rare_->spill.push_back(item);
  }
  ++count_;
}

RecvStream::Item RecvStream::pop() noexcept {
  const Item item = ring_[head_];
  head_ = static_cast<std::uint8_t>((head_ + 1) % kMaxQueued);
  --count_;
  if (count_ >= kMaxQueued) {  // the ring was full: refill its freed slot from the spill, in order
    std::vector<Item>& spill = rare_->spill;
    ring_[(head_ + kMaxQueued - 1) % kMaxQueued] = spill.front();
    spill.erase(spill.begin());
  }
  return item;
}

// The next result: bytes (in `buf` from `offset`), 0 at the end of the stream, or -errno.
RecvStream::Item RecvStream::take_raw() noexcept {
  if (count_ > 0) {
    timed_out_ = cancelled_ = false;  // this result is the one status() reports
    return pop();
  }
  return {idle_result(), 0, 0};
}

Result<RecvBuffer> RecvStream::take() {
  const Item item = take_raw();
  if (item.res > 0) return RecvBuffer(pool(), item.buf, item.offset, static_cast<std::uint32_t>(item.res));
  if (item.res == 0) return RecvBuffer();
  return io_error(*stream_, "read from", item.res);
}

bool RecvStream::take_into(RecvBuffer& out) noexcept {
  out.release();
  const Item item = take_raw();
  if (item.res <= 0) return false;
  out = RecvBuffer(pool(), item.buf, item.offset, static_cast<std::uint32_t>(item.res));
  return true;
}

Result<void> RecvStream::status() const {
  const int res = idle_result();
  if (res >= 0) return {};
  return io_error(*stream_, "read from", res);
}

}  // namespace corio::net
