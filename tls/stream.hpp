// tls::Stream: TLS over a corio TCP stream. OpenSSL works on memory BIOs and never touches the socket:
// every byte goes through the runtime's own reads and writes, so handshakes, reads, writes and shutdown
// are asynchronous on either backend, with deadlines, and never block a reactor or spin.
//   auto tcp = co_await net::TcpStream::connect(addr, 2s);
//   auto tls = co_await tls::Stream::connect(ctx, std::move(*tcp), "example.test", Clock::now() + 5s);
//   if (!tls) log(tls.error().message());   // "tls handshake with 127.0.0.1:8443: ... certificate verify failed"
//   co_await tls->write_all(request);
//   auto n = co_await tls->read_some(buf);   // 0: the peer sent close_notify
// Errors are values. A peer that closes the TCP connection without close_notify is an Error (EPIPE,
// "truncated"), so a cut-short response is never mistaken for a complete one.
// Kernel TLS: where the context has it (Context::kernel_tls()), the established connection's records go to
// the kernel, and reads and writes are plain socket operations: a server hands both directions over after its
// handshake; a client hands over sending then, and receiving after its first read (by which time a TLS 1.3
// server's session tickets have come, and gone to OpenSSL; any later ticket is dropped).
#pragma once
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "corio/net/error.hpp"
#include "corio/net/tcp_stream.hpp"
#include "corio/runtime/task.hpp"
#include "corio/runtime/timer_queue.hpp"
#include "corio/tls/context.hpp"

namespace corio::tls {

class Stream {
 public:
  // Client handshake. `server_name` goes in SNI and is the name the certificate must carry (empty: no
  // name check). Sessions are cached by `session_key`, by default server_name:port, so the next connection
  // to the same place resumes; servers that share ticket keys can share one key.
  static task<Result<Stream>> connect(const Context& ctx, net::TcpStream tcp, std::string server_name,
                                      Clock::time_point deadline = Clock::time_point::max(),
                                      std::string session_key = {});
  // Server handshake on an accepted connection.
  static task<Result<Stream>> accept(const Context& ctx, net::TcpStream tcp,
                                     Clock::time_point deadline = Clock::time_point::max());

  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  ~Stream();

  // Decrypted bytes into `buf`: how many, 0 once the peer has sent close_notify.
  task<Result<std::size_t>> read_some(std::span<char> buf, Clock::time_point deadline = Clock::time_point::max());
  task<Result<void>> write_all(std::span<const char> buf, Clock::time_point deadline = Clock::time_point::max());
  // Sends close_notify, then half-closes the TCP connection. A client connection dropped without it leaves
  // a session OpenSSL will not resume.
  task<Result<void>> shutdown(Clock::time_point deadline = Clock::time_point::max());

  // After the handshake: the protocol ALPN chose ("" when none), whether the session was resumed, the TLS
  // version and cipher ("TLSv1.3", "TLS_AES_128_GCM_SHA256").
  std::string_view alpn() const noexcept;
  bool session_reused() const noexcept;
  std::string_view version() const noexcept;
  std::string_view cipher() const noexcept;
  const net::TcpStream& tcp() const noexcept;
  // Whether the kernel encrypts what this stream sends and decrypts what it receives; when either is false,
  // why ("" when both are true, or a client's receiving is still to be handed over).
  bool kernel_tx() const noexcept;
  bool kernel_rx() const noexcept;
  std::string_view kernel_tls_note() const noexcept;

 private:
  struct State;
  explicit Stream(std::unique_ptr<State> s) noexcept;
  static task<Result<Stream>> handshake(std::unique_ptr<State> s, Clock::time_point deadline);  // timed, counted
  static task<Result<Stream>> handshake_steps(std::unique_ptr<State> s, Clock::time_point deadline);
  std::unique_ptr<State> s_;
};

}  // namespace corio::tls
