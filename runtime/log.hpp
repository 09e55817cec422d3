// Logging: what corio itself reports (a backend fallback, a refused memlock, accept errors, certificate
// warnings), with a level, through a sink you may replace. Repeats can be rate-limited per key, as the
// guide asks (log the first, count the rest): "accept on :7000: Too many open files (repeated 1234 times
// in 10 s)".
//   corio::log::set_sink([](corio::log::Level l, std::string_view line) { my_logger(l, line); });
//   corio::log::set_level(corio::log::Level::warning);
// A sink is called from any reactor thread, one line at a time (calls are serialised).
#pragma once
#include <chrono>
#include <functional>
#include <string_view>

namespace corio::log {

enum class Level { debug, info, warning, error };

// Receives each line (cut at 1 KiB) without its newline. The default writes "corio: [warning: ]LINE" to stderr.
using Sink = std::function<void(Level, std::string_view)>;
void set_sink(Sink sink);  // an empty Sink restores the default
void set_level(Level min);  // lines below it are dropped (default: info)

void write(Level level, const char* format, ...) __attribute__((format(printf, 2, 3)));

// Writes the first line for `key` in each `window`; the others in that window are counted, and the next
// line written for the key says how many ("(repeated N times in 10 s)").
void limited(Level level, std::string_view key, std::chrono::seconds window, const char* format, ...)
    __attribute__((format(printf, 4, 5)));

}  // namespace corio::log
