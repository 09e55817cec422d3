// The HTTP/1.1 head parser on its own: where a request's head ends, and the parse, for three heads a
// server sees (wrk's, ab's and a browser's). For callgrind, instructions per parse are repeatable:
//   valgrind --tool=callgrind build/release/bench/http-bench --benchmark_filter=Browser
#include <benchmark/benchmark.h>

#include <string_view>

#include "corio/http/head_parser.hpp"

namespace {

using namespace std::literals;

constexpr std::string_view kWrk = "GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"sv;
constexpr std::string_view kAb =
    "GET /plaintext HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: 127.0.0.1:8080\r\nUser-Agent: ApacheBench/2.3\r\n"
    "Accept: */*\r\n\r\n"sv;
constexpr std::string_view kBrowser =
    "GET /static/app.js?v=3 HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "Connection: keep-alive\r\n"
    "sec-ch-ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\r\n"
    "sec-ch-ua-mobile: ?0\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n"
    "sec-ch-ua-platform: \"Linux\"\r\n"
    "Accept: */*\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: no-cors\r\n"
    "Sec-Fetch-Dest: script\r\n"
    "Referer: https://www.example.com/index.html\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-GB,en;q=0.9\r\n"
    "Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n"
    "If-None-Match: \"5f2b-1a2b3c\"\r\n"
    "\r\n"sv;

void Parse(benchmark::State& state, std::string_view head) {
  corio::http::RequestHead out;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop
    std::size_t scanned = 0;
    const std::size_t end = corio::http::find_head_end(head, scanned);
    corio::http::HeadError e = corio::http::parse_request_head(head.substr(0, end), out, {});
    benchmark::DoNotOptimize(e);
    benchmark::DoNotOptimize(out);
    if (e.status != 0 || end != head.size()) state.SkipWithError(e.reason);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * head.size()));
}
BENCHMARK_CAPTURE(Parse, Wrk, kWrk);
BENCHMARK_CAPTURE(Parse, Ab, kAb);
BENCHMARK_CAPTURE(Parse, Browser, kBrowser);

}  // namespace

BENCHMARK_MAIN();
