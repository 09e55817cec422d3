// What a tls::Context's OpenSSL callbacks share, behind one stable pointer (SSL_CTX app data): the server's
// ticket-key ring, the client's session cache, the cache of verified leaf certificates. Each is used from
// every reactor's thread at once, so each has its own lock (taken once per handshake, never per record).
#pragma once
#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "corio/tls/context.hpp"

namespace corio::tls {

class TicketKeys {
 public:
  void configure(std::chrono::seconds rotation, std::string file);
  Result<void> load();
  void rotate();
  // OpenSSL's ticket key callback: encrypts with the current key; decrypts with the current or previous one
  // and asks for a fresh ticket (2); 0 for a key it does not know (a full handshake).
  int handle(unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc);
  std::uint64_t reload_failures() const;

 private:
  struct Key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
  };
  static_assert(sizeof(Key) == 80);
  Result<void> load_locked();
  void reload_locked();
  std::string next_read_locked() const;
  void generate_locked();
  mutable std::mutex mu_;
  std::optional<Key> current_;
  std::optional<Key> previous_;
  std::chrono::steady_clock::time_point since_{};
  std::chrono::seconds rotation_{0};
  std::string file_;
  bool failing_ = false;  // the last re-read of file_ failed
  std::uint64_t reload_failures_ = 0;
};

class SessionCache {
 public:
  ~SessionCache();
  void set_limit(std::size_t n) { limit_ = n; }
  void put(const std::string& key, SSL_SESSION* session);  // takes the reference
  bool apply(const std::string& key, SSL* ssl);
  std::size_t size() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, SSL_SESSION*> sessions_;
  std::deque<std::string> order_;  // oldest first, for eviction
  std::size_t limit_ = 1024;
};

class VerifyCache {
 public:
  void set_limit(std::size_t n) { limit_ = n; }
  // OpenSSL's certificate verification callback: a leaf (SHA-256) already verified for this host and not
  // expired passes at once; anything else gets the full X509_verify_cert and is remembered when good.
  int verify(X509_STORE_CTX* store);
  std::size_t size() const;
  std::uint64_t hits() const;

 private:
  mutable std::mutex mu_;
  std::set<std::string> known_;
  std::deque<std::string> order_;
  std::size_t limit_ = 1024;
  std::uint64_t hits_ = 0;
};

struct ContextState {
  TicketKeys tickets;
  SessionCache sessions;
  VerifyCache verified;
  std::string alpn_wire;
};

}  // namespace corio::tls
