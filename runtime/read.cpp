#include "corio/runtime/read.hpp"

#include <poll.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <liburing.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

namespace corio {

// Offset -1: the file's current position, which is what pipes and other streams need.
void ReadImpl::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_read(&sqe, fd, buf.data(), static_cast<unsigned>(buf.size()), static_cast<__u64>(-1));
}

int ReadImpl::perform() noexcept {
  // The readiness path must never block the reactor, yet a pipe or signalfd may be in blocking mode, and
  // its open file description may be shared (stdin): ask for a non-blocking read of this call only, and
  // where the file has no such read, read only once poll says it will not block.
  iovec iov{buf.data(), buf.size()};
  ssize_t n = ::preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
  if (n >= 0) return static_cast<int>(n);
  if (errno == EAGAIN) {
    // A file whose pages are not cached: epoll cannot wait for it, so it is read (as before RWF_NOWAIT).
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) return -EAGAIN;
  } else if (errno == EOPNOTSUPP || errno == EINVAL) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) == 0) return -EAGAIN;
  } else {
    return -errno;
  }
  n = ::read(fd, buf.data(), buf.size());
  return n >= 0 ? static_cast<int>(n) : -errno;
}

Readiness ReadImpl::readiness() const noexcept { return {fd, EPOLLIN}; }

}  // namespace corio
