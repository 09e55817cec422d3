// The HTTP/1.1 head parser and chunked decoder: what they accept, and every request-smuggling form and
// limit they refuse, with its status. Heads are also fed a byte at a time (find_head_end must find the
// same end) and chunked bodies split at every byte.
#include <gtest/gtest.h>

#include <string>

#include "corio/http/chunked.hpp"
#include "corio/http/head_parser.hpp"

namespace corio::http {
namespace {

// The views the parser fills in point into the bytes: they are kept here until the next parse.
HeadError parse(std::string head, RequestHead& out, const HeadLimits& limits = {}) {
  static std::string kept;
  kept = std::move(head);
  return parse_request_head(kept, out, limits);
}

int status_of(const std::string& head) {
  RequestHead r;
  return parse(head, r).status;
}

TEST(HeadParser, ParsesARequestWithItsFieldsPathAndQuery) {
  RequestHead r;
  const std::string head = "GET /a/b?x=1&y HTTP/1.1\r\nHost: example.test\r\nX-Empty:\r\nAccept:  text/*  \r\n\r\n";
  ASSERT_EQ(parse_request_head(head, r).status, 0);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/a/b?x=1&y");
  EXPECT_EQ(r.path, "/a/b");
  EXPECT_EQ(r.query, "x=1&y");
  EXPECT_EQ(r.minor, 1);
  EXPECT_EQ(r.headers.size(), 3u);
  EXPECT_EQ(r.headers.get("host"), "example.test");
  EXPECT_EQ(r.headers.get("ACCEPT"), "text/*") << "surrounding whitespace is not part of the value";
  EXPECT_TRUE(r.headers.has("x-empty"));
  EXPECT_EQ(r.framing, BodyKind::none);
  EXPECT_TRUE(r.keep_alive);
  // The views point into the bytes parsed: no copy.
  EXPECT_GE(r.path.data(), head.data());
  EXPECT_LT(r.path.data(), head.data() + head.size());
}

TEST(HeadParser, KeepAliveByVersionAndConnection) {
  RequestHead r;
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", r).status, 0);
  EXPECT_FALSE(r.keep_alive);
  ASSERT_EQ(parse("GET / HTTP/1.0\r\n\r\n", r).status, 0);
  EXPECT_FALSE(r.keep_alive) << "1.0 closes unless asked";
  ASSERT_EQ(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", r).status, 0);
  EXPECT_TRUE(r.keep_alive);
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade, close\r\n\r\n", r).status, 0);
  EXPECT_FALSE(r.keep_alive) << "close among other options";
}

TEST(HeadParser, BodyFraming) {
  RequestHead r;
  ASSERT_EQ(parse("POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n", r).status, 0);
  EXPECT_EQ(r.framing, BodyKind::length);
  EXPECT_EQ(r.content_length, 42u);
  EXPECT_EQ(parse("POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", r).status, 400)
      << "even the same length twice (other parsers refuse it)";
  ASSERT_EQ(parse("POST /e HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n", r).status, 0);
  EXPECT_EQ(r.framing, BodyKind::chunked);
  ASSERT_EQ(parse("POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", r).status, 0);
  EXPECT_TRUE(r.expect_continue);
  ASSERT_EQ(parse("GET http://example.test/p?q HTTP/1.1\r\nHost: example.test\r\n\r\n", r).status, 0);
  EXPECT_EQ(r.path, "/p");
  EXPECT_EQ(r.query, "q");
  ASSERT_EQ(parse("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", r).status, 0) << "empty lines before a request";
}

TEST(HeadParser, RefusesEverySmugglingForm) {
  const std::string start = "POST / HTTP/1.1\r\nHost: h\r\n";
  struct Case {
    std::string fields;
    int status;
  } cases[] = {
      {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400},
      {"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400},
      {"Content-Length: 5\r\nContent-Length: 6\r\n", 400},
      {"Content-Length: 5, 6\r\n", 400},
      {"Content-Length: +5\r\n", 400},
      {"Content-Length: 0x5\r\n", 400},
      {"Content-Length: 99999999999999999999\r\n", 400},
      {"Content-Length: \r\n", 400},
      {"Transfer-Encoding: chunked, gzip\r\n", 400},
      {"Transfer-Encoding: gzip\r\n", 400},
      {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 400},
      {"Transfer-Encoding: \r\n", 400},
      {"Transfer-Encoding: xchunked\r\n", 400},
      {"Transfer-Encoding: ,chunked\r\n", 400},
      {"Transfer-Encoding: chunked,\r\n", 400},
      {"Transfer-Encoding: chunked;x=1\r\n", 400},
      {"Transfer-Encoding: chunked\t\r\n", 400},
      {"Content-Length:\t5\r\n", 400},
      {"Transfer-Encoding: gzip, chunked\r\n", 501},
      {"X-A: b\r\n folded\r\n", 400},
      {"X-A: b\r\n\tfolded\r\n", 400},
      {std::string("X-A: b\0c\r\n", 10), 400},
      {"X-A: b\rc\r\n", 400},
      {"X-A: b\nX-B: c\r\n", 400},
      {"X-A : b\r\n", 400},
      {"X A: b\r\n", 400},
      {": b\r\n", 400},
      {"no colon here\r\n", 400},
      {"X-\x7f: b\r\n", 400},
      {"Host: again\r\n", 400},
      {"Expect: something-else\r\n", 417},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(status_of(start + c.fields + "\r\n"), c.status) << c.fields;
  }
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\n\r\n"), 400) << "no Host in 1.1";
  EXPECT_EQ(status_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400) << "chunked in 1.0";
  EXPECT_EQ(status_of("GET / HTTP/1.1\nHost: h\r\n\r\n"), 400) << "a bare LF ends the request line";
  EXPECT_EQ(status_of("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), 400) << "two spaces";
  EXPECT_EQ(status_of("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(status_of("G@T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(status_of("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(status_of("GET relative HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}

// The name and value scans take several bytes a round: a bad byte is found at every offset, in words and
// in their tails, and framing names match in any case but only exactly.
TEST(HeadParser, FindsABadByteAtEveryOffsetOfANameOrValue) {
  const std::string name = "X-A-Rather-Long-Field-Name-For-Rounds";
  const std::string value = "a value long enough for several eight-byte words, then a tail";
  auto head = [](const std::string& n, const std::string& v) { return "GET / HTTP/1.1\r\nHost: h\r\n" + n + ": " + v + "\r\n\r\n"; };
  ASSERT_EQ(status_of(head(name, value)), 0);
  for (std::size_t i = 0; i < value.size(); ++i) {
    for (char bad : {'\0', '\x01', '\r', '\n', '\x1f', '\x7f'}) {
      std::string v = value;
      v[i] = bad;
      EXPECT_EQ(status_of(head(name, v)), 400) << "byte " << int(bad) << " at " << i << " of the value";
    }
    for (char fine : {'\t', '\x80', '\xff', '~', ' '}) {
      std::string v = value;
      v[i] = fine;
      EXPECT_EQ(status_of(head(name, v)), 0) << "byte " << int(static_cast<unsigned char>(fine)) << " at " << i;
    }
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    for (char bad : {'\0', ' ', '"', '(', '/', '@', '\x7f', '\x80', '\r'}) {
      std::string n = name;
      n[i] = bad;
      EXPECT_EQ(status_of(head(n, value)), 400) << "byte " << int(bad) << " at " << i << " of the name";
    }
  }
  RequestHead r;
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nhOsT: h\r\ncOnTeNt-LeNgTh: 3\r\nCONNECTION: Close\r\n\r\n", r).status, 0);
  EXPECT_EQ(r.framing, BodyKind::length);
  EXPECT_EQ(r.content_length, 3u);
  EXPECT_FALSE(r.keep_alive);
  // One byte off a framing name is another field.
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\ncontent-lengti: 3\r\ncontent_length: 3\r\nTransfer-Encodinf: x\r\n\r\n", r).status, 0);
  EXPECT_EQ(r.framing, BodyKind::none);
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\nHosu: h\r\n\r\n"), 0) << "a near-Host is not a second Host";
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: h\r\nHOST: h\r\n\r\n"), 400) << "a second Host in capitals";
}

TEST(HeadParser, LimitsAnswerWithTheirStatus) {
  HeadLimits limits{.max_line = 64, .max_head_bytes = 256, .max_fields = 3};
  RequestHead r;
  EXPECT_EQ(parse("GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", r, limits).status, 414);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", r, limits).status, 431);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nA: " + std::string(300, 'x') + "\r\n\r\n", r, limits).status, 431);
  // Before the head has ended: a long first line is 414 as soon as it passes the limit, the head 431.
  EXPECT_EQ(check_partial_head("GET /" + std::string(100, 'a'), limits).status, 414);
  EXPECT_EQ(check_partial_head("GET / HTTP/1.1\r\nA: " + std::string(300, 'x'), limits).status, 431);
  EXPECT_EQ(check_partial_head("GET / HTTP/1.1\r\nA: b", limits).status, 0);
}

TEST(HeadParser, FindsTheEndOfAHeadFedAByteAtATime) {
  const std::string head = "\r\nGET / HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n";
  const std::string bytes = head + "GET /next";
  std::size_t scanned = 0, end = 0;
  for (std::size_t n = 1; n <= bytes.size() && end == 0; ++n) end = find_head_end(std::string_view(bytes).substr(0, n), scanned);
  EXPECT_EQ(end, head.size());
  std::size_t fresh = 0;
  EXPECT_EQ(find_head_end(bytes, fresh), head.size());
  std::size_t none = 0;
  EXPECT_EQ(find_head_end("\r\n\r\n", none), 0u) << "empty lines alone are no head";
}

TEST(HeadParser, ParsesResponsesAndTheirFraming) {
  ResponseHead r;
  ASSERT_EQ(parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", r).status, 0);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.reason, "OK");
  EXPECT_EQ(r.framing, BodyKind::length);
  ASSERT_EQ(parse_response_head("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", r).status, 0);
  EXPECT_EQ(r.framing, BodyKind::none);
  ASSERT_EQ(parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", r, "HEAD").status, 0);
  EXPECT_EQ(r.framing, BodyKind::none) << "a response to HEAD has no body";
  ASSERT_EQ(parse_response_head("HTTP/1.0 200 OK\r\n\r\n", r).status, 0);
  EXPECT_EQ(r.framing, BodyKind::until_close);
  EXPECT_FALSE(r.keep_alive);
  ASSERT_EQ(parse_response_head("HTTP/1.1 404 \r\nTransfer-Encoding: chunked\r\n\r\n", r).status, 0);
  EXPECT_EQ(r.framing, BodyKind::chunked);
  EXPECT_EQ(r.reason, "");
  ASSERT_EQ(parse_response_head("HTTP/1.1 200\r\n\r\n", r).status, 0) << "no reason phrase at all";
  EXPECT_EQ(parse_response_head("HTTP/1.1 2000 OK\r\n\r\n", r).status, 400);
  EXPECT_EQ(parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", r).status, 400);
}

ChunkedDecoder::Status decode(const std::string& in, std::string& body, std::size_t& used, std::uint64_t max = 1 << 20,
                              int* status = nullptr) {
  ChunkedDecoder d(max);
  auto s = d.feed(in, body, used);
  if (status) *status = d.status();
  return s;
}

TEST(Chunked, DecodesChunksExtensionsAndTrailersSplitAnywhere) {
  const std::string body = "5;name=value\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-Trailer: t\r\n\r\n";
  const std::string in = body + "NEXT";
  std::string out;
  std::size_t used = 0;
  ASSERT_EQ(decode(in, out, used), ChunkedDecoder::Status::done);
  EXPECT_EQ(out, "hello, world!!!");
  EXPECT_EQ(used, body.size()) << "stops at the end of the body";
  for (std::size_t split = 1; split < body.size(); ++split) {
    ChunkedDecoder d(1 << 20);
    std::string got;
    std::size_t u1 = 0, u2 = 0;
    ASSERT_EQ(d.feed(std::string_view(in).substr(0, split), got, u1), ChunkedDecoder::Status::more) << split;
    EXPECT_EQ(u1, split);
    ASSERT_EQ(d.feed(std::string_view(in).substr(split), got, u2), ChunkedDecoder::Status::done) << split;
    EXPECT_EQ(got, "hello, world!!!");
    EXPECT_EQ(split + u2, body.size());
  }
}

TEST(Chunked, RefusesMalformedAndOverflowingSizes) {
  struct Case {
    std::string in;
    int status;
  } cases[] = {
      {"10000000000000000\r\n", 400},  // 17 hex digits
      {"ffffffffffffffff\r\n", 413},   // fits 64 bits, not the limit
      {"\r\n", 400},
      {"g\r\n", 400},
      {"5 \r\nhello\r\n0\r\n\r\n", 400},
      {"5\nhello\r\n0\r\n\r\n", 400},
      {"5\r\nhelloX\r\n0\r\n\r\n", 400},
      {"5\r\nhello\r\r\n", 400},
      {"0\r\n folded: t\r\n\r\n", 400},
      {"0\r\nX: a\rb\r\n\r\n", 400},
      {"0\r\n\rX", 400},
      {"0\r\nno colon\r\n\r\n", 400},
      {"0\r\nNoColon\r\n\r\n", 400},
      {"0\r\n: no name\r\n\r\n", 400},
      {"0\r\nX : space before the colon\r\n\r\n", 400},
      {"0\r\nX: a\x01b\r\n\r\n", 400},
      {"0\r\n" + std::string(20000, 'X') + ": v\r\n\r\n", 431},
      {"0\r\nX: " + std::string(20000, 'v') + "\r\n\r\n", 431},
      {"5;" + std::string(5000, 'e') + "\r\n", 400},
  };
  for (const Case& c : cases) {
    std::string out;
    std::size_t used = 0;
    int status = 0;
    EXPECT_EQ(decode(c.in, out, used, 1 << 20, &status), ChunkedDecoder::Status::error) << c.in.substr(0, 40);
    EXPECT_EQ(status, c.status) << c.in.substr(0, 40);
  }
  std::string out;
  std::size_t used = 0;
  int status = 0;
  EXPECT_EQ(decode("4\r\nabcd\r\n4\r\nefgh\r\n", out, used, 6, &status), ChunkedDecoder::Status::error);
  EXPECT_EQ(status, 413) << "the body limit counts across chunks";
}

TEST(Chunked, TrailerFieldsCountAgainstTheHeadLimits) {
  const HeadLimits limits{.max_fields = 3};
  auto trailers = [](int n) {
    std::string in = "1\r\nx\r\n0\r\n";
    for (int i = 0; i < n; ++i) in += "T" + std::to_string(i) + ": v\r\n";
    return in + "\r\n";
  };
  std::string out;
  std::size_t used = 0;
  ChunkedDecoder ok(1 << 20, limits);
  EXPECT_EQ(ok.feed(trailers(3), out, used), ChunkedDecoder::Status::done) << "as many as the limit";
  ChunkedDecoder over(1 << 20, limits);
  EXPECT_EQ(over.feed(trailers(4), out, used), ChunkedDecoder::Status::error);
  EXPECT_EQ(over.status(), 431);
  ChunkedDecoder many(1 << 20);
  EXPECT_EQ(many.feed(trailers(20000), out, used), ChunkedDecoder::Status::error) << "the default limit: 100 fields";
  EXPECT_EQ(many.status(), 431);
}

}  // namespace
}  // namespace corio::http
