// poll_fd(fd, events): waits until a descriptor is ready (POLLIN and/or POLLOUT), for descriptors that
// another library reads and writes itself (c-ares's DNS sockets). Yields the ready events (POLLIN, POLLOUT,
// POLLERR, POLLHUP) or -errno. On io_uring it is IORING_OP_POLL_ADD; on epoll, the backend's own wait.
// The first check is never made inline: the result always arrives on a later loop turn, so a caller inside
// a library callback is not re-entered.
#pragma once
#include <cstdint>

#include "corio/runtime/operation.hpp"

namespace corio {

struct PollImpl : Operation {
  PollImpl(int fd, std::uint32_t events) noexcept : fd(fd), events(events) {}
  void prepare(io_uring_sqe& sqe) noexcept override;
  int perform() noexcept override;
  Readiness readiness() const noexcept override { return {fd, events}; }
  int fd;
  std::uint32_t events;
  bool waited = false;
};

inline Op<PollImpl> poll_fd(int fd, std::uint32_t events) { return Op<PollImpl>(fd, events); }

}  // namespace corio
