#include "corio/net/resolver.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <list>
#include <mutex>
#include <stop_token>
#include <system_error>
#include <unordered_map>

#include "corio/runtime/event.hpp"
#include "corio/runtime/log.hpp"
#include "corio/runtime/poll_fd.hpp"
#include "corio/runtime/reactor.hpp"
#include "corio/runtime/task_scope.hpp"

namespace corio::net {

namespace {

std::mutex defaults_mutex;
ResolverOptions defaults;  // guarded by defaults_mutex
thread_local Resolver* reactor_resolver = nullptr;

int library_status() {
  static const int status = ares_library_init(ARES_LIB_INIT_ALL);
  return status;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; });
  return out;
}

int ares_family(Family f) noexcept { return f == Family::v4 ? AF_INET : f == Family::v6 ? AF_INET6 : AF_UNSPEC; }

// A literal address ("127.0.0.1", "::1", "[::1]"), or nullopt for a name.
std::optional<Address> literal(std::string_view host, std::uint16_t port) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string h(host);
  sockaddr_in v4{};
  if (::inet_pton(AF_INET, h.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    return Address::from(reinterpret_cast<sockaddr*>(&v4), sizeof v4);
  }
  sockaddr_in6 v6{};
  if (::inet_pton(AF_INET6, h.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    return Address::from(reinterpret_cast<sockaddr*>(&v6), sizeof v6);
  }
  return std::nullopt;
}

Error failed(int code, std::string context, std::string_view why) { return explained_error(code, std::move(context), why); }


}  // namespace

struct Resolver::Impl {
  ResolverOptions options;
  ares_channel channel = nullptr;
  std::string servers;  // as queried, for messages
  ResolverStats stats;

  // The descriptors c-ares wants watched, each with the stop of its watching task.
  struct Watch {
    std::uint32_t events = 0;
    std::stop_source stop;
  };
  std::unordered_map<int, Watch> watches;

  // Lookups given to c-ares and not answered yet; joined by later lookups of the same name.
  // The waiters read only the query after it is answered (the Resolver may be gone by then).
  struct Query {
    Impl* impl;
    std::string key;
    std::string host;
    Family family;
    int status = ARES_SUCCESS;
    std::vector<Address> addresses;  // port 0
    std::optional<Error> error;      // set with a status other than ARES_SUCCESS
    Event answered;
  };
  std::unordered_map<std::string, std::shared_ptr<Query>> in_flight;

  struct Entry {
    std::string key;
    int status;                      // ARES_SUCCESS, ARES_ENOTFOUND or ARES_ENODATA
    std::vector<Address> addresses;  // port 0
    Clock::time_point expires;
  };
  std::list<Entry> lru;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> cache;

  Event timer_kick;
  bool timer_running = false;
  TaskScope scope;  // the watchers and the timer: ended before the channel (declared last)

  ~Impl() {
    // Answers every pending lookup with ARES_EDESTRUCTION and closes c-ares's sockets (through aclose).
    if (channel != nullptr) ares_destroy(channel);
  }

