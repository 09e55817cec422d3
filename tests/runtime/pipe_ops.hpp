// Test helpers: a pipe, whose reads stay in flight until the test writes (what deadlines, cancellation and
// abandonment need), and a raw accept, which shows that a new opcode is a few lines on corio::Operation.
#pragma once
#include <liburing.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <stdexcept>

#include "corio/runtime/operation.hpp"
#include "corio/runtime/read.hpp"

namespace corio::testing {

inline Op<ReadImpl> read(int fd, char* buf, unsigned len) { return corio::read(fd, std::span(buf, len)); }

struct AcceptImpl : Operation {
  explicit AcceptImpl(int fd) : fd(fd) {}
  void prepare(io_uring_sqe& sqe) noexcept override { io_uring_prep_accept(&sqe, fd, nullptr, nullptr, SOCK_CLOEXEC); }
  int perform() noexcept override {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    return c >= 0 ? c : -errno;
  }
  Readiness readiness() const noexcept override { return {fd, EPOLLIN}; }
  bool returns_fd() const noexcept override { return true; }
  int fd;
};
inline Op<AcceptImpl> accept(int fd) { return Op<AcceptImpl>(fd); }

struct Pipe {
  std::array<int, 2> fds{-1, -1};
  Pipe() {
    if (::pipe(fds.data()) != 0) throw std::runtime_error("pipe");
  }
  ~Pipe() {
    for (int fd : fds) if (fd >= 0) ::close(fd);
  }
  int reader() const { return fds[0]; }
  int writer() const { return fds[1]; }
};

}  // namespace corio::testing
