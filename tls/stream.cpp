#include "corio/tls/stream.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <liburing.h>
#include <poll.h>
#include <sys/epoll.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "corio/runtime/log.hpp"
#include "corio/runtime/metrics.hpp"
#include "corio/runtime/operation.hpp"
#include "corio/tls/context_state.hpp"
#include "corio/tls/kernel_tls.hpp"
#include "corio/tls/traffic_keys.hpp"

namespace corio::tls {

namespace {

// Waits on the reactor until `fd` can take more bytes: the revents (POLLOUT, or POLLERR/POLLHUP for a
// socket whose next send fails at once), or -errno. Unlike a blocking-pool thread holding the number, the
// wait lives in the coroutine shutting the stream down, so it cannot outlive the descriptor.
struct WritableImpl : Operation {
  explicit WritableImpl(int fd) noexcept : fd(fd) {}
  void prepare(io_uring_sqe& sqe) noexcept override { io_uring_prep_poll_add(&sqe, fd, POLLOUT); }
  int perform() noexcept override {
    pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
    const int n = ::poll(&p, 1, 0);
    if (n < 0) return -errno;
    return n == 0 ? -EAGAIN : p.revents;
  }
  Readiness readiness() const noexcept override { return {fd, EPOLLOUT}; }
  int fd;
};

}  // namespace

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
  static constexpr std::size_t kRecordBuffer = std::size_t{16} * 1024 + 512;  // one TLS record and its header
  std::vector<char> buf = std::vector<char>(kRecordBuffer);

  // Kernel TLS.
  // While a direction is still to be handed to the kernel: after the handshake, a client's receiving (it
  // moves after the first read).
  std::unique_ptr<KeyTracker> tracker;
  bool ulp_attached = false;
  bool kernel_tx = false;
  bool kernel_rx = false;
  std::string kernel_note;  // why records stay in user space, when the context has kernel TLS
  std::vector<char> plain;  // decrypted in user space while handing receiving over: read before the kernel
  std::size_t plain_at = 0;

  std::string peer() const { return tcp.peer().to_string(); }

  // Sends everything OpenSSL has written.
  task<Result<void>> flush(Clock::time_point deadline) {
    if (kernel_tx && BIO_ctrl_pending(out) > 0) {
      // Its record would carry OpenSSL's outdated sequence number: the peer asked for a key update or a
      // renegotiation, which the kernel's record layer cannot follow.
      co_return net::make_error(EPROTO, "tls with " + peer() + ": OpenSSL has a record to send after the kernel took over sending (a key update or renegotiation from the peer)");
    }
    while (BIO_ctrl_pending(out) > 0) {
      const int n = BIO_read(out, buf.data(), static_cast<int>(buf.size()));
      if (n <= 0) break;
      auto sent = co_await tcp.write_all(std::span<const char>(buf.data(), static_cast<std::size_t>(n)), deadline);
      if (!sent) co_return sent.error();
    }
    co_return Result<void>{};
  }

  // After an OpenSSL call that did not finish with `err`: sends what it wrote first (TLS 1.3 tickets and
  // key updates are written while reading; an alert lets the peer learn why), then fails with OpenSSL's
  // reason, or reads more for it (a failed read names `what` too). False at end of stream.
  task<Result<bool>> advance(int err, const std::string& what, Clock::time_point deadline) {
    // The reason is read now: OpenSSL's error queue is per thread, and other connections run meanwhile.
    std::optional<Error> failed;
    if (err != SSL_ERROR_WANT_READ) failed = failure(what);
    auto flushed = co_await flush(deadline);
    if (failed) co_return *failed;
    if (!flushed) co_return flushed.error();
    auto more = co_await fill(deadline);
    if (!more) co_return net::make_error(more.error().code, what + ": " + more.error().context);
    co_return *more;
  }

  // Reads from the network into OpenSSL. False at end of stream.
  task<Result<bool>> fill(Clock::time_point deadline) {
    auto n = co_await tcp.read_some(buf).deadline(deadline);
    if (!n) co_return n.error();
    if (*n == 0) co_return false;
    BIO_write(in, buf.data(), static_cast<int>(*n));
    co_return true;
  }

  void watch_keys() {
    if (!ctx->kernel_tls()) return;  // the context's note says why
    tracker = std::make_unique<KeyTracker>();
    tracker->attach(ssl);
  }

