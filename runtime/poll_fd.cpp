#include "corio/runtime/poll_fd.hpp"

#include <liburing.h>
#include <poll.h>

#include <cerrno>

namespace corio {

void PollImpl::prepare(io_uring_sqe& sqe) noexcept { io_uring_prep_poll_add(&sqe, fd, events); }

int PollImpl::perform() noexcept {
  if (!waited) {  // the first try waits for the backend's readiness report
    waited = true;
    return -EAGAIN;
  }
  pollfd p{fd, static_cast<short>(events), 0};
  const int n = ::poll(&p, 1, 0);
  if (n < 0) return -errno;
  if (n == 0) return -EAGAIN;
  return p.revents & POLLNVAL ? -EBADF : p.revents;
}

}  // namespace corio
