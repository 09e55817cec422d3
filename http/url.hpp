// Url: an http:// or https:// URL split for a client: scheme, host, port (80 / 443 when absent), and the
// request target (path and query, "/" when absent). A fragment is dropped; userinfo, other schemes, a
// malformed port, spaces or control bytes are refused with an Error naming the URL.
//   auto u = http::Url::parse("https://example.test:8443/a?b=1");   // u->target == "/a?b=1"
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "corio/net/error.hpp"

namespace corio::http {

struct Url {
  bool https = false;
  std::string host;      // a name, an IPv4 address, or an IPv6 address without brackets
  std::uint16_t port = 80;
  std::string target;    // "/path?query"

  static net::Result<Url> parse(std::string_view text);
  // "host:port" as the dialer takes it ("[::1]:8080" for IPv6).
  std::string host_port() const;
  // The Host header: the port only when it is not the scheme's default.
  std::string authority() const;
};

}  // namespace corio::http
