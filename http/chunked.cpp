#include "corio/http/chunked.hpp"

#include <algorithm>

namespace corio::http {

namespace {
constexpr std::size_t kMaxExtension = 4096;

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

ChunkedDecoder::Status ChunkedDecoder::feed(std::string_view in, std::string& body, std::size_t& used) {
  std::size_t i = 0;
  while (i < in.size()) {
    const char c = in[i];
    switch (state_) {
      case State::size: {
        const int v = hex_value(c);
        if (v >= 0) {
          if (++digits_ > 16) return fail(400, "a chunk size over 16 hex digits");
          size_ = size_ << 4 | static_cast<std::uint64_t>(v);
          ++i;
          break;
        }
        if (digits_ == 0) return fail(400, "a chunk without a size");
        if (c == ';') state_ = State::extension, line_ = 0;
        else if (c == '\r') state_ = State::size_lf;
        else return fail(400, "a byte after the chunk size that is neither ';' nor CRLF");
        ++i;
        if (size_ > max_body_ - std::min(total_, max_body_)) return fail(413, "a chunked body over the limit");
        break;
      }
      case State::extension:
        if (c == '\r') state_ = State::size_lf;
        else if (!is_field_value_byte(c) || ++line_ > kMaxExtension) return fail(400, "a chunk extension that is too long or holds a control byte");
        ++i;
        break;
      case State::size_lf:
        if (c != '\n') return fail(400, "a chunk size line not ended by CRLF");
        ++i;
        digits_ = 0;
        if (size_ == 0) {
          state_ = State::trailer_name;
          line_ = 0;
        } else {
          state_ = State::data;
        }
        break;
      case State::data: {
        const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(size_, in.size() - i));
        body.append(in.data() + i, take);
        i += take;
        size_ -= take;
        total_ += take;
        if (size_ == 0) state_ = State::data_cr;
        break;
      }
      case State::data_cr:
        if (c != '\r') return fail(400, "chunk data not followed by CRLF");
        state_ = State::data_lf;
        ++i;
        break;
      case State::data_lf:
        if (c != '\n') return fail(400, "chunk data not followed by CRLF");
        state_ = State::size;
        ++i;
        break;
      case State::trailer_name:  // a trailer field's name, or the blank line that ends the body
        if (c == '\r' && line_ == 0) {
          state_ = State::last_lf;
        } else if (c == ':' && line_ > 0) {
          if (++trailers_ > limits_.max_fields) return fail(431, "more trailer fields than the header field limit");
          state_ = State::trailer_value;
        } else if (!is_token_byte(c)) {
          return fail(400, "a trailer field without a name and a colon, or folded");
        } else {
          ++line_;
        }
        if (++trailer_bytes_ > limits_.max_head_bytes) return fail(431, "trailer fields past the header byte limit");
        ++i;
        break;
      case State::trailer_value:
        if (c == '\r') state_ = State::trailer_lf;
        else if (!is_field_value_byte(c)) return fail(400, "a control byte (NUL, CR, ...) in a trailer field");
        if (++trailer_bytes_ > limits_.max_head_bytes) return fail(431, "trailer fields past the header byte limit");
        ++i;
        break;
      case State::trailer_lf:
        if (c != '\n') return fail(400, "a trailer field not ended by CRLF");
        state_ = State::trailer_name;
        line_ = 0;
        ++i;
        break;
      case State::last_lf:
        if (c != '\n') return fail(400, "a chunked body not ended by CRLF");
        used = i + 1;
        return Status::done;
    }
  }
  used = i;
  return Status::more;
}

}  // namespace corio::http
