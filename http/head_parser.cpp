#include "corio/http/head_parser.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

namespace corio::http {

namespace {

// RFC 9110 tchar.
constexpr std::array<bool, 256> kToken = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

// Field-value bytes: HTAB, SP, VCHAR, obs-text. Not NUL, CR, LF or other controls.
constexpr std::array<bool, 256> kValue = [] {
  std::array<bool, 256> t{};
  t['\t'] = true;
  for (int c = 0x20; c < 0x7f; ++c) t[c] = true;
  for (int c = 0x80; c < 0x100; ++c) t[c] = true;
  return t;
}();

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::size_t leading_empty_lines(std::string_view b) noexcept {
  std::size_t i = 0;
  while (i + 1 < b.size() && b[i] == '\r' && b[i + 1] == '\n') i += 2;
  return i;
}

// Calls f(token) for each comma-separated element of a list value, trimmed; empty elements are skipped.
template <class F>
void for_each_element(std::string_view list, F f) {
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view e = trim(list.substr(0, comma));
    if (!e.empty()) f(e);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

bool parse_decimal(std::string_view s, std::uint64_t& out) noexcept {
  if (s.empty() || s.size() > 19) return false;  // 19 digits always fit in 64 bits
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = v;
  return true;
}

// "HTTP/1.x": the minor version, or -1.
int parse_version(std::string_view v) noexcept {
  if (v.size() != 8 || v.substr(0, 7) != "HTTP/1." || v[7] < '0' || v[7] > '9') return -1;
  return v[7] - '0';
}

constexpr HeadError kOk{};
constexpr HeadError bad(const char* why) { return {400, why}; }

// Header fields from `lines` (just past the start line, up to the blank line's CRLF included), validated,
// with the framing fields interpreted. `framing` receives what requests and responses share.
struct Framing {
  BodyKind body = BodyKind::none;
  std::uint64_t content_length = 0;
  bool close = false;
  bool keep_alive = false;
  bool expect_continue = false;
  bool other_expectation = false;
  bool other_coding = false;  // another coding before chunked (gzip, chunked)
  int hosts = 0;
};

// Where a field value's bytes end, from `p`: the first byte that is not one (kValue), or `end`. Eight at a
// time while no byte of the word is a control byte or DEL (a tab, the one control a value may hold, takes
// the byte loop): the CR that ends the line is where it stops.
const char* value_end(const char* p, const char* end) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101, highs = 0x8080808080808080;
  while (end - p >= 8) {
    std::uint64_t x;
    std::memcpy(&x, p, 8);
    const std::uint64_t below_space = (x - ones * 0x20) & ~x & highs;  // some byte under 0x20 (exact as a whole)
    const std::uint64_t y = x ^ (ones * 0x7f);
    const std::uint64_t del = (y - ones) & ~y & highs;  // some byte equal to 0x7f
    if ((below_space | del) != 0) break;
    p += 8;
  }
  while (p != end && kValue[static_cast<unsigned char>(*p)]) ++p;
  return p;
}

// Where a field name's token bytes end, from `p`: four table lookups a round, then one at a time.
const char* token_end(const char* p, const char* end) noexcept {
  auto t = [](const char* c) { return static_cast<unsigned>(kToken[static_cast<unsigned char>(*c)]); };
  while (end - p >= 4 && (t(p) & t(p + 1) & t(p + 2) & t(p + 3))) p += 4;
  while (p != end && t(p)) ++p;
  return p;
}

// `s` (token or field-value bytes, already checked) equals the lowercase `name`, in any case. Exact for
// such bytes: OR-ing 0x20 maps only 'A'-'Z' onto letters, and only control bytes onto digits or '-'.
template <std::size_t N>
bool is_named(std::string_view s, const char (&name)[N]) noexcept {
  if (s.size() != N - 1) return false;
  unsigned differ = 0;
  for (std::size_t i = 0; i + 1 < N; ++i) differ |= static_cast<unsigned>((s[i] | 0x20) ^ name[i]);
  return differ == 0;
}

HeadError parse_fields(std::string_view lines, Headers& headers, Framing& f, const HeadLimits& limits) {
  headers.clear();
  bool has_length = false, last_chunked = false;
  int codings = 0, chunked = 0;
  const char* p = lines.data();
  const char* const end = p + lines.size();
  for (;;) {
    // One pass over each line: the name while its bytes are tokens, which must stop at the colon, then
    // the value while its bytes may be in one, which must stop at the line's CRLF.
    if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') break;  // the blank line
    if (p != end && (*p == ' ' || *p == '\t')) return bad("obs-fold (a header line starting with whitespace)");
    const char* const q = token_end(p, end);
    if (q == end || *q != ':') {
      return bad(q == end || *q == '\r' || *q == '\n' ? "a header line without a colon"
                                                       : "a header name that is not a token (or whitespace before its colon)");
    }
    if (q == p) return bad("a header name that is not a token (or whitespace before its colon)");
    const std::string_view name(p, static_cast<std::size_t>(q - p));
    const char* const v = q + 1;
    const char* const cr = value_end(v, end);
    if (end - cr < 2 || cr[0] != '\r' || cr[1] != '\n') {
      return bad(cr != end && *cr == '\n' ? "a line not ended by CRLF" : "a control byte (NUL, CR, ...) in a header value");
    }
    p = cr + 2;
    const std::string_view raw(v, static_cast<std::size_t>(cr - v));
    if (headers.size() == limits.max_fields) return {431, "too many header fields"};
    std::string_view value = trim(raw);
    headers.add(name, value);
    // Framing fields take spaces only: parsers disagree on tabs around their values.
    switch (name.size()) {
      case 14:  // content-length
        if (!is_named(name, "content-length")) break;
        if (raw.find('\t') != std::string_view::npos) return bad("a tab in Content-Length or Transfer-Encoding");
        {
          std::uint64_t n = 0;
          if (!parse_decimal(value, n)) return bad("a Content-Length that is not a number");
          // Even an equal second value: some parsers refuse it, and a proxy between them could disagree.
          if (has_length) return bad("more than one Content-Length");
          has_length = true;
          f.content_length = n;
        }
        break;
      case 17:  // transfer-encoding
        if (!is_named(name, "transfer-encoding")) break;
        if (raw.find('\t') != std::string_view::npos) return bad("a tab in Content-Length or Transfer-Encoding");
        // Strict, unlike other lists: an empty element (",chunked") is framed differently by other parsers.
        for (std::string_view rest = value;;) {
          const std::size_t comma = rest.find(',');
          const std::string_view coding = trim(rest.substr(0, comma));
          if (!is_token(coding)) return bad("a malformed Transfer-Encoding");
          ++codings;
          last_chunked = is_named(coding, "chunked");
          chunked += last_chunked ? 1 : 0;
          if (comma == std::string_view::npos) break;
          rest.remove_prefix(comma + 1);
        }
        break;
      case 10:
        if (!is_named(name, "connection")) break;
        for_each_element(value, [&](std::string_view option) {
          if (is_named(option, "close")) f.close = true;
          else if (is_named(option, "keep-alive")) f.keep_alive = true;
        });
        break;
      case 4:
        if (is_named(name, "host")) ++f.hosts;
        break;
      case 6:
        if (!is_named(name, "expect")) break;
        if (is_named(value, "100-continue")) f.expect_continue = true;
        else f.other_expectation = true;
        break;
      default:
        break;
    }
  }
  if (codings > 0) {
    if (has_length) return bad("both Content-Length and Transfer-Encoding");
    if (!last_chunked || chunked > 1) return bad("a Transfer-Encoding whose last coding is not chunked, once");
    f.other_coding = codings > 1;
    f.body = BodyKind::chunked;
  } else if (has_length) {
    f.body = BodyKind::length;
  }
  return kOk;
}

}  // namespace

bool is_token_byte(char c) noexcept { return kToken[static_cast<unsigned char>(c)]; }

bool is_token(std::string_view s) noexcept { return !s.empty() && std::all_of(s.begin(), s.end(), is_token_byte); }

bool is_field_value_byte(char c) noexcept { return kValue[static_cast<unsigned char>(c)]; }

bool equals_ignore_case(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x != y && ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z')) return false;
  }
  return true;
}

