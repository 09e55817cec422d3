// ChunkedDecoder: the chunked transfer coding (RFC 9112 section 7.1), decoded incrementally as bytes
// arrive. Strict: a chunk size is 1 to 16 hex digits (more overflow), its line ends in CRLF after an
// optional extension (at most 4 KiB, ignored), data is followed by CRLF, trailer fields ("name: value",
// the name a token, no control bytes, no folding) are dropped. Anything else is an error (400); a body
// past `max_body` is 413; trailers past the head limits (field count, bytes) are 431.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "corio/http/head_parser.hpp"

namespace corio::http {

class ChunkedDecoder {
 public:
  enum class Status { more, done, error };
  explicit ChunkedDecoder(std::uint64_t max_body, const HeadLimits& limits = {}) noexcept
      : max_body_(max_body), limits_(limits) {}

  // Decodes from `in`, appending the data to `body`. Sets `used` to the bytes of `in` consumed: all of
  // them for `more`, up to the body's end for `done` (what follows is the next message).
  Status feed(std::string_view in, std::string& body, std::size_t& used);
  int status() const noexcept { return status_; }  // 400 or 413 after an error
  const char* reason() const noexcept { return reason_; }

 private:
  Status fail(int status, const char* reason) noexcept {
    status_ = status;
    reason_ = reason;
    return Status::error;
  }
  enum class State : std::uint8_t { size, extension, size_lf, data, data_cr, data_lf, trailer_name, trailer_value, trailer_lf, last_lf };
  State state_ = State::size;
  std::uint64_t max_body_;
  HeadLimits limits_;
  std::uint64_t size_ = 0;      // of the chunk being read
  std::uint64_t total_ = 0;     // body bytes so far
  unsigned digits_ = 0;
  std::size_t line_ = 0;        // bytes of the extension or trailer name so far
  std::size_t trailer_bytes_ = 0;
  std::size_t trailers_ = 0;    // trailer fields so far
  int status_ = 0;
  const char* reason_ = "";
};

}  // namespace corio::http
