// Command-line values for the example programs: numbers (the whole text, within range), --backend and
// --disable.
#pragma once
#include <cerrno>
#include <cstdlib>
#include <string_view>
#include <algorithm>

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

// --disable a,b,c: switches off each named backend feature (see corio::switch_off).
inline bool parse_disable(std::string_view list, BackendOptions& out) {
  while (!list.empty()) {
    std::string_view name = list.substr(0, list.find(','));
    if (!switch_off(out, name)) return false;
    list.remove_prefix(std::min(list.size(), name.size() + 1));
  }
  return true;
}

}  // namespace corio::examples