std::string_view Headers::get(std::string_view name) const noexcept {
  for (const Header& h : fields_) {
    if (equals_ignore_case(h.name, name)) return h.value;
  }
  return {};
}

bool Headers::has(std::string_view name) const noexcept {
  return std::any_of(fields_.begin(), fields_.end(), [&](const Header& h) { return equals_ignore_case(h.name, name); });
}

std::size_t find_head_end(std::string_view bytes, std::size_t& scanned) noexcept {
  const std::size_t lead = leading_empty_lines(bytes);
  const std::size_t from = std::max(lead, scanned >= 3 ? scanned - 3 : 0);
  // Line by line (memchr is vectorised; a head has few lines): a "\r\n\r\n" starting at `from` or later
  // ends at one of the LFs from `from + 3` on.
  const char* const data = bytes.data();
  for (std::size_t i = from + 3; i < bytes.size(); ++i) {
    const void* lf = std::memchr(data + i, '\n', bytes.size() - i);
    if (lf == nullptr) break;
    i = static_cast<std::size_t>(static_cast<const char*>(lf) - data);
    if (data[i - 1] == '\r' && data[i - 2] == '\n' && data[i - 3] == '\r') return i + 1;
  }
  scanned = bytes.size();
  return 0;
}

HeadError check_partial_head(std::string_view bytes, const HeadLimits& limits) noexcept {
  bytes.remove_prefix(leading_empty_lines(bytes));
  const std::size_t lf = bytes.find('\n');
  // What can be judged already: the method's bytes, and how the first line ends (garbage is refused at
  // once, not at the header timeout).
  const std::string_view method = bytes.substr(0, std::min(bytes.find(' '), lf));
  if (!std::all_of(method.begin(), method.end(), [](char c) { return kToken[static_cast<unsigned char>(c)]; })) {
    return bad("a method that is not a token");
  }
  if (lf != std::string_view::npos && (lf == 0 || bytes[lf - 1] != '\r')) return bad("a request line not ended by CRLF");
  if ((lf == std::string_view::npos ? bytes.size() : lf) > limits.max_line) return {414, "request line too long"};
  if (bytes.size() > limits.max_head_bytes) return {431, "header fields too large"};
  return kOk;
}

