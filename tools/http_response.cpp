#include "tools/http_response.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string_view>

namespace corio::tools {

namespace {
bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
}  // namespace

int HttpResponses::feed(std::span<const char> bytes) {
  if (!error_.empty()) return -1;
  int done = 0;
  while (!bytes.empty()) {
    if (in_body_) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(body_left_, bytes.size()));
      body_left_ -= n;
      bytes = bytes.subspan(n);
      if (body_left_ == 0) {
        in_body_ = false;
        ++done;
      }
      continue;
    }
    // Headers: take bytes up to the blank line that ends them.
    const std::size_t before = header_.size();
    header_.append(bytes.data(), std::min(bytes.size(), kMaxHeader + 4 - before));
    const std::size_t end = header_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
    if (end == std::string::npos) {
      if (header_.size() > kMaxHeader) {
        error_ = "http: response header over " + std::to_string(kMaxHeader) + " bytes";
        return -1;
      }
      return done;
    }
    bytes = bytes.subspan(end + 4 - before);
    header_.resize(end + 2);  // keep the last header line's CRLF
    if (!parse_header()) return -1;
    header_.clear();
    if (body_left_ == 0) ++done;
    else in_body_ = true;
  }
  return done;
}

bool HttpResponses::parse_header() {
  std::string_view h = header_;
  const std::size_t eol = h.find("\r\n");
  std::string_view status_line = h.substr(0, eol);
  int status = 0;
  if (status_line.size() < 12 || !status_line.starts_with("HTTP/1.") || status_line[8] != ' ' ||
      std::from_chars(status_line.data() + 9, status_line.data() + 12, status).ec != std::errc() || status < 100) {
    error_ = "http: not an HTTP/1.x status line: \"" + std::string(status_line.substr(0, 40)) + "\"";
    return false;
  }
  if (status < 200 || status > 299) ++non_2xx_;
  bool have_length = false;
  h.remove_prefix(eol + 2);
  while (!h.empty()) {
    const std::size_t e = h.find("\r\n");
    std::string_view line = h.substr(0, e);
    h.remove_prefix(e + 2);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = trim(line.substr(0, colon));
    std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "content-length")) {
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), body_left_);
      if (ec != std::errc() || p != value.data() + value.size()) {
        error_ = "http: bad Content-Length \"" + std::string(value.substr(0, 40)) + "\"";
        return false;
      }
      have_length = true;
    } else if (iequals(name, "transfer-encoding") && !iequals(value, "identity")) {
      error_ = "http: Transfer-Encoding " + std::string(value.substr(0, 40)) + " is not supported (Content-Length only)";
      return false;
    }
  }
  // 1xx, 204 and 304 have no body; anything else needs a length to be kept alive.
  if (!have_length && !(status < 200 || status == 204 || status == 304)) {
    error_ = "http: response without Content-Length (status " + std::to_string(status) + ")";
    return false;
  }
  if (!have_length) body_left_ = 0;
  return true;
}

}  // namespace corio::tools
