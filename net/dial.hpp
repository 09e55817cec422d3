// dial: a TCP connection to "host:port", the way Go's net.Dialer makes one. The host is resolved (Resolver),
// then its addresses are tried with happy eyeballs (RFC 8305): the families interleaved (the first answer's
// family first), a new attempt whenever the last one failed or attempt_delay passed without an answer,
// the first to connect winning and the others cancelled and closed. The whole dial, lookup included, ends
// by `timeout`. The socket options (TCP_NODELAY, keepalive idle/interval/count) are set before connecting.
//   auto conn = co_await net::dial("db.internal:5432", {.timeout = 3s});
//   if (!conn) log(conn.error().message());   // "dial db.internal:5432: connect 10.0.0.7:5432: Connection refused"
#pragma once
#include <chrono>
#include <span>
#include <string_view>

#include "corio/net/resolver.hpp"
#include "corio/net/tcp_stream.hpp"

namespace corio::net {

struct DialOptions {
  Clock::duration timeout = std::chrono::seconds(30);          // lookup and connect together
  Clock::duration attempt_delay = std::chrono::milliseconds(250);  // RFC 8305's Connection Attempt Delay
  Family family = Family::any;
  // Go's defaults: no Nagle, keepalive probes after 15 s of silence.
  SocketOptions socket{.nodelay = true, .keepalive = Keepalive{std::chrono::seconds(15), std::chrono::seconds(15), 9}};
  Resolver* resolver = nullptr;  // nullptr: Resolver::current()
};

// Where a dial's time went (Go's httptrace DNS and connect phases).
struct DialTrace {
  Clock::duration resolve{};
  Clock::duration connect{};  // from the first attempt to the winner's connection
  unsigned attempts = 0;      // connections started
  Address address;            // the one that won
};

task<Result<TcpStream>> dial(std::string_view host_port, DialOptions options = {}, DialTrace* trace = nullptr);
// Happy eyeballs over addresses already known, in the order given (dial() interleaves the families first).
task<Result<TcpStream>> dial(std::span<const Address> addresses, DialOptions options = {}, DialTrace* trace = nullptr);

// RFC 8305 section 4: the addresses reordered so that the families alternate, starting with the first's.
std::vector<Address> interleave_families(std::span<const Address> addresses);

}  // namespace corio::net
