#include "corio/runtime/log.hpp"

#include <cstdarg>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>

namespace corio::log {

namespace {

struct State {
  std::mutex mutex;
  Sink sink;
  Level min = Level::info;
  struct Repeats {
    std::chrono::steady_clock::time_point window_start;
    unsigned long suppressed = 0;
  };
  std::map<std::string, Repeats, std::less<>> repeats;
};

State& state() {
  static State s;
  return s;
}

std::string format_line(const char* format, va_list args) {
  va_list copy;
  va_copy(copy, args);
  const int n = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string line(n > 0 ? static_cast<std::size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(line.data(), line.size() + 1, format, args);
  return line;
}

void emit(State& s, Level level, std::string_view line) {  // under s.mutex
  if (s.sink) {
    s.sink(level, line);
    return;
  }
  std::fprintf(stderr, "corio: %s%.*s\n", level == Level::warning ? "warning: " : "", static_cast<int>(line.size()),
               line.data());
}

}  // namespace

void set_sink(Sink sink) {
  State& s = state();
  std::lock_guard guard(s.mutex);
  s.sink = std::move(sink);
}

void set_level(Level min) {
  State& s = state();
  std::lock_guard guard(s.mutex);
  s.min = min;
}

void write(Level level, const char* format, ...) {
  State& s = state();
  std::lock_guard guard(s.mutex);
  if (level < s.min) return;
  va_list args;
  va_start(args, format);
  std::string line = format_line(format, args);
  va_end(args);
  emit(s, level, line);
}

void limited(Level level, std::string_view key, std::chrono::seconds window, const char* format, ...) {
  State& s = state();
  std::lock_guard guard(s.mutex);
  if (level < s.min) return;
  const auto now = std::chrono::steady_clock::now();
  auto it = s.repeats.find(key);
  if (it == s.repeats.end()) it = s.repeats.emplace(std::string(key), State::Repeats{now - window, 0}).first;
  State::Repeats& r = it->second;
  if (now - r.window_start < window) {
    ++r.suppressed;
    return;
  }
  va_list args;
  va_start(args, format);
  std::string line = format_line(format, args);
  va_end(args);
  if (r.suppressed > 0) {
    const auto span = std::chrono::duration_cast<std::chrono::seconds>(now - r.window_start).count();
    line += " (repeated " + std::to_string(r.suppressed) + " times in " + std::to_string(span) + " s)";
  }
  r = {now, 0};
  emit(s, level, line);
}

}  // namespace corio::log
