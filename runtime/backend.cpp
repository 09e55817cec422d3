// Backend selection. io_uring is the only backend so far; a failure to set it up is reported as is.
#include "runtime/backend.hpp"

namespace corio {

std::unique_ptr<Backend> make_backend(const BackendOptions& options) { return make_uring_backend(options); }

}  // namespace corio
