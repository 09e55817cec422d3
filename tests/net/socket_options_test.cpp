// Socket-option helpers, each read back with getsockopt on a real socket.
#include "corio/net/socket_options.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace corio::net {
namespace {

using namespace std::chrono_literals;

struct Socket {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ~Socket() { ::close(fd); }
  int get(int level, int name) const {
    int v = -1;
    socklen_t len = sizeof v;
    EXPECT_EQ(::getsockopt(fd, level, name, &v, &len), 0);
    return v;
  }
};

TEST(SocketOptions, NodelayReadsBack) {
  Socket s;
  ASSERT_TRUE(set_nodelay(s.fd, true));
  EXPECT_NE(s.get(IPPROTO_TCP, TCP_NODELAY), 0);
  ASSERT_TRUE(set_nodelay(s.fd, false));
  EXPECT_EQ(s.get(IPPROTO_TCP, TCP_NODELAY), 0);
}

TEST(SocketOptions, BufferSizesReportWhatTheKernelGranted) {
  Socket s;
  auto snd = set_send_buffer(s.fd, 64 * 1024);
  ASSERT_TRUE(snd);
  EXPECT_EQ(*snd, s.get(SOL_SOCKET, SO_SNDBUF));
  EXPECT_EQ(*snd, 128 * 1024);  // Linux doubles the request (bookkeeping overhead)
  auto rcv = set_receive_buffer(s.fd, 32 * 1024);
  ASSERT_TRUE(rcv);
  EXPECT_EQ(*rcv, s.get(SOL_SOCKET, SO_RCVBUF));
  EXPECT_EQ(*rcv, 64 * 1024);
}

TEST(SocketOptions, KeepaliveIdleIntervalCount) {
  Socket s;
  ASSERT_TRUE(set_keepalive(s.fd, 45s, 7s, 4));
  EXPECT_EQ(s.get(SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(s.get(IPPROTO_TCP, TCP_KEEPIDLE), 45);
  EXPECT_EQ(s.get(IPPROTO_TCP, TCP_KEEPINTVL), 7);
  EXPECT_EQ(s.get(IPPROTO_TCP, TCP_KEEPCNT), 4);
}

TEST(SocketOptions, ReuseportAndLinger) {
  Socket s;
  ASSERT_TRUE(set_reuseport(s.fd, true));
  EXPECT_EQ(s.get(SOL_SOCKET, SO_REUSEPORT), 1);
  ASSERT_TRUE(set_linger(s.fd, 3s));
  linger l{};
  socklen_t len = sizeof l;
  ASSERT_EQ(::getsockopt(s.fd, SOL_SOCKET, SO_LINGER, &l, &len), 0);
  EXPECT_EQ(l.l_onoff, 1);
  EXPECT_EQ(l.l_linger, 3);
  ASSERT_TRUE(set_linger(s.fd, std::nullopt));
  ASSERT_EQ(::getsockopt(s.fd, SOL_SOCKET, SO_LINGER, &l, &len), 0);
  EXPECT_EQ(l.l_onoff, 0);
}

TEST(SocketOptions, ErrorsNameTheOptionAndErrno) {
  auto r = set_keepalive(-1, 1s, 1s, 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EBADF);
  EXPECT_EQ(r.error().message(), "setsockopt SO_KEEPALIVE: Bad file descriptor");
  auto b = set_send_buffer(-1, 1024);
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message().find("SO_SNDBUF"), std::string::npos);
}

TEST(SocketOptions, ApplySetsEverythingAsked) {
  Socket s;
  SocketOptions o{.nodelay = true, .send_buffer = 16 * 1024, .keepalive = Keepalive{std::chrono::seconds(20), std::chrono::seconds(5), 2}};
  ASSERT_TRUE(o.apply(s.fd));
  EXPECT_NE(s.get(IPPROTO_TCP, TCP_NODELAY), 0);
  EXPECT_EQ(s.get(SOL_SOCKET, SO_SNDBUF), 32 * 1024);
  EXPECT_EQ(s.get(IPPROTO_TCP, TCP_KEEPIDLE), 20);
}

}  // namespace
}  // namespace corio::net
