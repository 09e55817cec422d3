// TcpListener: a listening TCP socket. With reuseport, one listener per reactor on the same port lets the
// kernel spread connections over the cores.
//   auto l = TcpListener::bind(*Address::parse("127.0.0.1:0"), {.reuseport = true});
//   while (true) { auto c = co_await l->accept(); if (c) spawn(serve(std::move(*c))); }
#pragma once
#include <deque>

#include "corio/net/address.hpp"
#include "corio/net/error.hpp"
#include "corio/net/socket_options.hpp"
#include "corio/net/tcp_stream.hpp"
#include "corio/runtime/operation.hpp"

namespace corio::net {

class TcpListener;

struct AcceptImpl : Operation {
  explicit AcceptImpl(const TcpListener& l) noexcept : listener(&l) {}
  void prepare(io_uring_sqe& sqe) noexcept override;
  int perform() noexcept override;
  Readiness readiness() const noexcept override;
  bool returns_fd() const noexcept override { return true; }
  // The accepted stream, with the listener's SocketOptions applied; EMFILE/ENFILE and the rest as Errors.
  Result<TcpStream> await_resume();
  std::span<const char> lent() const noexcept override {
    return {reinterpret_cast<const char*>(&peer), sizeof peer};  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
  }
  const TcpListener* listener;
  sockaddr_storage peer{};  // written by the kernel
  socklen_t peer_len = sizeof peer;
};

struct ListenOptions {
  int backlog = 4096;
  bool reuseport = false;
  // With reuseport: join a port another socket already listens on. Off, such a bind fails with
  // EADDRINUSE, so a second server started on a port in use is refused instead of silently taking half
  // of its connections. A server's own listeners after its first set it (as does a rolling restart).
  bool share_port = false;
  // AcceptStream: one armed submission for many connections, where the backend has it (probed at
  // start-up: Features::multishot_accept).
  bool multishot_accept = true;
  SocketOptions accepted;        // applied to every accepted socket
};

// AcceptStream: accepts connections with one multishot accept (IORING_ACCEPT_MULTISHOT): the kernel keeps
// accepting and posts a completion per connection, with no submission per accept. When it stops (an error
// such as EMFILE), the next next() arms it again. Where the kernel lacks multishot accept (probed at
// start-up) or on epoll it accepts one connection per next(): the same behaviour, observable only as
// multishot() == false. Connections accepted while nobody awaits wait in a queue; destroying the stream
// cancels the accept and closes them. Closing the listener ends the accept with ECANCELED.
//   AcceptStream accepts(listener);
//   for (;;) { auto c = co_await accepts.next(); if (!c) ...; spawn(serve(std::move(*c))); }
class AcceptStream final : public Operation {
 public:
  explicit AcceptStream(const TcpListener& l) noexcept;
  ~AcceptStream();
  AcceptStream(const AcceptStream&) = delete;
  AcceptStream& operator=(const AcceptStream&) = delete;

  class Next {
   public:
    explicit Next(AcceptStream& s) noexcept : s_(&s) {}
    bool await_ready() const noexcept { return !s_->queue_.empty(); }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> waiter) {
      const std::stop_token* token = nullptr;
      if constexpr (std::is_base_of_v<corio::detail::PromiseBase, P>) token = &waiter.promise().stop_token;
      return s_->wait(waiter, token);
    }
    Result<TcpStream> await_resume() { return s_->take(); }

   private:
    AcceptStream* s_;
  };
  // The next connection (ECANCELED when the awaiting task is stopped).
  Next next() noexcept { return Next(*this); }
  bool multishot() const noexcept { return multishot_; }

 private:
  void prepare(io_uring_sqe& sqe) noexcept override;
  int perform() noexcept override;
  Readiness readiness() const noexcept override;
  bool returns_fd() const noexcept override { return true; }
  void complete(int res, std::uint32_t flags) noexcept override;
  void cancel_on_home() noexcept override;
  void resume_after_cancel() noexcept override { std::exchange(waiter_, {}).resume(); }
  bool wait(std::coroutine_handle<> waiter, const std::stop_token* token);
  Result<TcpStream> take();

  const TcpListener* listener_;
  std::deque<int> queue_;  // accepted descriptors, or -errno
  bool armed_ = false;
  bool multishot_;
};

class TcpListener {
 public:
  // Binds and listens; errors name the address ("bind 127.0.0.1:7000: Address already in use").
  static Result<TcpListener> bind(const Address& at, ListenOptions options = {});
  TcpListener(TcpListener&& o) noexcept : fd_(std::exchange(o.fd_, -1)), local_(o.local_), options_(o.options_) {}
  TcpListener& operator=(TcpListener&&) = delete;
  TcpListener(const TcpListener&) = delete;
  ~TcpListener() { close(); }

  // Stops listening: pending accepts end with ECANCELED, then the socket is closed (new connections are
  // refused from then on).
  void close() noexcept;

  // Takes .timeout(d), .deadline(t), .stop_token(t) like any operation.
  Op<AcceptImpl> accept() const noexcept { return Op<AcceptImpl>(*this); }
  // The bound address, with the real port when port 0 was asked for.
  const Address& local_address() const noexcept { return local_; }
  int fd() const noexcept { return fd_; }
  const ListenOptions& options() const noexcept { return options_; }
  // Turns an accept result (a descriptor or -errno) into a stream with the accepted-socket options
  // applied. `peer` null: asks the socket for its peer address.
  Result<TcpStream> adopt(int res, const sockaddr_storage* peer, socklen_t peer_len) const;

 private:
  TcpListener(int fd, Address local, ListenOptions options) noexcept : fd_(fd), local_(local), options_(options) {}
  int fd_ = -1;
  Address local_;
  ListenOptions options_;
};

}  // namespace corio::net
