// read(fd, buf): one read(2) through the ring, for pipes, eventfds, signalfds and files. Yields the byte
// count or -errno. Sockets have their own, richer operations in net/.
#pragma once
#include <span>

#include "corio/runtime/operation.hpp"

namespace corio {

struct ReadImpl : Operation {
  ReadImpl(int fd, std::span<char> buf) noexcept : fd(fd), buf(buf) {}
  void prepare(io_uring_sqe& sqe) noexcept override;
  int perform() noexcept override;
  Readiness readiness() const noexcept override;
  std::span<const char> lent() const noexcept override { return buf; }
  int fd;
  std::span<char> buf;
};

inline Op<ReadImpl> read(int fd, std::span<char> buf) { return Op<ReadImpl>(fd, buf); }

}  // namespace corio
