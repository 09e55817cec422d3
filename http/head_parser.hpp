// The head of an HTTP/1.1 message (RFC 9112): request line or status line, then header fields, parsed
// strictly so that no two implementations could frame the message differently (request smuggling).
// Refused, with the status a server answers: both Content-Length and Transfer-Encoding, Content-Length
// repeated or not digits, a tab in either, a Transfer-Encoding whose last coding is not chunked (or with
// an empty element, ",chunked"), obs-fold
// (a line starting with whitespace), NUL, bare CR or LF and other control bytes, whitespace before a
// colon, a missing or repeated Host in HTTP/1.1: 400. A request line over the limit: 414; header bytes or
// count over the limits: 431; a coding other than chunked: 501; an expectation other than 100-continue: 417.
// Stricter than RFC 9112 where other parsers disagree (a differential fuzz against Node's http-parser,
// tests/fuzz/http_request_fuzz.cpp, checks that whatever this accepts, it frames alike).
// find_head_end() finds where a head ends as bytes arrive, scanning each byte once.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "corio/http/headers.hpp"

namespace corio::http {

struct HeadLimits {
  std::size_t max_line = 8 * 1024;           // request line (414)
  std::size_t max_head_bytes = 16 * 1024;    // request line and header fields together (431)
  std::size_t max_fields = 100;              // header fields (431)
};

enum class BodyKind : std::uint8_t { none, length, chunked, until_close };

// A refusal: the status to answer with and why, for the log ("Content-Length and Transfer-Encoding").
struct HeadError {
  int status = 0;
  const char* reason = "";
};

struct RequestHead {
  std::string_view method;
  std::string_view target;  // as sent
  std::string_view path;    // the target's path ("/a/b"); "*" for OPTIONS *
  std::string_view query;   // after '?', without it
  int minor = 1;            // HTTP/1.minor
  Headers headers;
  BodyKind framing = BodyKind::none;  // of its body
  std::uint64_t content_length = 0;
  bool keep_alive = true;        // 1.1 unless "Connection: close"; 1.0 only with "Connection: keep-alive"
  bool expect_continue = false;  // "Expect: 100-continue"
};

struct ResponseHead {
  int status = 0;
  std::string_view reason;
  int minor = 1;
  Headers headers;
  BodyKind framing = BodyKind::none;  // of its body
  std::uint64_t content_length = 0;
  bool keep_alive = true;
};

// Where the head ends in `bytes` (the index just past the blank line), or 0 while it has not arrived.
// `scanned` carries what earlier calls searched: pass the same variable, 0 for a new message, with the
// same bytes and more after them. Empty lines before a request line are part of the head.
std::size_t find_head_end(std::string_view bytes, std::size_t& scanned) noexcept;

// For a head that has not ended: a refusal once `bytes` already pass a limit (414, 431), else status 0.
HeadError check_partial_head(std::string_view bytes, const HeadLimits& limits = {}) noexcept;

// Parses a whole head (up to and including its blank line); the views point into `head`. Returns a
// HeadError with status 0 on success.
HeadError parse_request_head(std::string_view head, RequestHead& out, const HeadLimits& limits = {});
// `request_method` tells the framing: a response to HEAD has no body whatever it says.
HeadError parse_response_head(std::string_view head, ResponseHead& out, std::string_view request_method = "GET",
                              const HeadLimits& limits = {});

}  // namespace corio::http
