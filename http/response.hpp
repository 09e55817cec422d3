// Response: what a handler fills in, or streams. A whole response (status, headers, body) is framed with
// Content-Length and leaves with the responses before and after it in one send where it can; write()
// streams instead: the first call sends the head with Transfer-Encoding: chunked (close-delimited for an
// HTTP/1.0 client), each call one chunk, and the server ends the body when the handler returns.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "corio/net/error.hpp"
#include "corio/runtime/task.hpp"

namespace corio::http {

namespace detail {
// The connection side of a streamed response (the server implements it per transport).
struct BodySink {
  virtual task<net::Result<void>> send_chunk(std::string_view data) = 0;

 protected:
  ~BodySink() = default;
};
}  // namespace detail

class Response {
 public:
  int status = 200;
  std::string_view content_type = "text/plain";  // empty: no Content-Type (must outlive the response)
  std::string body;

  // Adds a header field. A name that is not a token, or a CR or LF in either, is refused
  // (std::invalid_argument): no header can be injected through a handler's values.
  void header(std::string_view name, std::string_view value);
  const std::string& headers() const noexcept { return headers_; }  // serialised: "Name: value\r\n"...

  // Streams `data` as one chunk (nothing for empty data); the head leaves with the first call.
  task<net::Result<void>> write(std::string_view data);
  // Before the first write(): the streamed body's length, sent as Content-Length, the writes then going out
  // as they are (no chunks). A body that ends shorter or longer closes the connection.
  void stream_length(std::uint64_t n) noexcept { length_ = n; }
  std::optional<std::uint64_t> stream_length() const noexcept { return length_; }
  bool streaming() const noexcept { return streaming_; }

  // The server's: reuses the object for the next request on the connection.
  void reset(detail::BodySink* sink) noexcept;

 private:
  std::string headers_;
  detail::BodySink* sink_ = nullptr;
  bool streaming_ = false;
  std::optional<std::uint64_t> length_;
};

const char* reason_phrase(int status) noexcept;

}  // namespace corio::http
