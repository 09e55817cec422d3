// Address: an IPv4 or IPv6 socket address, parsed from the forms a server's flags use:
//   "127.0.0.1:7000", "[::1]:7000", ":7000" (any IPv4 interface), "localhost:0" (port 0: the kernel picks).
// Names other than localhost are not resolved here (parse() says so): net::Resolver and net::dial do that.
#pragma once
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <string_view>

#include "corio/net/error.hpp"

namespace corio::net {

// "host:port" or "[v6]:port" split: the host without brackets, the port as a number. Errors name the text.
struct HostPort {
  std::string_view host;
  std::uint16_t port = 0;
};
Result<HostPort> split_host_port(std::string_view text);

class Address {
 public:
  Address() = default;
  static Result<Address> parse(std::string_view text);
  static Address from(const sockaddr* sa, socklen_t len);
  static Address loopback_v4(std::uint16_t port);

  int family() const noexcept { return storage_.any.sa_family; }
  std::uint16_t port() const noexcept;
  Address with_port(std::uint16_t port) const noexcept;
  bool operator==(const Address& o) const noexcept;
  const sockaddr* sockaddr_ptr() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t length() const noexcept { return length_; }
  // "127.0.0.1:7000" or "[::1]:7000".
  std::string to_string() const;

 private:
  // IPv4 or IPv6 only: 28 bytes, not sockaddr_storage's 128 (every connection keeps its peer's address).
  union Storage {
    sockaddr any;
    sockaddr_in v4;
    sockaddr_in6 v6;
  };
  Storage storage_{};
  socklen_t length_ = 0;
};

}  // namespace corio::net
