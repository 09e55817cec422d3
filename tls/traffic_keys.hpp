// TrafficKeys: what a record layer needs to carry one direction of an established TLS connection on (the
// cipher, its key and IV, the next record's sequence number), taken out of OpenSSL so that the kernel can
// take over. KeyTracker watches one connection from its first byte, since OpenSSL shows neither the TLS 1.3
// traffic secrets (only its key-log callback sees them) nor its record sequence numbers:
//   KeyTracker tracker;
//   tracker.attach(ssl);            // before the handshake; Context installs the key-log callback
//   ... handshake, and every record decrypted or sent since ...
//   Result<TrafficKeys> tx = tracker.keys(ssl, Direction::write);
#pragma once
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <array>
#include <cstdint>

#include "corio/net/error.hpp"

namespace corio::tls {

enum class Direction { read, write };

struct TrafficKeys {
  int version = 0;     // TLS1_2_VERSION or TLS1_3_VERSION
  int cipher_nid = 0;  // NID_aes_128_gcm, NID_aes_256_gcm or NID_chacha20_poly1305
  std::array<unsigned char, 32> key{};
  std::size_t key_len = 0;
  // The static IV: all 12 bytes for TLS 1.3 and for ChaCha20-Poly1305; TLS 1.2 AES-GCM has only the first
  // 4 (its "salt"; each record carries the rest of its nonce).
  std::array<unsigned char, 12> iv{};
  std::uint64_t seq = 0;  // the sequence number of the next record
  TrafficKeys() = default;
  TrafficKeys(const TrafficKeys&) = default;
  TrafficKeys& operator=(const TrafficKeys&) = default;
  ~TrafficKeys() {
    OPENSSL_cleanse(key.data(), key.size());
    OPENSSL_cleanse(iv.data(), iv.size());
  }
};

class KeyTracker {
 public:
  KeyTracker() = default;
  KeyTracker(const KeyTracker&) = delete;
  KeyTracker& operator=(const KeyTracker&) = delete;
  ~KeyTracker();

  // Starts watching `ssl` (before its first byte); detach() stops, and must come before this is destroyed
  // while `ssl` lives on.
  void attach(SSL* ssl);
  static void detach(SSL* ssl);

  // The keys of one direction as they stand now. Errors name why they cannot be had: a cipher the kernel's
  // record layer does not take, a TLS 1.3 secret never seen (no key-log callback on the context), a key
  // update since the handshake.
  net::Result<TrafficKeys> keys(SSL* ssl, Direction d) const;

  // The key-log callback for SSL_CTX_set_keylog_callback: hands the line to the SSL's tracker, if any.
  static void keylog_callback(const SSL* ssl, const char* line);

 private:
  static void message_callback(int write_p, int version, int content_type, const void* buf, std::size_t len,
                               SSL* ssl, void* arg);
  void keep_secret(const char* line);

  std::array<std::uint64_t, 2> records_{};  // per Direction: records since the current keys took over
  bool rekeyed_ = false;                    // a TLS 1.3 KeyUpdate: the secrets below are out of date
  std::array<unsigned char, EVP_MAX_MD_SIZE> client_secret_{};
  std::array<unsigned char, EVP_MAX_MD_SIZE> server_secret_{};
  std::size_t client_secret_len_ = 0;
  std::size_t server_secret_len_ = 0;
};

}  // namespace corio::tls
