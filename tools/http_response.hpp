// HttpResponses: counts complete HTTP/1.1 responses in a byte stream, incrementally (responses may span
// reads, and one read may hold many). Needs Content-Length framing; chunked or unframed bodies are an error,
// as is anything that is not an HTTP/1.x status line. Only the headers are kept, never the body.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace corio::tools {

class HttpResponses {
 public:
  // Consumes `bytes`; returns how many responses they completed, or -1 with error() set.
  int feed(std::span<const char> bytes);
  const std::string& error() const noexcept { return error_; }
  // Responses whose status was not 2xx.
  std::uint64_t non_2xx() const noexcept { return non_2xx_; }

  static constexpr std::size_t kMaxHeader = 16 * 1024;

 private:
  bool parse_header();
  std::string header_;
  std::uint64_t body_left_ = 0;
  bool in_body_ = false;
  std::uint64_t non_2xx_ = 0;
  std::string error_;
};

}  // namespace corio::tools
