// Logging: levels, a replaceable sink, the default line on stderr, and repeats rate-limited per key.
#include "corio/runtime/log.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace corio {
namespace {

struct Captured {
  std::vector<std::pair<log::Level, std::string>> lines;
  Captured() {
    log::set_sink([this](log::Level l, std::string_view line) { lines.emplace_back(l, std::string(line)); });
  }
  ~Captured() {
    log::set_sink({});
    log::set_level(log::Level::info);
  }
};

TEST(Log, ASinkGetsEachLineAtOrAboveTheLevel) {
  Captured c;
  log::write(log::Level::info, "listening on %s:%d", "127.0.0.1", 7000);
  log::write(log::Level::debug, "dropped at the default level");
  log::set_level(log::Level::error);
  log::write(log::Level::warning, "dropped too");
  log::write(log::Level::error, "kept");
  ASSERT_EQ(c.lines.size(), 2u);
  EXPECT_EQ(c.lines[0], std::pair(log::Level::info, std::string("listening on 127.0.0.1:7000")));
  EXPECT_EQ(c.lines[1], std::pair(log::Level::error, std::string("kept")));
}

TEST(Log, TheDefaultSinkWritesOneLineToStderr) {
  ::testing::internal::CaptureStderr();
  log::write(log::Level::warning, "fixed buffers %s", "refused");
  log::write(log::Level::error, "accept failed");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "corio: warning: fixed buffers refused\ncorio: accept failed\n");
}

TEST(Log, RepeatsWithinTheWindowAreCountedAndReportedWithTheNextLine) {
  Captured c;
  for (int i = 0; i < 1234; ++i) {
    log::limited(log::Level::error, "accept :7000", std::chrono::seconds(1), "accept on :7000: %s", "Too many open files");
  }
  log::limited(log::Level::error, "another key", std::chrono::seconds(1), "separate");  // its own count
  ASSERT_EQ(c.lines.size(), 2u);
  EXPECT_EQ(c.lines[0].second, "accept on :7000: Too many open files");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  log::limited(log::Level::error, "accept :7000", std::chrono::seconds(1), "accept on :7000: %s", "Too many open files");
  ASSERT_EQ(c.lines.size(), 3u);
  EXPECT_EQ(c.lines[2].second, "accept on :7000: Too many open files (repeated 1233 times in 1 s)");
}

}  // namespace
}  // namespace corio
