#include "corio/net/address.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace corio::net {

namespace {

// (Built by append: GCC 12 at -O3 gives a false -Wrestrict on chained operator+ of strings.)
Error bad(std::string_view text, const char* why) {
  std::string m = "address \"";
  m.append(text).append("\": ").append(why);
  return Error{.code = EINVAL, .context = std::move(m)};
}

}  // namespace

Result<HostPort> split_host_port(std::string_view text) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad(text, "missing \":port\"");
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (port_text.empty()) return bad(text, "missing port after ':'");
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size()) return bad(text, "port is not a number");
  if (port > 65535) return bad(text, "port out of range 0-65535");
  if (!host.empty() && host.front() == '[') {
    if (host.size() < 2 || host.back() != ']') return bad(text, "IPv6 host must be written [addr]");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad(text, "IPv6 host must be written [addr]:port");
  }
  return HostPort{host, static_cast<std::uint16_t>(port)};
}

Result<Address> Address::parse(std::string_view text) {
  auto hp = split_host_port(text);
  if (!hp) return hp.error();
  const auto [host, port] = *hp;
  Address a;
  if (!text.empty() && text.front() == '[') {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, std::string(host).c_str(), &sin6->sin6_addr) != 1) return bad(text, "not an IPv6 address");
    a.length_ = sizeof(sockaddr_in6);
    return a;
  }
  auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage_);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  a.length_ = sizeof(sockaddr_in);
  if (host.empty()) {
    sin->sin_addr.s_addr = htonl(INADDR_ANY);
  } else if (host == "localhost") {
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else if (inet_pton(AF_INET, std::string(host).c_str(), &sin->sin_addr) != 1) {
    return bad(text, "host is not an IP address (names other than localhost are resolved by net::Resolver and net::dial)");
  }
  return a;
}

Address Address::from(const sockaddr* sa, socklen_t len) {
  Address a;
  if (len > sizeof a.storage_) len = sizeof a.storage_;
  std::memcpy(&a.storage_, sa, len);
  a.length_ = len;
  return a;
}

Address Address::loopback_v4(std::uint16_t port) {
  Address a;
  auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage_);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.length_ = sizeof(sockaddr_in);
  return a;
}

std::uint16_t Address::port() const noexcept {
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
}

Address Address::with_port(std::uint16_t port) const noexcept {
  Address a = *this;
  if (family() == AF_INET6) a.storage_.v6.sin6_port = htons(port);
  else a.storage_.v4.sin_port = htons(port);
  return a;
}

bool Address::operator==(const Address& o) const noexcept {
  return length_ == o.length_ && std::memcmp(&storage_, &o.storage_, length_) == 0;
}

std::string Address::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  std::string s;
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf, sizeof buf);
    s.append("[").append(buf).append("]");
  } else if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof buf);
    s.append(buf);
  } else {
    return "(no address)";
  }
  s.append(":").append(std::to_string(port()));
  return s;
}

}  // namespace corio::net
