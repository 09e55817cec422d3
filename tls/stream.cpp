#include "tls/stream.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <optional>
#include <vector>

#include "tls/context_state.hpp"

namespace corio::tls {

struct Stream::State {
  State(const Context& c, net::TcpStream t) : ctx(&c), tcp(std::move(t)) {}
  ~State() {
    if (ssl != nullptr) SSL_free(ssl);  // frees both BIOs
  }
  const Context* ctx;
  net::TcpStream tcp;
  SSL* ssl = nullptr;
  BIO* in = nullptr;   // bytes from the network, for OpenSSL to read
  BIO* out = nullptr;  // bytes OpenSSL wrote, for the network
  std::string session_key;  // client: host:port
  std::vector<char> buf = std::vector<char>(std::size_t{16} * 1024 + 512);  // one TLS record and its header

  std::string peer() const { return tcp.peer().to_string(); }

  // Sends everything OpenSSL has written.
  task<Result<void>> flush(Clock::time_point deadline) {
    while (BIO_ctrl_pending(out) > 0) {
      const int n = BIO_read(out, buf.data(), static_cast<int>(buf.size()));
      if (n <= 0) break;
      auto sent = co_await tcp.write_all(std::span<const char>(buf.data(), static_cast<std::size_t>(n)), deadline);
      if (!sent) co_return sent.error();
    }
    co_return Result<void>{};
  }

  // Reads from the network into OpenSSL. False at end of stream.
  task<Result<bool>> fill(Clock::time_point deadline) {
    auto n = co_await tcp.read_some(buf).deadline(deadline);
    if (!n) co_return n.error();
    if (*n == 0) co_return false;
    BIO_write(in, buf.data(), static_cast<int>(*n));
    co_return true;
  }

  // Why OpenSSL failed, with the certificate verification result when that is what failed.
  Error failure(const std::string& what, int code = EPROTO) {
    std::string why = openssl_errors("connection failed");
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) why += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
    return net::make_error(code, what + ": " + why);
  }
};

Stream::Stream(std::unique_ptr<State> s) noexcept : s_(std::move(s)) {}
Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&&) noexcept = default;
Stream::~Stream() = default;

task<Result<Stream>> Stream::connect(const Context& ctx, net::TcpStream tcp, std::string server_name,
                                     Clock::time_point deadline, std::string session_key) {
  auto s = std::make_unique<State>(ctx, std::move(tcp));
  s->ssl = SSL_new(ctx.native());
  if (s->ssl == nullptr) co_return net::make_error(ENOMEM, "tls: SSL_new: " + openssl_errors());
  SSL_set_connect_state(s->ssl);
  if (!server_name.empty()) {
    SSL_set_tlsext_host_name(s->ssl, server_name.c_str());
    if (ctx.options().verify_peer) SSL_set1_host(s->ssl, server_name.c_str());
  }
  s->session_key = !session_key.empty() ? std::move(session_key)
                  : server_name.empty()  ? s->tcp.peer().to_string()
                                         : server_name + ":" + std::to_string(s->tcp.peer().port());
  SSL_set_app_data(s->ssl, &s->session_key);
  ctx.state_->sessions.apply(s->session_key, s->ssl);
  co_return co_await handshake(std::move(s), deadline);
}

task<Result<Stream>> Stream::accept(const Context& ctx, net::TcpStream tcp, Clock::time_point deadline) {
  auto s = std::make_unique<State>(ctx, std::move(tcp));
  s->ssl = SSL_new(ctx.native());
  if (s->ssl == nullptr) co_return net::make_error(ENOMEM, "tls: SSL_new: " + openssl_errors());
  SSL_set_accept_state(s->ssl);
  co_return co_await handshake(std::move(s), deadline);
}

