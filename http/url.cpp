#include "corio/http/url.hpp"

#include <charconv>

namespace corio::http {

namespace {
net::Error bad(std::string_view url, const char* why) {
  return net::explained_error(EINVAL, "url \"" + std::string(url) + "\"", why);
}
}  // namespace

net::Result<Url> Url::parse(std::string_view text) {
  Url u;
  std::string_view rest;
  if (text.starts_with("http://")) {
    rest = text.substr(7);
  } else if (text.starts_with("https://")) {
    u.https = true;
    u.port = 443;
    rest = text.substr(8);
  } else {
    return bad(text, "not an http:// or https:// URL");
  }
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return bad(text, "a space or control byte");
  }
  if (std::size_t hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  const std::size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (u.target.front() == '?') u.target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) return bad(text, "userinfo (user@) is not supported");
  std::string_view port_text;
  if (authority.starts_with('[')) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad(text, "an IPv6 host without its ']'");
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) return bad(text, "bytes after the IPv6 host");
    if (!after.empty()) port_text = after.substr(1);
  } else {
    const std::size_t colon = authority.find(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (u.host.empty()) return bad(text, "no host");
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
      return bad(text, "a port that is not 1-65535");
    }
    u.port = static_cast<std::uint16_t>(port);
  }
  return u;
}

std::string Url::host_port() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Url::authority() const {
  const bool v6 = host.find(':') != std::string::npos;
  std::string a = v6 ? "[" + host + "]" : host;
  if (port != (https ? 443 : 80)) a += ":" + std::to_string(port);
  return a;
}

}  // namespace corio::http
