// libFuzzer target for corio's HTTP/1.1 request parser, checked against an outside implementation
// (Node's http-parser 2.9, Debian's libhttp-parser). For any bytes:
//   - the head's end is found the same way whole and fed in two parts;
//   - parsing never crashes or reads out of bounds (ASan);
//   - a head corio accepts, http-parser accepts too, with the same method, target, version and body framing
//     (Content-Length or chunked), and corio keeps the connection only where http-parser would (but for
//     an HTTP/1.0 keep-alive http-parser misreads: plain_first_keep_alive): what corio lets through, no
//     other parser frames differently (the root of request smuggling). corio may refuse (or close) more,
//     never less.
//   - the chunked decoder gives the same body fed whole and fed in two parts.
#include <http_parser.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "corio/http/chunked.hpp"
#include "corio/http/head_parser.hpp"

namespace {

struct Seen {
  std::string url;
  bool headers_done = false;
  bool failed_on_purpose = false;
};

int on_url(http_parser* p, const char* at, std::size_t n) {
  static_cast<Seen*>(p->data)->url.append(at, n);
  return 0;
}
int on_headers_complete(http_parser* p) {
  static_cast<Seen*>(p->data)->headers_done = true;
  return 1;  // stop at the head: "no body follows" for the parser, which is all we compare
}

[[noreturn]] void mismatch(const char* what) {
  std::fprintf(stderr, "differential mismatch: %s\n", what);
  std::abort();
}

// http-parser reads a Connection value's elements with a state machine that loses its place after some of
// them (an empty element, one starting with a byte that is no token, one that is a prefix of "close" or
// "keep-alive" cut by its comma: "c,keep-alive") and after a tab behind "keep-alive", so of an HTTP/1.0
// "keep-alive" it sees only the plain form: the value's first element, with spaces after it at most. RFC
// 9110 (5.6.1, OWS) reads the others too; keeping such a connection, as the client asked, frames nothing
// differently.
bool plain_first_keep_alive(std::string_view head) {
  for (std::size_t at = head.find("\r\n"); at != std::string_view::npos;) {
    const std::size_t next = head.find("\r\n", at + 2);
    std::string_view line = head.substr(at + 2, next == std::string_view::npos ? std::string_view::npos : next - at - 2);
    at = next;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || !corio::http::equals_ignore_case(line.substr(0, colon), "connection")) continue;
    std::string_view v = line.substr(colon + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    if (v.size() < 10 || !corio::http::equals_ignore_case(v.substr(0, 10), "keep-alive")) continue;
    v.remove_prefix(10);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    if (v.empty() || v.front() == ',') return true;
  }
  return false;
}

void compare_with_http_parser(std::string_view head, const corio::http::RequestHead& r) {
  http_parser_settings settings{};
  settings.on_url = on_url;
  settings.on_headers_complete = on_headers_complete;
  http_parser p{};
  http_parser_init(&p, HTTP_REQUEST);
  Seen seen;
  p.data = &seen;
  http_parser_execute(&p, &settings, head.data(), head.size());
  const auto err = HTTP_PARSER_ERRNO(&p);
  if (!seen.headers_done) {
    // http-parser knows a fixed list of methods and is stricter about some bytes corio allows by RFC 9110
    // (obs-text in values, "*" targets, tchar methods): those it refuses, corio may accept. It also takes a
    // header whose name only starts with "Transfer-Encoding" ("Transfer-Encodingost") for one and refuses
    // the Content-Length beside it; corio refuses a real Transfer-Encoding with a Content-Length itself
    // (head_parser.cpp), so a head it accepted had none.
    if (err == HPE_INVALID_METHOD || err == HPE_INVALID_URL || err == HPE_INVALID_HEADER_TOKEN ||
        err == HPE_INVALID_CONSTANT || err == HPE_HEADER_OVERFLOW || err == HPE_INVALID_VERSION ||
        err == HPE_LF_EXPECTED || err == HPE_STRICT || err == HPE_INVALID_CHUNK_SIZE ||
        err == HPE_UNEXPECTED_CONTENT_LENGTH) {
      return;
    }
    mismatch(http_errno_name(err));
  }
  if (std::string_view(http_method_str(static_cast<http_method>(p.method))) != r.method) mismatch("method");
  if (seen.url != r.target) mismatch("target");
  if (p.http_minor != static_cast<unsigned short>(r.minor)) mismatch("version");
  const bool chunked = (p.flags & F_CHUNKED) != 0;
  if (chunked != (r.framing == corio::http::BodyKind::chunked)) mismatch("chunked framing");
  const bool has_length = (p.flags & F_CONTENTLENGTH) != 0 && !chunked;
  if (has_length) {
    if (r.content_length != p.content_length) mismatch("content length");
  } else if (r.framing == corio::http::BodyKind::length) {
    mismatch("a length only corio saw");
  }
  // Closing is the safe side: corio may close where http-parser would keep the connection (it misses a
  // "close" after an empty list element, "Connection: , close", which RFC 9110 5.6.1 says to ignore), but
  // never keeps one that http-parser would close.
  const bool misread_keep_alive = r.minor == 0 && !plain_first_keep_alive(head);
  if (r.keep_alive && http_should_keep_alive(&p) == 0 && !misread_keep_alive) mismatch("keep-alive");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t split = data[0] % size;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  std::size_t scanned = 0, end = corio::http::find_head_end(input.substr(0, std::min(split, input.size())), scanned);
  if (end == 0) end = corio::http::find_head_end(input, scanned);
  std::size_t fresh = 0;
  if (end != corio::http::find_head_end(input, fresh)) std::abort();
  (void)corio::http::check_partial_head(input);

  if (end != 0) {
    corio::http::RequestHead r;
    const auto e = corio::http::parse_request_head(input.substr(0, end), r);
    if (e.status == 0) compare_with_http_parser(input.substr(0, end), r);
  }

  // The rest as a chunked body: the same result whole and in two parts.
  const std::string_view body = end != 0 ? input.substr(end) : input;
  corio::http::ChunkedDecoder whole(1 << 16), parts(1 << 16);
  std::string a, b;
  std::size_t used_a = 0, used_b1 = 0, used_b2 = 0;
  const auto sa = whole.feed(body, a, used_a);
  const std::size_t cut = std::min(split, body.size());
  auto sb = parts.feed(body.substr(0, cut), b, used_b1);
  if (sb == corio::http::ChunkedDecoder::Status::more) sb = parts.feed(body.substr(cut), b, used_b2);
  if (sa != sb) std::abort();
  if (sa == corio::http::ChunkedDecoder::Status::done && (a != b || used_a != (sb == sa && used_b2 ? cut + used_b2 : used_b1))) {
    std::abort();
  }
  return 0;
}
