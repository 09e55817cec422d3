// Command-line values for the example programs and tools: numbers (the whole text, within range),
// comma-separated lists, --backend and --disable.
#pragma once
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

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

// "a,b,c" -> {"a", "b", "c"}; empty items are dropped.
inline std::vector<std::string> split_list(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    std::string_view item = list.substr(0, list.find(','));
    if (!item.empty()) out.emplace_back(item);
    list.remove_prefix(std::min(list.size(), item.size() + 1));
  }
  return out;
}

// --disable a,b,c: switches off each named backend feature (see corio::switch_off).
inline bool parse_disable(std::string_view list, BackendOptions& out) {
  for (const std::string& name : split_list(list)) {
    if (!switch_off(out, name)) return false;
  }
  return true;
}

}  // namespace corio::examples