HeadError parse_request_head(std::string_view head, RequestHead& out, const HeadLimits& limits) {
  head.remove_prefix(leading_empty_lines(head));
  const std::size_t lf = head.find('\n');
  if (lf == std::string_view::npos || lf == 0 || head[lf - 1] != '\r') return bad("a request line not ended by CRLF");
  if (lf - 1 > limits.max_line) return {414, "request line too long"};
  if (head.size() > limits.max_head_bytes) return {431, "header fields too large"};
  std::string_view line = head.substr(0, lf - 1);
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return bad("a request line that is not METHOD TARGET VERSION");
  }
  out.method = line.substr(0, sp1);
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!is_token(out.method)) return bad("a method that is not a token");
  if (out.target.empty()) return bad("an empty request target");
  for (char c : out.target) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return bad("a control byte in the request target");
  }
  out.minor = parse_version(line.substr(sp2 + 1));
  if (out.minor < 0) return bad("a version other than HTTP/1.x");
  // origin-form "/p?q", asterisk-form "*", absolute-form "http://host/p?q" (the path is taken from it).
  std::string_view path = out.target;
  if (path.front() != '/' && path != "*") {
    const std::size_t scheme = path.find("://");
    if (scheme == std::string_view::npos || !is_token(path.substr(0, scheme))) return bad("a request target in no known form");
    path.remove_prefix(scheme + 3);
    const std::size_t slash = path.find_first_of("/?");
    path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
    if (path.front() == '?') return bad("an absolute request target without a path");
  }
  const std::size_t q = path.find('?');
  out.path = path.substr(0, q);
  out.query = q == std::string_view::npos ? std::string_view() : path.substr(q + 1);

  Framing f;
  if (HeadError e = parse_fields(head.substr(lf + 1), out.headers, f, limits); e.status != 0) return e;
  if (out.minor >= 1 && f.hosts != 1) return bad(f.hosts == 0 ? "no Host header in an HTTP/1.1 request" : "more than one Host header");
  if (f.hosts > 1) return bad("more than one Host header");
  if (f.body == BodyKind::chunked && out.minor == 0) return bad("Transfer-Encoding in an HTTP/1.0 request");
  if (f.other_coding) return {501, "a transfer coding other than chunked"};
  if (f.other_expectation) return {417, "an expectation other than 100-continue"};
  out.framing = f.body;
  out.content_length = f.body == BodyKind::length ? f.content_length : 0;
  if (out.framing == BodyKind::length && out.content_length == 0) out.framing = BodyKind::none;
  out.keep_alive = out.minor >= 1 ? !f.close : (f.keep_alive && !f.close);
  out.expect_continue = f.expect_continue && out.minor >= 1;
  return kOk;
}

HeadError parse_response_head(std::string_view head, ResponseHead& out, std::string_view request_method,
                              const HeadLimits& limits) {
  if (head.size() > limits.max_head_bytes) return {431, "header fields too large"};
  const std::size_t lf = head.find('\n');
  if (lf == std::string_view::npos || lf == 0 || head[lf - 1] != '\r') return bad("a status line not ended by CRLF");
  std::string_view line = head.substr(0, lf - 1);
  // "HTTP/1.1 200 OK": the reason may be empty, and may hold spaces.
  if (line.size() < 12 || line[8] != ' ' || (line.size() > 12 && line[12] != ' ')) return bad("a malformed status line");
  out.minor = parse_version(line.substr(0, 8));
  if (out.minor < 0) return bad("a version other than HTTP/1.x");
  out.status = 0;
  for (char c : line.substr(9, 3)) {
    if (c < '0' || c > '9') return bad("a status code that is not three digits");
    out.status = out.status * 10 + (c - '0');
  }
  if (out.status < 100) return bad("a status code under 100");
  out.reason = line.size() > 13 ? line.substr(13) : std::string_view();
  for (char c : out.reason) {
    if (!kValue[static_cast<unsigned char>(c)]) return bad("a control byte in the reason phrase");
  }
  Framing f;
  if (HeadError e = parse_fields(head.substr(lf + 1), out.headers, f, limits); e.status != 0) return e;
  if (f.other_coding) return bad("a transfer coding other than chunked");
  const bool no_body = request_method == "HEAD" || out.status < 200 || out.status == 204 || out.status == 304;
  out.framing = no_body ? BodyKind::none : f.body == BodyKind::none ? BodyKind::until_close : f.body;
  out.content_length = out.framing == BodyKind::length ? f.content_length : 0;
  out.keep_alive = out.framing != BodyKind::until_close && (out.minor >= 1 ? !f.close : (f.keep_alive && !f.close));
  return kOk;
}

}  // namespace corio::http
