// Headers: a message's header fields as views into the bytes they arrived in (no copy), in order.
// Names compare case-insensitively, as HTTP says.
#pragma once
#include <span>
#include <string_view>
#include <vector>

namespace corio::http {

struct Header {
  std::string_view name;
  std::string_view value;  // without leading or trailing whitespace
};

bool equals_ignore_case(std::string_view a, std::string_view b) noexcept;
// RFC 9110: a token byte (tchar) of a field name or method; a byte a field value may hold (HTAB, SP,
// VCHAR, obs-text: no NUL, CR, LF or other control).
bool is_token_byte(char c) noexcept;
bool is_token(std::string_view s) noexcept;  // one or more token bytes
bool is_field_value_byte(char c) noexcept;

class Headers {
 public:
  // The first field named `name`, or an empty view.
  std::string_view get(std::string_view name) const noexcept;
  bool has(std::string_view name) const noexcept;
  std::span<const Header> all() const noexcept { return fields_; }
  std::size_t size() const noexcept { return fields_.size(); }

  void add(std::string_view name, std::string_view value) { fields_.push_back({name, value}); }
  void clear() noexcept { fields_.clear(); }

 private:
  std::vector<Header> fields_;
};

}  // namespace corio::http
