// Command-line values for the example programs and tools: numbers (the whole text, within range),
// comma-separated lists, --backend and --disable.
#pragma once
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "corio/runtime/backend.hpp"

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

// --enable a,b=N: switches on each named opt-in feature (see corio::switch_on).
inline bool parse_enable(std::string_view list, BackendOptions& out) {
  for (const std::string& name : split_list(list)) {
    if (!switch_on(out, name)) return false;
  }
  return true;
}

// A client's "--flag VALUE" pairs: text flags taken as given, numbers checked against [min, max], and
// `other` for the rest (nullopt: unknown; false: invalid). On a mistake, prints which flag and the usage line to
// stderr and returns false.
struct TextFlag {
  const char* name;
  std::string& out;
};
struct NumberFlag {
  const char* name;
  unsigned long& out;
  unsigned long max;
  unsigned long min = 0;
};
inline bool parse_pairs(int argc, char** argv, std::initializer_list<TextFlag> texts,
                        std::initializer_list<NumberFlag> numbers, const char* usage,
                        const std::function<std::optional<bool>(std::string_view, const char*)>& other = nullptr) {
  for (int i = 1; i < argc; i += 2) {
    const std::string_view flag = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : "";
    bool known = false, ok = true;
    for (const TextFlag& t : texts) {
      if (flag == t.name) t.out = value, known = true;
    }
    for (const NumberFlag& n : numbers) {
      if (flag == n.name) known = true, ok = parse_number(value, n.max, n.out) && n.out >= n.min;
    }
    if (!known && other) {
      std::optional<bool> valid = other(flag, value);
      known = valid.has_value();
      ok = valid.value_or(false);
    }
    if (!known) std::fprintf(stderr, "%s: %s: unknown flag\n", argv[0], argv[i]);
    else if (i + 1 >= argc) std::fprintf(stderr, "%s: %s: missing value\n", argv[0], argv[i]), ok = false;
    else if (!ok) std::fprintf(stderr, "%s: %s: not a valid value: \"%s\"\n", argv[0], argv[i], value);
    if (!known || !ok) {
      std::fprintf(stderr, "usage: %s %s\n", argv[0], usage);
      return false;
    }
  }
  return true;
}

}  // namespace corio::examples
