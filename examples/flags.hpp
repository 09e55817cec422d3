// Command-line numbers for the example programs: the whole text must be a number within range.
#pragma once
#include <cerrno>
#include <cstdlib>

namespace corio::examples {

inline bool parse_number(const char* text, unsigned long max, unsigned long& out) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v > max) return false;
  out = v;
  return true;
}

}  // namespace corio::examples