  static void on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<Impl*>(data)->watch(fd, (readable ? POLLIN : 0) | (writable ? POLLOUT : 0));
  }

  void watch(int fd, std::uint32_t events) {
    if (events == 0 && !watches.contains(fd)) return;
    Watch& w = watches[fd];
    if (w.events == events) return;
    if (w.events != 0) w.stop.request_stop();
    if (events == 0) {
      watches.erase(fd);
      return;
    }
    w.events = events;
    w.stop = std::stop_source();
    scope.spawn(watcher(fd, events, w.stop.get_token()));
  }

  task<void> watcher(int fd, std::uint32_t events, std::stop_token stop) {
    for (;;) {
      const int ready = co_await poll_fd(fd, events).stop_token(stop);
      if (stop.stop_requested()) co_return;
      if (ready < 0) {
        log::limited(log::Level::warning, "resolver poll", std::chrono::seconds(10), "resolver: waiting on a DNS socket: %s",
                     std::strerror(-ready));
        co_return;
      }
      const bool error = (ready & (POLLERR | POLLHUP)) != 0;
      ares_process_fd(channel, (ready & POLLIN) || error ? fd : ARES_SOCKET_BAD,
                      (ready & POLLOUT) || error ? fd : ARES_SOCKET_BAD);
    }
  }

  // c-ares's retries and timeouts: woken when a lookup starts, runs while any is in flight.
  task<void> timer() {
    while (!in_flight.empty()) {
      timeval most{1, 0}, buf{};
      const timeval* tv = ares_timeout(channel, &most, &buf);  // &most or &buf, whichever is sooner
      // c-ares rounds down to whole milliseconds: under 1 ms left reads as 0, and waiting for 0 would spin.
      const Clock::duration left = std::max<Clock::duration>(
          std::chrono::seconds(tv->tv_sec) + std::chrono::microseconds(tv->tv_usec), std::chrono::milliseconds(1));
      timer_kick.reset();
      (void)co_await timer_kick.wait(Clock::now() + left);
      ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    }
    timer_running = false;
  }

  void start_timer() {
    if (timer_running) {
      timer_kick.set();
      return;
    }
    timer_running = true;
    scope.spawn(timer());
  }

  static void on_answer(void* arg, int status, int /*timeouts*/, ares_addrinfo* res) {
    auto* q = static_cast<Query*>(arg);
    Impl& impl = *q->impl;
    auto it = impl.in_flight.find(q->key);
    std::shared_ptr<Query> keep = std::move(it->second);  // the waiters hold it too
    impl.in_flight.erase(it);
    q->status = status;
    int ttl = -1;
    if (res != nullptr) {
      for (ares_addrinfo_node* n = res->nodes; n != nullptr; n = n->ai_next) {
        if (n->ai_family != AF_INET && n->ai_family != AF_INET6) continue;
        Address a = Address::from(n->ai_addr, n->ai_addrlen);
        if (std::find(q->addresses.begin(), q->addresses.end(), a) == q->addresses.end()) q->addresses.push_back(a);
        ttl = ttl < 0 ? n->ai_ttl : std::min(ttl, n->ai_ttl);
      }
      for (ares_addrinfo_cname* c = res->cnames; c != nullptr; c = c->next) ttl = ttl < 0 ? c->ttl : std::min(ttl, c->ttl);
      ares_freeaddrinfo(res);
    }
    if (q->status == ARES_SUCCESS && q->addresses.empty()) q->status = ARES_ENODATA;
    if (q->status != ARES_SUCCESS) q->error = impl.failure(q->host, q->status, q->family);
    if (status != ARES_EDESTRUCTION) impl.remember(q->key, q->status, q->addresses, ttl);
    q->answered.set();
  }

  void remember(const std::string& key, int status, const std::vector<Address>& addresses, int ttl) {
    Clock::duration keep{};
    if (status == ARES_SUCCESS && ttl > 0) keep = std::min<Clock::duration>(std::chrono::seconds(ttl), options.max_ttl);
    else if (status == ARES_ENOTFOUND || status == ARES_ENODATA) keep = options.negative_ttl;
    if (keep <= Clock::duration::zero() || options.cache_entries == 0) return;
    if (auto old = cache.find(key); old != cache.end()) {
      lru.erase(old->second);
      cache.erase(old);
    }
    while (cache.size() >= options.cache_entries) {
      cache.erase(lru.back().key);
      lru.pop_back();
      ++stats.evicted;
    }
    lru.push_front(Entry{key, status, addresses, Clock::now() + keep});
    cache.emplace(key, lru.begin());
  }

  Error failure(std::string_view host, int status, Family family) const {
    int code = EIO;
    std::string why;
    switch (status) {
      case ARES_ENOTFOUND:
        code = EHOSTUNREACH;
        why = "NXDOMAIN from " + servers;
        break;
      case ARES_ENODATA:
        code = EHOSTUNREACH;
        why = std::string(family == Family::v4 ? "no A record" : family == Family::v6 ? "no AAAA record" : "no A or AAAA records") +
                   " (NODATA) from " + servers;
        break;
      case ARES_ETIMEOUT:
        code = ETIMEDOUT;
        why = "no answer from " + servers + " in " + std::to_string(options.attempts) + " attempts of " +
                   std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(options.timeout).count()) +
                   " ms (doubled each round)";
        break;
      case ARES_ECONNREFUSED:  // c-ares 1.18 also says this for an answer with rcode REFUSED
        code = ECONNREFUSED;
        why = "refused by " + servers + " (a connection refused, or an answer REFUSED)";
        break;
      case ARES_EREFUSED:
        code = ECONNREFUSED;
        why = "REFUSED by " + servers;
        break;
      case ARES_ESERVFAIL:
        code = EAGAIN;
        why = "SERVFAIL from " + servers;
        break;
      case ARES_EBADNAME:
        code = EINVAL;
        why = "not a valid host name";
        break;
      case ARES_EDESTRUCTION:
      case ARES_ECANCELLED:
        code = ECANCELED;
        why = "the resolver was ended";
        break;
      default:
        why = std::string(ares_strerror(status)) + " (" + servers + ")";
    }
    return failed(code, "resolve " + std::string(host), why);
  }

  // Socket functions: corio opens and closes c-ares's sockets, so that a close goes through the backend
  // (the operation waiting on the descriptor ends first, and the number is not reused under it).
  static ares_socket_t open_socket(int domain, int type, int protocol, void*) {
    const int fd = ::socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    return fd < 0 ? ARES_SOCKET_BAD : fd;
  }
  static int close_socket(ares_socket_t fd, void* data) {
    static_cast<Impl*>(data)->watch(fd, 0);
    if (Reactor* r = Reactor::current()) r->backend().close(fd, true);
    else ::close(fd);
    return 0;
  }
  static int connect_socket(ares_socket_t fd, const sockaddr* to, ares_socklen_t len, void*) { return ::connect(fd, to, len); }
  static ares_ssize_t receive(ares_socket_t fd, void* buf, size_t len, int flags, sockaddr* from, ares_socklen_t* from_len,
                              void*) {
    return ::recvfrom(fd, buf, len, flags, from, from_len);
  }
  static ares_ssize_t send(ares_socket_t fd, const iovec* iov, int count, void*) {
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(iov);
    m.msg_iovlen = static_cast<std::size_t>(count);
    return ::sendmsg(fd, &m, MSG_NOSIGNAL);
  }
  static constexpr ares_socket_functions kSockets{open_socket, close_socket, connect_socket, receive, send};
};

