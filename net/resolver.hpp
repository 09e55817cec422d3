// Resolver: host names to addresses on the reactor, through c-ares. Its sockets are opened by corio and
// waited on with reactor operations (io_uring poll, or the epoll backend's wait), so a lookup never blocks
// a reactor. /etc/hosts first, then DNS (A and AAAA) to the servers of /etc/resolv.conf or `servers`.
// Answers are cached for their TTL (at most max_ttl), NXDOMAIN and names without addresses for
// negative_ttl, in a cache of at most cache_entries names (least recently used out first); concurrent
// lookups of one name share one query.
//   auto addrs = co_await net::Resolver::current().resolve("db.internal", 5432);
//   if (!addrs) log(addrs.error().message());   // "resolve db.internal: NXDOMAIN from 127.0.0.1:5353"
// A Resolver belongs to the reactor that created it and is used there only: the cache is per reactor, so
// lookups take no lock (each reactor asks once per TTL; the answers are small). current() is the calling
// reactor's own, made on first use with the options of set_defaults(), and ended when the reactor stops.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "corio/net/address.hpp"
#include "corio/net/error.hpp"
#include "corio/runtime/task.hpp"
#include "corio/runtime/time.hpp"

namespace corio::net {

struct ResolverOptions {
  std::vector<std::string> servers;               // "127.0.0.1:5353", "[::1]:53"; empty: /etc/resolv.conf
  Clock::duration timeout = std::chrono::seconds(2);  // per attempt (c-ares doubles it on each round)
  int attempts = 2;                                // rounds over the servers
  bool hosts_file = true;                          // /etc/hosts before DNS
  bool search = true;  // resolv.conf's search domains and ndots ("db" may be asked as "db.corp.example")
  std::chrono::seconds max_ttl{300};               // answers are cached for min(TTL, max_ttl)
  std::chrono::seconds negative_ttl{5};            // NXDOMAIN (and no A/AAAA) cached this long
  std::size_t cache_entries = 4096;                // names cached, per reactor
};

enum class Family { any, v4, v6 };

struct ResolverStats {
  std::uint64_t hits = 0;           // answered from the cache (negative answers too)
  std::uint64_t negative_hits = 0;  // of which NXDOMAIN or no addresses
  std::uint64_t queries = 0;        // lookups given to c-ares (cache misses)
  std::uint64_t shared = 0;         // lookups that joined a query already in flight
  std::uint64_t evicted = 0;        // names dropped from a full cache
};

class Resolver {
 public:
  // On the current reactor. Fails (an Error naming the option) for a malformed server or when c-ares
  // cannot start (an unreadable /etc/resolv.conf with no servers given).
  static Result<std::unique_ptr<Resolver>> create(ResolverOptions options = {});
  // The current reactor's resolver; throws std::system_error if it cannot be made.
  static Resolver& current();
  // The options current() uses on reactors that have not made theirs yet (call before the Runtime).
  static void set_defaults(ResolverOptions options);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // The addresses of `host` with `port`: IPv6 and IPv4 as the answers came, or the literal address itself
  // ("127.0.0.1", "::1"). An Error (code EHOSTUNREACH for no such name, ETIMEDOUT, ECONNREFUSED, EINVAL
  // for a malformed name, ECANCELED) with a reason that says what the DNS said and which servers said it.
  // Past `deadline`, or stopped, the caller gets ETIMEDOUT or ECANCELED at once; the query itself runs on
  // to its own timeout and its answer is still cached.
  task<Result<std::vector<Address>>> resolve(std::string_view host, std::uint16_t port, Family family = Family::any,
                                             Clock::time_point deadline = Clock::time_point::max());

  const ResolverStats& stats() const noexcept;
  // "127.0.0.1:5353" (the servers queried, comma-separated).
  const std::string& servers() const noexcept;
  std::size_t cached() const noexcept;  // names in the cache now

  struct Impl;

 private:
  explicit Resolver(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace corio::net
