#include "runtime/read.hpp"

#include <liburing.h>

namespace corio {

// Offset -1: the file's current position, which is what pipes and other streams need.
void ReadImpl::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_read(&sqe, fd, buf.data(), static_cast<unsigned>(buf.size()), static_cast<__u64>(-1));
}

}  // namespace corio
