#include "corio/runtime/log.hpp"

#include <algorithm>
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

// Lines longer than 1 KiB are cut there: a log line is a sentence, not a payload.
std::string format_line(const char* format, va_list args) {
  char buf[1024];
  // The callers va_start `args`; clang-tidy 14 cannot see that through the parameter.
  // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
  const int n = std::vsnprintf(buf, sizeof buf, format, args);
  return {buf, n <= 0 ? 0 : std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1)};
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