task<Result<Stream>> Stream::handshake(std::unique_ptr<State> s, Clock::time_point deadline) {
  s->in = BIO_new(BIO_s_mem());
  s->out = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(s->in, -1);  // an empty input BIO means "wait for more", not end of stream
  SSL_set_bio(s->ssl, s->in, s->out);
  const std::string what = "tls handshake with " + s->peer();
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(s->ssl);
    const int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, r);
    // The reason is read now: OpenSSL's error queue is per thread, and other connections run meanwhile.
    std::optional<Error> failed;
    if (err != SSL_ERROR_NONE && err != SSL_ERROR_WANT_READ) failed = s->failure(what);
    // Whatever OpenSSL wrote goes out first, an alert included, so the peer learns why.
    auto flushed = co_await s->flush(deadline);
    if (failed) co_return *failed;
    if (!flushed) co_return flushed.error();
    if (err == SSL_ERROR_NONE) break;
    auto more = co_await s->fill(deadline);
    if (!more) co_return net::make_error(more.error().code, what + ": " + more.error().message());
    if (!*more) co_return net::make_error(ECONNRESET, what + ": the peer closed the connection mid-handshake");
  }
  const ContextOptions& o = s->ctx->options();
  // TLS 1.2 reports no new session after a resumption, though the server may have renewed the ticket: keep
  // the session the connection ended up with. (TLS 1.3 sessions arrive later, through new_session_cb.)
  if (!s->ctx->is_server() && SSL_version(s->ssl) <= TLS1_2_VERSION && o.session_tickets) {
    if (SSL_SESSION* session = SSL_get1_session(s->ssl)) {
      if (SSL_SESSION_is_resumable(session) == 1) s->ctx->state_->sessions.put(s->session_key, session);
      else SSL_SESSION_free(session);
    }
  }
  if (!s->ctx->is_server() && o.require_alpn && !o.alpn.empty()) {
    const unsigned char* p = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(s->ssl, &p, &len);
    if (len == 0) co_return net::make_error(EPROTO, what + ": the server selected no ALPN protocol");
  }
  co_return Stream(std::move(s));
}

task<Result<std::size_t>> Stream::read_some(std::span<char> buf, Clock::time_point deadline) {
  State& s = *s_;
  for (;;) {
    ERR_clear_error();
    std::size_t n = 0;
    const int r = SSL_read_ex(s.ssl, buf.data(), buf.size(), &n);
    if (r == 1) co_return n;
    const int err = SSL_get_error(s.ssl, r);
    if (err == SSL_ERROR_ZERO_RETURN) co_return std::size_t{0};
    std::optional<Error> failed;
    if (err != SSL_ERROR_WANT_READ) failed = s.failure("tls read from " + s.peer());
    // TLS 1.3 tickets and key updates make OpenSSL write while it reads: send that first (an alert too).
    auto flushed = co_await s.flush(deadline);
    if (failed) co_return *failed;
    if (!flushed) co_return flushed.error();
    auto more = co_await s.fill(deadline);
    if (!more) co_return more.error();
    if (!*more) co_return net::make_error(EPIPE, "tls read from " + s.peer() + ": truncated (connection closed without close_notify)");
  }
}

task<Result<void>> Stream::write_all(std::span<const char> buf, Clock::time_point deadline) {
  State& s = *s_;
  // In slices, so that the encrypted copy waiting in the memory BIO stays small.
  constexpr std::size_t kSlice = std::size_t{64} * 1024;
  while (!buf.empty()) {
    const std::size_t take = std::min(buf.size(), kSlice);
    ERR_clear_error();
    std::size_t written = 0;
    if (SSL_write_ex(s.ssl, buf.data(), take, &written) != 1) co_return s.failure("tls write to " + s.peer());
    buf = buf.subspan(written);
    auto flushed = co_await s.flush(deadline);
    if (!flushed) co_return flushed.error();
  }
  co_return Result<void>{};
}

task<Result<void>> Stream::shutdown(Clock::time_point deadline) {
  State& s = *s_;
  ERR_clear_error();
  SSL_shutdown(s.ssl);
  auto flushed = co_await s.flush(deadline);
  if (!flushed) co_return flushed.error();
  co_return s.tcp.shutdown_write();
}

std::string_view Stream::alpn() const noexcept {
  const unsigned char* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(s_->ssl, &p, &len);
  return {reinterpret_cast<const char*>(p), len};
}

bool Stream::session_reused() const noexcept { return SSL_session_reused(s_->ssl) == 1; }
std::string_view Stream::version() const noexcept { return SSL_get_version(s_->ssl); }
std::string_view Stream::cipher() const noexcept { return SSL_get_cipher_name(s_->ssl); }
const net::TcpStream& Stream::tcp() const noexcept { return s_->tcp; }

}  // namespace corio::tls