Result<std::unique_ptr<Resolver>> Resolver::create(ResolverOptions options) {
  if (Reactor::current() == nullptr) throw std::logic_error("net::Resolver::create: not on a reactor");
  if (int s = library_status(); s != ARES_SUCCESS) return failed(EIO, "resolver: c-ares", ares_strerror(s));
  if (options.timeout <= Clock::duration::zero() || options.attempts < 1) {
    return failed(EINVAL, "resolver: options", "timeout and attempts must be positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  const ResolverOptions& o = impl->options;
  ares_options ao{};
  ao.sock_state_cb = &Impl::on_socket_state;
  ao.sock_state_cb_data = impl.get();
  ao.timeout = static_cast<int>(std::max<long long>(1, std::chrono::duration_cast<std::chrono::milliseconds>(o.timeout).count()));
  ao.tries = o.attempts;
  char lookups_dns[] = "b", lookups_both[] = "fb";
  ao.lookups = o.hosts_file ? lookups_both : lookups_dns;
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;
  if (!o.search) {  // no search list, and none from LOCALDOMAIN / RES_OPTIONS either (c-ares 1.18's
    ao.flags = ARES_FLAG_NOSEARCH;  // getaddrinfo searches despite NOSEARCH)
    ao.domains = nullptr;
    ao.ndomains = 0;
    ao.ndots = 1;
    mask |= ARES_OPT_FLAGS | ARES_OPT_DOMAINS | ARES_OPT_NDOTS;
  }
  if (int s = ares_init_options(&impl->channel, &ao, mask); s != ARES_SUCCESS) {
    impl->channel = nullptr;
    return failed(EIO, "resolver: starting c-ares", ares_strerror(s));
  }
  ares_set_socket_functions(impl->channel, &Impl::kSockets, impl.get());
  if (!o.servers.empty()) {
    std::string csv;
    for (const std::string& s : o.servers) {
      auto parsed = Address::parse(s);
      if (!parsed || parsed->port() == 0) {
        return failed(EINVAL, "resolver: server \"" + s + "\"", "not an address with a port (\"127.0.0.1:5353\", \"[::1]:53\")");
      }
      csv += (csv.empty() ? "" : ",") + parsed->to_string();
    }
    if (int s = ares_set_servers_ports_csv(impl->channel, csv.c_str()); s != ARES_SUCCESS) {
      return failed(EINVAL, "resolver: servers \"" + csv + "\"", ares_strerror(s));
    }
  }
  ares_addr_port_node* list = nullptr;
  if (ares_get_servers_ports(impl->channel, &list) == ARES_SUCCESS) {
    for (ares_addr_port_node* n = list; n != nullptr; n = n->next) {
      char text[INET6_ADDRSTRLEN] = "?";
      ::inet_ntop(n->family, &n->addr, text, sizeof text);
      const int port = n->udp_port != 0 ? n->udp_port : 53;
      impl->servers += (impl->servers.empty() ? "" : ",") +
                       (n->family == AF_INET6 ? "[" + std::string(text) + "]" : std::string(text)) + ":" + std::to_string(port);
    }
    ares_free_data(list);
  }
  if (impl->servers.empty()) impl->servers = "no servers";
  return std::unique_ptr<Resolver>(new Resolver(std::move(impl)));
}

Resolver& Resolver::current() {
  if (reactor_resolver != nullptr) return *reactor_resolver;
  Reactor* reactor = Reactor::current();
  if (reactor == nullptr) throw std::logic_error("net::Resolver::current: not on a reactor");
  ResolverOptions options;
  {
    std::lock_guard lock(defaults_mutex);
    options = defaults;
  }
  auto made = create(std::move(options));
  if (!made) throw std::system_error(made.error().code, std::generic_category(), made.error().message());
  reactor_resolver = made->release();
  reactor->at_stop([] { delete std::exchange(reactor_resolver, nullptr); });
  return *reactor_resolver;
}

void Resolver::set_defaults(ResolverOptions options) {
  std::lock_guard lock(defaults_mutex);
  defaults = std::move(options);
}

Resolver::Resolver(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}

Resolver::~Resolver() = default;

const ResolverStats& Resolver::stats() const noexcept { return impl_->stats; }
const std::string& Resolver::servers() const noexcept { return impl_->servers; }
std::size_t Resolver::cached() const noexcept { return impl_->cache.size(); }

task<Result<std::vector<Address>>> Resolver::resolve(std::string_view host, std::uint16_t port, Family family,
                                                     Clock::time_point deadline) {
  if (auto a = literal(host, port)) {
    if ((family == Family::v4 && a->family() != AF_INET) || (family == Family::v6 && a->family() != AF_INET6)) {
      co_return failed(EHOSTUNREACH, "resolve " + std::string(host), "a literal address of the other family");
    }
    co_return std::vector<Address>{*a};
  }
  if (host.empty() || host.size() > 253 || host.find('\0') != std::string_view::npos) {
    co_return impl_->failure(host, ARES_EBADNAME, family);
  }
  const std::string name(host);
  std::string key = lowercase(host.ends_with('.') ? host.substr(0, host.size() - 1) : host);  // "a.b." is "a.b"
  key += family == Family::v4 ? "/4" : family == Family::v6 ? "/6" : "/*";
  Impl& impl = *impl_;
  std::shared_ptr<Impl::Query> q;
  if (auto hit = impl.cache.find(key); hit != impl.cache.end()) {
    if (hit->second->expires > Clock::now()) {
      impl.lru.splice(impl.lru.begin(), impl.lru, hit->second);
      ++impl.stats.hits;
      const Impl::Entry& e = *hit->second;
      if (e.status != ARES_SUCCESS) {
        ++impl.stats.negative_hits;
        co_return impl.failure(host, e.status, family);
      }
      std::vector<Address> out;
      out.reserve(e.addresses.size());
      for (const Address& a : e.addresses) out.push_back(a.with_port(port));
      co_return out;
    }
    impl.lru.erase(hit->second);
    impl.cache.erase(hit);
  }
  if (auto joined = impl.in_flight.find(key); joined != impl.in_flight.end()) {
    ++impl.stats.shared;
    q = joined->second;
  } else {
    ++impl.stats.queries;
    q = std::make_shared<Impl::Query>();
    q->impl = &impl;
    q->key = key;
    q->host = name;
    q->family = family;
    impl.in_flight.emplace(key, q);
    ares_addrinfo_hints hints{};
    hints.ai_family = ares_family(family);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = ARES_AI_NOSORT;  // the dialer interleaves the families itself (RFC 8305)
    ares_getaddrinfo(impl.channel, name.c_str(), nullptr, &hints, &Impl::on_answer, q.get());  // may answer at once
    if (!q->answered.is_set()) impl.start_timer();
  }
  if (std::error_code ec = co_await q->answered.wait(deadline)) {
    co_return failed(ec.value(), "resolve " + name,
                     ec.value() == ETIMEDOUT ? "the caller's deadline passed" : "the lookup was stopped");
  }
  if (q->error) co_return *q->error;
  std::vector<Address> out;
  out.reserve(q->addresses.size());
  for (const Address& a : q->addresses) out.push_back(a.with_port(port));
  co_return out;
}

}  // namespace corio::net