  // Gives direction `d` to the kernel; false, with kernel_note saying why, when it stays here.
  bool hand_over(Direction d) {
    auto keys = tracker->keys(ssl, d);
    Result<void> done = keys ? Result<void>{} : Result<void>{keys.error()};
    if (done && !ulp_attached) {
      done = kernel_tls::attach(tcp.fd());
      ulp_attached = done.ok();
    }
    if (done) done = kernel_tls::install(tcp.fd(), d, *keys);
    if (!done) {
      kernel_note = done.error().message();
      return false;
    }
    if (d == Direction::write) tcp.disable_zero_copy();
    return true;
  }

  // Stops watching keys: nothing more will be handed over. With both directions in the kernel the record
  // buffer goes too (an idle connection then holds no record-sized memory of ours).
  void release_tracker() {
    KeyTracker::detach(ssl);
    tracker.reset();
    if (kernel_tx && kernel_rx) buf = {};
  }

  // The kernel must start receiving at a record boundary with everything before it decrypted: completes a
  // record the input BIO holds only part of (reading exactly its missing bytes), then lets OpenSSL decrypt
  // every record it holds into `plain`. False when that cannot be had (the stream ended, OpenSSL failed): the
  // user-space path then meets the same end or error and reports it.
  task<Result<bool>> settle_input(Clock::time_point deadline) {
    for (;;) {
      char* data = nullptr;
      const long have = BIO_get_mem_data(in, &data);
      const std::size_t missing = kernel_tls::missing_record_bytes(
          {reinterpret_cast<const unsigned char*>(data), static_cast<std::size_t>(std::max(have, 0L))});
      if (missing == 0) break;
      auto n = co_await tcp.read_some(std::span<char>(buf.data(), std::min(missing, buf.size()))).deadline(deadline);
      if (!n) co_return n.error();
      if (*n == 0) co_return false;
      BIO_write(in, buf.data(), static_cast<int>(*n));
    }
    constexpr std::size_t kChunk = std::size_t{16} * 1024;
    while (BIO_ctrl_pending(in) > 0 || SSL_pending(ssl) > 0) {
      const std::size_t old = plain.size();
      plain.resize(old + kChunk);
      std::size_t n = 0;
      ERR_clear_error();
      const int r = SSL_read_ex(ssl, plain.data() + old, kChunk, &n);
      plain.resize(old + (r == 1 ? n : 0));
      // Records that were all tickets leave OpenSSL wanting more, with nothing left: that is a boundary.
      if (r != 1 && (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ || BIO_ctrl_pending(in) > 0)) co_return false;
      if (r != 1) break;
    }
    auto flushed = co_await flush(deadline);
    if (!flushed) co_return flushed.error();
    co_return SSL_has_pending(ssl) == 0;
  }

  task<Result<void>> hand_over_receiving(Clock::time_point deadline) {
    auto settled = co_await settle_input(deadline);
    if (!settled) co_return settled.error();
    if (!*settled) kernel_note = "receiving stays in user space: the input did not end on a record boundary";
    else kernel_rx = hand_over(Direction::read);
    co_return Result<void>{};
  }

