// Command-line values for the example programs: numbers (the whole text, within range) and --backend.
#pragma once
#include <cerrno>
#include <cstdlib>

#include "runtime/backend.hpp"

namespace corio::examples {

inline bool parse_number(const char* text, unsigned long max, unsigned long& out) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v > max) return false;
  out = v;
  return true;
}

inline bool parse_backend(const char* text, BackendOptions::Kind& out) {
  auto kind = parse_backend_kind(text);
  if (kind) out = *kind;
  return kind.has_value();
}

}  // namespace corio::examples
