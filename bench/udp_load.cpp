// udp-load: the load generator of bench/udp-compare. N connected UDP sockets keep K datagrams in flight in
// all against an echo server; each echo that comes back (checked byte for byte) sends the next one. Plain
// epoll and system calls, no corio, so that it measures the same way against every server. A socket whose
// echoes stop for 200 ms counts its window as lost and sends a new one (UDP drops; the run goes on).
//   udp-load --target 127.0.0.1:7000 [--sockets 8] [--inflight 64] [--size 64] [--duration 3] [--warmup 1]
// Prints one JSON line: datagrams echoed in the measured window, per second, lost, errors, latency.
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "corio/net/address.hpp"
#include "examples/flags.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Header {
  std::uint32_t socket;
  std::uint32_t seq;
  std::int64_t sent_ns;
};

// The bytes after the header: a function of the sequence number, so that an echo can be checked.
void fill(char* p, std::size_t n, std::uint32_t seq) {
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<char>('a' + (seq + i) % 26);
}

std::int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

struct Peer {
  int fd = -1;
  std::uint32_t seq = 0;
  unsigned inflight = 0;
  Clock::time_point progress;
};

}  // namespace

int main(int argc, char** argv) {
  std::string target;
  unsigned long sockets = 8, inflight = 64, size = 64, duration = 3, warmup = 1;
  const char* usage = "--target HOST:PORT [--sockets N] [--inflight K] [--size BYTES] [--duration S] [--warmup S]";
  if (!corio::examples::parse_pairs(argc, argv, {{"--target", target}},
                                    {{"--sockets", sockets, 4096, 1}, {"--inflight", inflight, 1 << 20, 1},
                                     {"--size", size, 65000, sizeof(Header)}, {"--duration", duration, 3600, 1},
                                     {"--warmup", warmup, 3600}},
                                    usage)) {
    return 2;
  }
  auto to = corio::net::Address::parse(target);
  if (!to) {
    std::fprintf(stderr, "udp-load: --target: %s\nusage: udp-load %s\n", to.error().message().c_str(), usage);
    return 2;
  }
  const unsigned per_socket = static_cast<unsigned>(std::max<unsigned long>(1, inflight / sockets));
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<Peer> peers(sockets);
  for (std::size_t i = 0; i < peers.size(); ++i) {
    int fd = ::socket(to->family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, to->sockaddr_ptr(), to->length()) != 0) {
      std::fprintf(stderr, "udp-load: connect %s: %s\n", target.c_str(), std::strerror(errno));
      return 1;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    peers[i].fd = fd;
  }
  std::vector<char> out(size), in(65536);
  std::uint64_t echoed = 0, lost = 0, errors = 0, mismatched = 0;
  std::vector<std::uint32_t> latency_us(100'001);  // a bucket per microsecond, the last one for "longer"
  bool measuring = false;

  auto send_next = [&](std::size_t i) {
    Peer& p = peers[i];
    Header h{static_cast<std::uint32_t>(i), p.seq, now_ns()};
    std::memcpy(out.data(), &h, sizeof h);
    fill(out.data() + sizeof h, size - sizeof h, p.seq);
    if (::send(p.fd, out.data(), size, MSG_DONTWAIT) == static_cast<ssize_t>(size)) {
      ++p.seq;
      ++p.inflight;
      return true;
    }
    if (errno != EAGAIN) ++errors;
    return false;  // retried on the next turn
  };
  auto refill = [&](std::size_t i) {
    while (peers[i].inflight < per_socket && send_next(i)) {
    }
  };

  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::seconds(warmup);
  const auto end = measure_from + std::chrono::seconds(duration);
  for (std::size_t i = 0; i < peers.size(); ++i) peers[i].progress = start, refill(i);
  std::vector<char> expect(size);
  for (;;) {
    const auto now = Clock::now();
    if (now >= end) break;
    if (!measuring && now >= measure_from) measuring = true;
    epoll_event events[64];
    const int n = ::epoll_wait(ep, events, 64, 10);
    for (int e = 0; e < n; ++e) {
      const std::size_t i = events[e].data.u64;
      Peer& p = peers[i];
      for (;;) {
        ssize_t got = ::recv(p.fd, in.data(), in.size(), MSG_DONTWAIT);
        if (got < 0) {
          if (errno != EAGAIN) ++errors;
          break;
        }
        Header h{};
        bool ok = static_cast<std::size_t>(got) == size;
        if (ok) {
          std::memcpy(&h, in.data(), sizeof h);
          fill(expect.data(), size - sizeof h, h.seq);
          ok = h.socket == i && std::memcmp(in.data() + sizeof h, expect.data(), size - sizeof h) == 0;
        }
        if (!ok) {
          ++mismatched;
          continue;
        }
        p.progress = Clock::now();
        if (p.inflight > 0) --p.inflight;
        if (measuring) {
          ++echoed;
          const auto us = static_cast<std::uint64_t>(std::max<std::int64_t>(0, now_ns() - h.sent_ns) / 1000);
          ++latency_us[std::min<std::uint64_t>(us, latency_us.size() - 1)];
        }
      }
      refill(i);
    }
    const auto t = Clock::now();
    for (std::size_t i = 0; i < peers.size(); ++i) {
      Peer& p = peers[i];
      if (p.inflight > 0 && t - p.progress > std::chrono::milliseconds(200)) {
        lost += p.inflight;  // dropped somewhere: a new window
        p.inflight = 0;
        p.progress = t;
      }
      if (p.inflight < per_socket) refill(i);
    }
  }
  auto percentile = [&](double q) {
    std::uint64_t total = 0;
    for (std::uint32_t c : latency_us) total += c;
    std::uint64_t seen = 0;
    for (std::size_t us = 0; us < latency_us.size(); ++us) {
      seen += latency_us[us];
      if (total > 0 && static_cast<double>(seen) >= q * static_cast<double>(total)) return static_cast<double>(us);
    }
    return 0.0;
  };
  std::printf("{\"datagrams\": %llu, \"datagrams_per_s\": %.1f, \"lost\": %llu, \"errors\": %llu, \"mismatched\": %llu, "
              "\"verified\": %s, \"latency_us\": {\"p50\": %.0f, \"p99\": %.0f}, \"sockets\": %lu, \"inflight\": %u, "
              "\"size\": %lu}\n",
              static_cast<unsigned long long>(echoed), static_cast<double>(echoed) / static_cast<double>(duration),
              static_cast<unsigned long long>(lost), static_cast<unsigned long long>(errors),
              static_cast<unsigned long long>(mismatched), echoed > 0 && mismatched == 0 ? "true" : "false",
              percentile(0.5), percentile(0.99), sockets, per_socket * static_cast<unsigned>(sockets), size);
  for (Peer& p : peers) ::close(p.fd);
  ::close(ep);
  return 0;
}
