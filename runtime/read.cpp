#include "runtime/read.hpp"

#include <fcntl.h>
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
  // A pipe or signalfd may be in blocking mode; the readiness path must never block the reactor.
  int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  ssize_t n = ::read(fd, buf.data(), buf.size());
  return n >= 0 ? static_cast<int>(n) : -errno;
}

Readiness ReadImpl::readiness() const noexcept { return {fd, EPOLLIN}; }

}  // namespace corio
