#include "corio/net/error.hpp"

#include <cstdlib>
#include <cstring>

namespace corio::net {

std::string Error::message() const {
  if (explained) return context;
  std::string m = context;
  m += ": ";
  m += std::strerror(code);
  return m;
}

Error make_error(int err, std::string context) { return Error{.code = std::abs(err), .context = std::move(context)}; }

Error explained_error(int code, std::string what, std::string_view why) {
  what.append(": ").append(why);
  return Error{.code = code, .explained = true, .context = std::move(what)};
}

}  // namespace corio::net