  // Receives on a kernel TLS socket: application data is a plain read; anything else fails it with EIO
  // and is read as a record of its own (an alert, a late session ticket).
  task<Result<std::size_t>> kernel_read(std::span<char> dst, Clock::time_point deadline) {
    const std::string what = "tls read from " + peer();
    for (;;) {
      if ((SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) != 0) co_return std::size_t{0};
      auto n = co_await tcp.read_some(dst).deadline(deadline);
      if (n && *n == 0) co_return net::make_error(EPIPE, what + ": truncated (connection closed without close_notify)");
      if (n) co_return *n;
      if (n.error().code != EIO) co_return net::make_error(n.error().code, what + " (kernel TLS): " + n.error().context);
      if (buf.empty()) buf.resize(kRecordBuffer);  // a control record: rare (alerts, late tickets)
      auto record = kernel_tls::read_record(tcp.fd(), buf);
      if (!record) co_return net::make_error(record.error().code, what + ": " + record.error().context);
      const auto* body = reinterpret_cast<const unsigned char*>(buf.data());
      if (record->type == SSL3_RT_APPLICATION_DATA) {
        plain.assign(buf.data(), buf.data() + record->size);
        plain_at = 0;
        co_return take_plain(dst);
      }
      if (record->type == SSL3_RT_ALERT && record->size >= 2 && body[1] == SSL_AD_CLOSE_NOTIFY) {
        SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_RECEIVED_SHUTDOWN);
        co_return std::size_t{0};
      }
      if (record->type == SSL3_RT_ALERT && record->size >= 2) {
        co_return net::make_error(EPROTO, what + ": the peer sent a fatal alert: " +
                                              SSL_alert_desc_string_long(body[1]));
      }
      if (record->type == SSL3_RT_HANDSHAKE && record->size >= 1 && body[0] == SSL3_MT_NEWSESSION_TICKET) {
        continue;  // a later ticket; this client resumes with the one it has
      }
      co_return net::make_error(EPROTO, what + ": a TLS record of type " + std::to_string(record->type) +
                                            (record->size > 0 ? " (message " + std::to_string(body[0]) + ")" : "") +
                                            " that kernel TLS cannot follow (a key update or renegotiation)");
    }
  }

  std::size_t take_plain(std::span<char> dst) {
    const std::size_t n = std::min(dst.size(), plain.size() - plain_at);
    std::copy_n(plain.data() + plain_at, n, dst.data());
    plain_at += n;
    if (plain_at == plain.size()) {
      plain = {};  // the memory goes too: this happens once per connection, at the hand-over
      plain_at = 0;
    }
    return n;
  }

  // close_notify through the kernel. Its socket is non-blocking: with the send buffer full the alert waits
  // on the reactor for room, until the deadline or at most kAlertWait.
  task<Result<void>> kernel_close_notify(Clock::time_point deadline) {
    constexpr auto kAlertWait = std::chrono::seconds(5);
    const Clock::time_point until = std::min(deadline, Clock::now() + kAlertWait);
    int err = kernel_tls::send_alert(tcp.fd(), SSL3_AL_WARNING, SSL_AD_CLOSE_NOTIFY);
    while (err == EAGAIN || err == EWOULDBLOCK) {
      const int res = co_await Op<WritableImpl>(tcp.fd()).deadline(until);
      err = res < 0 ? -res : kernel_tls::send_alert(tcp.fd(), SSL3_AL_WARNING, SSL_AD_CLOSE_NOTIFY);
    }
    if (err != 0) co_return net::make_error(err, "tls shutdown with " + peer() + ": close_notify (kernel TLS)");
    SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_SENT_SHUTDOWN);  // the session stays resumable
    co_return Result<void>{};
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
  s->watch_keys();
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
  s->watch_keys();
  co_return co_await handshake(std::move(s), deadline);
}

namespace {

// corio_tls_*: handshakes by role and outcome, their seconds, why they failed, kernel TLS taken or not.
struct TlsMetrics {
  explicit TlsMetrics(const char* role)
      : full("corio_tls_handshakes_total", "TLS handshakes, by role and outcome.", {{"role", role}, {"result", "full"}}),
        resumed("corio_tls_handshakes_total", "TLS handshakes, by role and outcome.", {{"role", role}, {"result", "resumed"}}),
        failed("corio_tls_handshakes_total", "TLS handshakes, by role and outcome.", {{"role", role}, {"result", "failed"}}),
        seconds("corio_tls_handshake_seconds", "Seconds a TLS handshake took (failed ones too).", metrics::seconds_buckets(),
                {{"role", role}}),
        kernel_on("corio_tls_kernel_sending_total", "Established connections whose sending went to kernel TLS, or not.",
                  {{"role", role}, {"kernel", "on"}}),
        kernel_off("corio_tls_kernel_sending_total", "Established connections whose sending went to kernel TLS, or not.",
                   {{"role", role}, {"kernel", "off"}}) {}
  metrics::Counter full, resumed, failed;
  metrics::Histogram seconds;
  metrics::Counter kernel_on, kernel_off;
};

metrics::Counter& failure_counter(const net::Error& e) {
  auto make = [](const char* reason) {
    return metrics::Counter("corio_tls_handshake_failures_total", "Failed TLS handshakes, by why.", {{"reason", reason}});
  };
  static metrics::Counter timeout = make("timeout"), verify = make("verify"), closed = make("closed"),
                          protocol = make("protocol"), other = make("other");
  if (e.timed_out()) return timeout;
  if (e.context.find("verify failed") != std::string::npos) return verify;
  if (e.code == ECONNRESET || e.code == EPIPE) return closed;
  if (e.code == EPROTO) return protocol;
  return other;
}

}  // namespace

