// http-get: fetches each URL in turn through one http::Client (connections reused), printing the status,
// the body's size and where the time went (Go's httptrace phases).
//   http-get [--resolver HOST:PORT] [--ca FILE] [--timeout S] [--backend uring|epoll] URL...
//   200 http://127.0.0.1:8080/plaintext  13 bytes  dns 0.00 ms  connect 0.09 ms  tls 0.00 ms  first byte 0.12 ms  total 0.14 ms
//   200 http://127.0.0.1:8080/json  27 bytes  ...  (reused)
// Exits 0 when every URL got a response (any status), 1 when one failed (the reason on stderr), 2 for bad flags.
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "corio/http/client.hpp"
#include "corio/runtime/runtime.hpp"
#include "examples/flags.hpp"

namespace {

double ms(corio::Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

int usage(const char* why, const char* what) {
  std::fprintf(stderr, "http-get: %s%s\nusage: http-get [--resolver HOST:PORT] [--ca FILE] [--timeout S] [--backend uring|epoll] URL...\n",
               why, what);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string resolver, ca, backend = "uring";
  unsigned long timeout = 30;
  std::vector<std::string> urls;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (!arg.starts_with("--")) {
      urls.emplace_back(arg);
      continue;
    }
    if (i + 1 >= argc) return usage("missing value for ", argv[i]);
    const char* value = argv[++i];
    if (arg == "--resolver") resolver = value;
    else if (arg == "--ca") ca = value;
    else if (arg == "--backend") backend = value;
    else if (arg == "--timeout") {
      if (!corio::examples::parse_number(value, 3600, timeout) || timeout == 0) return usage("--timeout: not a valid value: ", value);
    } else {
      return usage("unknown flag ", argv[i - 1]);
    }
  }
  if (urls.empty()) return usage("no URL", "");
  corio::BackendOptions backend_options;
  if (!corio::examples::parse_backend(backend.c_str(), backend_options.kind)) return usage("--backend: not a valid value: ", backend.c_str());
  std::optional<corio::tls::Context> tls;
  bool need_tls = false;
  for (const std::string& u : urls) need_tls = need_tls || u.starts_with("https://");
  if (need_tls || !ca.empty()) {
    auto ctx = corio::tls::Context::client({.ca_file = ca, .alpn = {"http/1.1"}});
    if (!ctx) {
      std::fprintf(stderr, "http-get: %s\n", ctx.error().message().c_str());
      return 1;
    }
    tls.emplace(std::move(*ctx));
  }
  // --resolver: that server, the names as written (no search domains from resolv.conf).
  if (!resolver.empty()) corio::net::Resolver::set_defaults({.servers = {resolver}, .search = false});

  corio::Runtime rt({.reactors = 1, .backend = backend_options});
  return rt.run([&]() -> corio::task<int> {
    corio::http::Client client({.tls = tls ? &*tls : nullptr});
    int failed = 0;
    for (const std::string& url : urls) {
      auto res = co_await client.send({.url = url, .deadline = corio::Clock::now() + std::chrono::seconds(timeout)});
      if (!res) {
        std::fprintf(stderr, "http-get: %s\n", res.error().message().c_str());
        ++failed;
        continue;
      }
      auto body = co_await res->text();
      if (!body) {
        std::fprintf(stderr, "http-get: %s: the body: %s\n", url.c_str(), body.error().message().c_str());
        ++failed;
        continue;
      }
      const corio::http::Timings& t = res->timings();
      std::printf("%d %s  %zu bytes  dns %.2f ms  connect %.2f ms  tls %.2f ms%s  first byte %.2f ms  total %.2f ms%s%s\n",
                  res->status(), url.c_str(), body->size(), ms(t.dns), ms(t.connect), ms(t.tls),
                  t.tls_resumed ? " (resumed)" : "", ms(t.first_byte), ms(t.total), t.reused ? "  (reused)" : "",
                  t.retried ? "  (retried)" : "");
    }
    co_return failed == 0 ? 0 : 1;
  }());
}
