#include "corio/net/dial.hpp"

#include <optional>

#include "corio/runtime/event.hpp"
#include "corio/runtime/task_scope.hpp"

namespace corio::net {

namespace {

// The attempts of one dial, shared with their tasks (which the dial's TaskScope ends before it returns).
struct Race {
  std::optional<TcpStream> winner;
  Address winner_address;
  std::optional<Error> first_error;
  unsigned running = 0;
  bool failed = false;  // an attempt failed since the last one started: start the next now
  Event changed;
};

task<void> attempt(Address to, const SocketOptions& options, Race& race) {
  auto conn = co_await TcpStream::connect(to, std::nullopt, options);  // a stop of the scope cancels it
  --race.running;
  if (conn && !race.winner) {
    race.winner = std::move(*conn);
    race.winner_address = to;
  } else if (!conn && !conn.error().cancelled()) {
    race.failed = true;
    if (!race.first_error) race.first_error = conn.error();
  }
  race.changed.set();  // a connection that lost the race is closed as `conn` goes
}

Clock::time_point deadline_in(Clock::duration d) {
  const Clock::time_point now = Clock::now();
  return d >= Clock::time_point::max() - now ? Clock::time_point::max() : now + d;
}

std::string millis(Clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

Error dial_error(std::string_view what, Error e) {
  e.context = "dial " + std::string(what) + ": " + e.context;
  return e;
}

task<Result<TcpStream>> race(std::string_view what, std::span<const Address> addresses, const DialOptions& options,
                             Clock::time_point deadline, DialTrace* trace) {
  if (addresses.empty()) co_return explained_error(EHOSTUNREACH, "dial " + std::string(what), "no addresses");
  Race r;
  TaskScope scope;
  const Clock::time_point began = Clock::now();
  std::size_t next = 0;
  Clock::time_point next_at = began;
  std::error_code stopped;
  for (;;) {
    const Clock::time_point now = Clock::now();
    if (r.winner || (r.running == 0 && next == addresses.size()) || now >= deadline) break;
    if (next < addresses.size() && (r.running == 0 || r.failed || now >= next_at)) {
      r.failed = false;
      ++r.running;
      scope.spawn(attempt(addresses[next++], options.socket, r));
      next_at = now + options.attempt_delay;
      continue;  // it may have ended at once
    }
    r.changed.reset();
    stopped = co_await r.changed.wait(next < addresses.size() ? std::min(next_at, deadline) : deadline);
    if (stopped && stopped.value() != ETIMEDOUT) break;  // the dialing task was stopped
  }
  scope.request_stop();
  co_await scope.join();  // the losers are cancelled and closed
  if (trace != nullptr) {
    trace->connect = Clock::now() - began;
    trace->attempts = static_cast<unsigned>(next);
    if (r.winner) trace->address = r.winner_address;
  }
  if (r.winner) co_return std::move(*r.winner);
  if (stopped && stopped.value() == ECANCELED) {
    co_return explained_error(ECANCELED, "dial " + std::string(what), "stopped");
  }
  if (r.first_error && next == addresses.size() && Clock::now() < deadline) co_return dial_error(what, *r.first_error);
  co_return explained_error(ETIMEDOUT, "dial " + std::string(what),
                            "no connection within " + millis(options.timeout) + " (" + std::to_string(next) + " of " +
                                std::to_string(addresses.size()) + " addresses tried" +
                                (r.first_error ? "; " + r.first_error->message() : std::string()) + ")");
}

}  // namespace

std::vector<Address> interleave_families(std::span<const Address> addresses) {
  std::vector<Address> first, other;
  for (const Address& a : addresses) (a.family() == addresses.front().family() ? first : other).push_back(a);
  std::vector<Address> out;
  out.reserve(addresses.size());
  for (std::size_t i = 0; i < std::max(first.size(), other.size()); ++i) {
    if (i < first.size()) out.push_back(first[i]);
    if (i < other.size()) out.push_back(other[i]);
  }
  return out;
}

task<Result<TcpStream>> dial(std::span<const Address> addresses, DialOptions options, DialTrace* trace) {
  std::string what = addresses.empty() ? "(no address)" : addresses.front().to_string();
  co_return co_await race(what, addresses, options, deadline_in(options.timeout), trace);
}

task<Result<TcpStream>> dial(std::string_view host_port, DialOptions options, DialTrace* trace) {
  const std::string what(host_port);
  const Clock::time_point deadline = deadline_in(options.timeout);
  auto hp = split_host_port(what);
  if (!hp) co_return dial_error(what, hp.error());
  if (auto literal = Address::parse(what); literal && !hp->host.empty() && hp->host != "localhost") {
    const Address only[] = {*literal};  // an address: nothing to resolve (the trace's resolve stays zero)
    co_return co_await race(what, only, options, deadline, trace);
  }
  Resolver& resolver = options.resolver != nullptr ? *options.resolver : Resolver::current();
  const Clock::time_point began = Clock::now();
  auto addresses = co_await resolver.resolve(hp->host, hp->port, options.family, deadline);
  if (trace != nullptr) trace->resolve = Clock::now() - began;
  if (!addresses) co_return dial_error(what, addresses.error());
  const std::vector<Address> ordered = interleave_families(*addresses);
  co_return co_await race(what, ordered, options, deadline, trace);
}

}  // namespace corio::net