task<Result<Stream>> Stream::handshake(std::unique_ptr<State> s, Clock::time_point deadline) {
  static TlsMetrics server_metrics("server"), client_metrics("client");
  TlsMetrics& m = s->ctx->is_server() ? server_metrics : client_metrics;
  const std::string peer = s->peer();
  const Clock::time_point began = Clock::now();
  Result<Stream> r = co_await handshake_steps(std::move(s), deadline);
  const double took = std::chrono::duration<double>(Clock::now() - began).count();
  m.seconds.observe(took);
  if (!r) {
    m.failed.add();
    failure_counter(r.error()).add();
  } else {
    (r->session_reused() ? m.resumed : m.full).add();
    (r->kernel_tx() ? m.kernel_on : m.kernel_off).add();
  }
  if (took > 1.0) {  // a breach worth a line (rate-limited): slow peers, or a starved reactor
    log::limited(log::Level::warning, "slow tls handshake", std::chrono::seconds(10), "tls: a handshake with %s took %.2f s%s",
                 peer.c_str(), took, r ? "" : " and failed");
  }
  co_return r;
}

task<Result<Stream>> Stream::handshake_steps(std::unique_ptr<State> s, Clock::time_point deadline) {
  s->in = BIO_new(BIO_s_mem());
  s->out = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(s->in, -1);  // an empty input BIO means "wait for more", not end of stream
  SSL_set_bio(s->ssl, s->in, s->out);
  const std::string what = "tls handshake with " + s->peer();
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(s->ssl);
    if (r == 1) {
      auto flushed = co_await s->flush(deadline);
      if (!flushed) co_return flushed.error();
      break;
    }
    auto more = co_await s->advance(SSL_get_error(s->ssl, r), what, deadline);
    if (!more) co_return more.error();
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
  if (s->tracker != nullptr) {
    // Everything OpenSSL wrote has gone out (a TLS 1.3 server's tickets too): sending can move now.
    s->kernel_tx = s->hand_over(Direction::write);
    if (s->ctx->is_server()) {
      auto r = co_await s->hand_over_receiving(deadline);
      if (!r) co_return net::make_error(r.error().code, what + ": " + r.error().context);
    }
    if (s->ctx->is_server() || !s->kernel_tx) s->release_tracker();
  }
  co_return Stream(std::move(s));
}

task<Result<std::size_t>> Stream::read_some(std::span<char> buf, Clock::time_point deadline) {
  State& s = *s_;
  if (s.plain_at < s.plain.size()) co_return s.take_plain(buf);
  if (s.kernel_rx) co_return co_await s.kernel_read(buf, deadline);
  for (;;) {
    ERR_clear_error();
    std::size_t n = 0;
    const int r = SSL_read_ex(s.ssl, buf.data(), buf.size(), &n);
    if (r == 1 && s.tracker != nullptr) {
      // `n` bytes are the caller's already: a failure here leaves receiving in user space, where the same
      // failure will show on the next read.
      auto moved = co_await s.hand_over_receiving(deadline);
      if (!moved) s.kernel_note = moved.error().message();
      s.release_tracker();
    }
    if (r == 1) co_return n;
    const int err = SSL_get_error(s.ssl, r);
    if (err == SSL_ERROR_ZERO_RETURN) co_return std::size_t{0};
    auto more = co_await s.advance(err, "tls read from " + s.peer(), deadline);
    if (!more) co_return more.error();
    if (!*more) co_return net::make_error(EPIPE, "tls read from " + s.peer() + ": truncated (connection closed without close_notify)");
  }
}

task<Result<void>> Stream::write_all(std::span<const char> buf, Clock::time_point deadline) {
  State& s = *s_;
  if (s.kernel_tx) co_return co_await s.tcp.write_all(buf, deadline);
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
  if (s.kernel_tx) {
    auto sent = co_await s.kernel_close_notify(deadline);
    if (!sent) co_return sent.error();
  } else {
    ERR_clear_error();
    SSL_shutdown(s.ssl);
    auto flushed = co_await s.flush(deadline);
    if (!flushed) co_return flushed.error();
  }
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
bool Stream::kernel_tx() const noexcept { return s_->kernel_tx; }
bool Stream::kernel_rx() const noexcept { return s_->kernel_rx; }
std::string_view Stream::kernel_tls_note() const noexcept {
  return s_->ctx->kernel_tls() ? s_->kernel_note : s_->ctx->kernel_tls_note();
}

}  // namespace corio::tls
