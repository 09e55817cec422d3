// Test-only operations on a pipe and a listening socket: operations that stay in flight until the test
// decides, which is what deadlines, cancellation and abandonment need. They also show that a new opcode
// is a few lines on top of corio::Operation.
#pragma once
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <stdexcept>

#include "runtime/operation.hpp"

namespace corio::testing {

struct ReadImpl : Operation {
  ReadImpl(int fd, char* buf, unsigned len) : fd(fd), buf(buf), len(len) {}
  void prepare(io_uring_sqe& sqe) noexcept override { io_uring_prep_read(&sqe, fd, buf, len, 0); }
  int fd;
  char* buf;
  unsigned len;
};
inline Op<ReadImpl> read(int fd, char* buf, unsigned len) { return Op<ReadImpl>(fd, buf, len); }

struct AcceptImpl : Operation {
  explicit AcceptImpl(int fd) : fd(fd) {}
  void prepare(io_uring_sqe& sqe) noexcept override { io_uring_prep_accept(&sqe, fd, nullptr, nullptr, SOCK_CLOEXEC); }
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
