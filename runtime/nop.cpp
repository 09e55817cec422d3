#include "corio/runtime/nop.hpp"

#include <liburing.h>

namespace corio {

void NopImpl::prepare(io_uring_sqe& sqe) noexcept { io_uring_prep_nop(&sqe); }

}  // namespace corio
