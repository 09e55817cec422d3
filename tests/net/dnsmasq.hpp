// dnsmasq on a free port of 127.0.0.1, answering only from its own test records (names under .test),
// every query logged: for the resolver's tests and benchmarks. Stopped (by its PID) when destroyed.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace corio::testing {

inline sockaddr_in loopback_address(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A new socket of `type` bound to 127.0.0.1:port (0: a free port, written back to `port`); -1 (errno
// kept) when the port is taken.
inline int bind_loopback(int type, std::uint16_t& port) {
  const int fd = ::socket(AF_INET, type, 0);
  sockaddr_in a = loopback_address(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  socklen_t len = sizeof a;
  (void)::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

// A port free on 127.0.0.1 for `type` right now.
inline std::uint16_t free_port(int type) {
  std::uint16_t port = 0;
  ::close(bind_loopback(type, port));
  return port;
}

// A port free on 127.0.0.1 for UDP and TCP both (a DNS server binds both), drawn below the kernel's
// ephemeral range: no client connection takes its source port there (load tests running beside this one
// leave thousands in TIME_WAIT, and a TCP bind to one of those fails).
inline std::uint16_t free_dns_port() {
  int low = 32768;
  if (std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range"); range) range >> low;
  const int first = std::max(1024, low - 12000);
  std::minstd_rand pick(static_cast<unsigned>(::getpid()) ^ static_cast<unsigned>(std::random_device{}()));
  for (int i = 0; i < 50; ++i) {
    std::uint16_t port = static_cast<std::uint16_t>(first + static_cast<int>(pick() % static_cast<unsigned>(low - first)));
    if (const int udp = bind_loopback(SOCK_DGRAM, port); udp >= 0) {
      ::close(udp);
      if (const int tcp = bind_loopback(SOCK_STREAM, port); tcp >= 0) {
        ::close(tcp);
        return port;
      }
    }
  }
  return free_port(SOCK_DGRAM);
}

inline bool udp_port_taken(std::uint16_t port) {
  const int fd = bind_loopback(SOCK_DGRAM, port);
  if (fd < 0) return errno == EADDRINUSE;
  ::close(fd);
  return false;
}

// Records: db.test (127.0.0.1 and ::1, TTL 1 s), v4only.test (no AAAA), long.test (TTL 3600 s), a/b/c.test;
// any other name under .test is NXDOMAIN.
class Dnsmasq {
 public:
  Dnsmasq() : log_("/tmp/corio-dnsmasq-" + std::to_string(::getpid()) + ".log") {
    // A port can be taken between the check and dnsmasq's bind: a few tries, each on a new port.
    for (int attempt = 0; attempt < 3 && !running(); ++attempt) {
      stop();
      port_ = free_dns_port();
      start();
    }
  }
  ~Dnsmasq() {
    stop();
    ::unlink(log_.c_str());
  }
  bool running() const { return pid_ > 0 && udp_port_taken(port_); }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  // Queries the server logged for `name` so far ("query[A] db.test from 127.0.0.1").
  int queries_for(const std::string& name) const {
    std::ifstream in(log_);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) n += line.find("query[") != std::string::npos && line.find("] " + name + " ") != std::string::npos;
    return n;
  }

 private:
  void start() {
    std::vector<std::string> args = {
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
        "--listen-address=127.0.0.1", "--port=" + std::to_string(port_), "--user=root", "--pid-file",
        "--log-queries", "--log-facility=" + log_,
        "--local=/test/",                         // names under .test that are not below: NXDOMAIN
        "--host-record=db.test,127.0.0.1,::1,1",  // both families, TTL 1 s
        "--host-record=v4only.test,127.0.0.1,60", // no AAAA: NODATA for IPv6
        "--host-record=long.test,127.0.0.1,3600", // a TTL the cache caps
        "--host-record=a.test,127.0.0.1,60", "--host-record=b.test,127.0.0.1,60", "--host-record=c.test,127.0.0.1,60"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const char* path = ::access("/usr/sbin/dnsmasq", X_OK) == 0 ? "/usr/sbin/dnsmasq" : "dnsmasq";
    if (::posix_spawnp(&pid_, path, nullptr, nullptr, argv.data(), environ) != 0) pid_ = -1;
    for (int i = 0; i < 300 && pid_ > 0 && !udp_port_taken(port_); ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;  // it exited: its port was taken
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }
  std::uint16_t port_ = 0;
  std::string log_;
  pid_t pid_ = -1;
};

}  // namespace corio::testing
