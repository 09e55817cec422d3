// TcpListener: a listening TCP socket. With reuseport, one listener per reactor on the same port lets the
// kernel spread connections over the cores.
//   auto l = TcpListener::bind(*Address::parse("127.0.0.1:0"), {.reuseport = true});
//   while (true) { auto c = co_await l->accept(); if (c) spawn(serve(std::move(*c))); }
#pragma once
#include "net/address.hpp"
#include "net/error.hpp"
#include "net/socket_options.hpp"
#include "net/tcp_stream.hpp"
#include "runtime/operation.hpp"

namespace corio::net {

class TcpListener;

struct AcceptImpl : Operation {
  explicit AcceptImpl(const TcpListener& l) noexcept : listener(&l) {}
  void prepare(io_uring_sqe& sqe) noexcept override;
  bool returns_fd() const noexcept override { return true; }
  // The accepted stream, with the listener's SocketOptions applied; EMFILE/ENFILE and the rest as Errors.
  Result<TcpStream> await_resume();
  const TcpListener* listener;
  sockaddr_storage peer{};  // written by the kernel
  socklen_t peer_len = sizeof peer;
};

struct ListenOptions {
  int backlog = 4096;
  bool reuseport = false;
  SocketOptions accepted;  // applied to every accepted socket
};

class TcpListener {
 public:
  // Binds and listens; errors name the address ("bind 127.0.0.1:7000: Address already in use").
  static Result<TcpListener> bind(const Address& at, ListenOptions options = {});
  TcpListener(TcpListener&& o) noexcept : fd_(std::exchange(o.fd_, -1)), local_(o.local_), options_(o.options_) {}
  TcpListener& operator=(TcpListener&&) = delete;
  TcpListener(const TcpListener&) = delete;
  ~TcpListener();

  // Takes .timeout(d), .deadline(t), .stop_token(t) like any operation.
  Op<AcceptImpl> accept() const noexcept { return Op<AcceptImpl>(*this); }
  // The bound address, with the real port when port 0 was asked for.
  const Address& local_address() const noexcept { return local_; }
  int fd() const noexcept { return fd_; }
  const ListenOptions& options() const noexcept { return options_; }

 private:
  TcpListener(int fd, Address local, ListenOptions options) noexcept : fd_(fd), local_(local), options_(options) {}
  int fd_ = -1;
  Address local_;
  ListenOptions options_;
};

}  // namespace corio::net
