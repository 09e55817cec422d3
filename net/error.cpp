#include "corio/net/error.hpp"

#include <cstdlib>
#include <cstring>

namespace corio::net {

std::string Error::message() const {
  std::string m = context;
  m += ": ";
  m += reason.empty() ? std::strerror(code) : reason;
  return m;
}

Error make_error(int err, std::string context) { return Error{std::abs(err), std::move(context)}; }

}  // namespace corio::net
