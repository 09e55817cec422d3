// nop(): a kernel round trip that does nothing (IORING_OP_NOP). Measures the cost of the operation path
// itself, and is the smallest example of an Operation.
#pragma once
#include "corio/runtime/operation.hpp"

namespace corio {

struct NopImpl : Operation {
  void prepare(io_uring_sqe& sqe) noexcept override;
  int perform() noexcept override { return 0; }
};

inline Op<NopImpl> nop() { return {}; }

}  // namespace corio
