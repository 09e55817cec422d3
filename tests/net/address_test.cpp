// Address parsing: every form a flag may take, and clear errors naming the input.
#include "corio/net/address.hpp"

#include <gtest/gtest.h>

namespace corio::net {
namespace {

TEST(Address, ParsesIpv4Ipv6AnyAndLocalhost) {
  struct Case {
    const char* in;
    const char* out;
    int family;
  };
  for (const Case& c : {Case{"127.0.0.1:7000", "127.0.0.1:7000", AF_INET}, Case{"[::1]:80", "[::1]:80", AF_INET6},
                        Case{":9000", "0.0.0.0:9000", AF_INET}, Case{"localhost:0", "127.0.0.1:0", AF_INET},
                        Case{"[::]:65535", "[::]:65535", AF_INET6}, Case{"10.1.2.3:0", "10.1.2.3:0", AF_INET}}) {
    auto a = Address::parse(c.in);
    ASSERT_TRUE(a) << c.in << ": " << a.error().message();
    EXPECT_EQ(a->to_string(), c.out);
    EXPECT_EQ(a->family(), c.family);
  }
}

TEST(Address, MalformedInputIsAClearErrorNamingIt) {
  struct Case {
    const char* in;
    const char* why;
  };
  for (const Case& c : {Case{"127.0.0.1", "missing \":port\""}, Case{"127.0.0.1:", "missing port"},
                        Case{"127.0.0.1:http", "not a number"}, Case{"127.0.0.1:65536", "out of range"},
                        Case{"127.0.0.1:-1", "not a number"}, Case{"::1:80", "must be written [addr]"},
                        Case{"[::1:80", "must be written [addr]"}, Case{"[zz]:80", "not an IPv6 address"},
                        Case{"999.1.1.1:80", "not an IP address"}, Case{"example.com:80", "resolved by net::Resolver and net::dial"},
                        Case{"", "missing"}}) {
    auto a = Address::parse(c.in);
    ASSERT_FALSE(a) << c.in;
    EXPECT_EQ(a.error().code, EINVAL);
    EXPECT_NE(a.error().context.find(std::string("\"") + c.in + "\""), std::string::npos) << a.error().context;
    EXPECT_NE(a.error().context.find(c.why), std::string::npos) << a.error().context;
  }
}

}  // namespace
}  // namespace corio::net
