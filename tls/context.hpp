// tls::Context: OpenSSL 3 settings shared by many connections, with the guide's defaults: TLS 1.2 at least,
// ECDHE with AES-GCM first and ChaCha20-Poly1305 for clients without AES-NI, groups X25519 then P-256, the
// server's cipher preference, ALPN (the server picks its first protocol that the client offers), session
// resumption (TLS 1.3 tickets, TLS 1.2 tickets and session IDs) with a server ticket-key ring (current and
// previous, rotated on an interval or loaded from a shared file) and a client session cache keyed by
// host:port, peer verification against a CA bundle with host name checks and a bounded cache of verified
// leaf certificates (by SHA-256).
//   auto ctx = tls::Context::server({.cert_file = "server.pem", .key_file = "server.key", .alpn = {"h2", "http/1.1"}});
//   if (!ctx) { log(ctx.error().message()); }   // "tls: certificate chain server.pem: No such file or directory"
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <openssl/types.h>

#include "corio/net/error.hpp"

namespace corio::tls {

using net::Error;
using net::Result;

// Whether established connections hand their records to the kernel (kTLS), so that plain sends and
// receives carry TLS: where the kernel has it (the default), always (a context fails to build without it),
// or never.
enum class KernelTls { when_available, required, off };

struct ContextOptions {
  // Server: the certificate chain and key (PEM). Client: optional, for client certificates.
  std::string cert_file;
  std::string key_file;
  std::string key_password;  // for an encrypted key
  // Peer verification: the CA bundle (PEM). Client: default the system's; server: set it to require client
  // certificates.
  std::string ca_file;
  bool verify_peer = true;  // client only: false skips verification (tests against self-signed servers)
  std::vector<std::string> alpn;  // in order of preference
  bool require_alpn = false;      // client: fail the handshake when the server selects none of `alpn`
  std::string ciphers =  // TLS 1.2
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
      "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
  std::string ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
  std::string groups = "X25519:P-256";
  int min_version = 0x0303;  // TLS1_2_VERSION
  int max_version = 0;       // 0: the highest OpenSSL has (TLS 1.3)
  // Resumption.
  bool session_tickets = true;
  std::chrono::seconds ticket_rotation{3600};  // server: a new current key this often (previous still accepted)
  std::string ticket_key_file;                 // server: keys shared by several processes (see TicketKeys)
  std::size_t session_cache_size = 1024;       // client: sessions kept, by host:port (0: never resume)
  std::size_t verify_cache_size = 1024;        // leaf certificates known good, by SHA-256
  KernelTls kernel_tls = KernelTls::when_available;
};

// Server ticket keys: the current key encrypts new tickets, the previous one still decrypts (and the ticket
// is renewed). A key file holds 80-byte keys (16-byte name, 32-byte AES key, 32-byte HMAC key), current
// first; it is read at start and again every ticket_rotation, so that processes sharing it rotate together
// (write the new key first, keep the old one second). A re-read that fails keeps the keys in use, says so
// once on stderr, and is tried again a rotation later.
struct ContextState;

class Context {
 public:
  static Result<Context> server(const ContextOptions& options);
  static Result<Context> client(const ContextOptions& options);
  Context(Context&&) noexcept;
  Context& operator=(Context&&) noexcept;
  ~Context();

  bool is_server() const noexcept { return server_; }
  const ContextOptions& options() const noexcept { return options_; }
  SSL_CTX* native() const noexcept { return ctx_; }

  // Server: makes a new current ticket key now (the current one becomes the previous).
  void rotate_ticket_keys();
  // Client: sessions kept for resumption.
  std::size_t cached_sessions() const;
  // Leaf certificates verified and remembered, and handshakes that found theirs there.
  std::size_t verified_leaves() const;
  std::uint64_t verify_cache_hits() const;
  // Server with a ticket_key_file: re-reads of it that failed (each keeps the keys in use, and is retried
  // one ticket_rotation later, not per handshake).
  std::uint64_t ticket_key_reload_failures() const;
  // Whether the kernel can carry TLS records (the "tls" TCP ULP); why not, when it cannot.
  static bool kernel_tls_available(std::string* why = nullptr);
  // Whether this context's connections try kernel TLS after their handshake, and why not when they do not.
  bool kernel_tls() const noexcept { return kernel_tls_; }
  const std::string& kernel_tls_note() const noexcept { return kernel_tls_note_; }

 private:
  friend class Stream;
  Context(SSL_CTX* ctx, bool server, const ContextOptions& options);
  Result<void> configure();
  SSL_CTX* ctx_ = nullptr;
  bool server_ = false;
  bool kernel_tls_ = false;
  std::string kernel_tls_note_;
  ContextOptions options_;
  std::unique_ptr<ContextState> state_;  // what OpenSSL's callbacks reach (a stable address)
};

// OpenSSL's error queue as text ("SSL routines::certificate verify failed"), emptied; `fallback` when empty.
std::string openssl_errors(const char* fallback = "unknown error");

}  // namespace corio::tls
