#include "corio/tls/traffic_keys.hpp"

#include <openssl/core_names.h>
#include <openssl/kdf.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include "corio/tls/context.hpp"

namespace corio::tls {
namespace {

int tracker_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

net::Error keys_error(const std::string& why) { return net::make_error(EOPNOTSUPP, "tls traffic keys: " + why); }

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Runs OpenSSL's KDF `name` with `params` into `out`.
bool derive(const char* name, OSSL_PARAM* params, unsigned char* out, std::size_t len) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, name, nullptr);
  EVP_KDF_CTX* ctx = kdf != nullptr ? EVP_KDF_CTX_new(kdf) : nullptr;
  const bool ok = ctx != nullptr && EVP_KDF_derive(ctx, out, len, params) == 1;
  EVP_KDF_CTX_free(ctx);
  EVP_KDF_free(kdf);
  return ok;
}

// RFC 8446 7.1: HKDF-Expand-Label(secret, label, "", len).
bool expand_label(const EVP_MD* md, const unsigned char* secret, std::size_t secret_len, std::string_view label,
                  unsigned char* out, std::size_t len) {
  std::string info;
  info += static_cast<char>(len >> 8);
  info += static_cast<char>(len & 0xff);
  info += static_cast<char>(6 + label.size());
  info += "tls13 ";
  info += label;
  info += '\0';  // empty context
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(EVP_MD_get0_name(md)), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<unsigned char*>(secret), secret_len),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  return derive(OSSL_KDF_NAME_HKDF, params, out, len);
}

// RFC 5246 6.3: the TLS 1.2 key block, PRF(master_secret, "key expansion", server_random + client_random).
bool key_block(const EVP_MD* md, SSL* ssl, unsigned char* out, std::size_t len) {
  unsigned char master[SSL_MAX_MASTER_KEY_LENGTH];
  unsigned char client_random[SSL3_RANDOM_SIZE];
  unsigned char server_random[SSL3_RANDOM_SIZE];
  const std::size_t master_len = SSL_SESSION_get_master_key(SSL_get_session(ssl), master, sizeof master);
  SSL_get_client_random(ssl, client_random, sizeof client_random);
  SSL_get_server_random(ssl, server_random, sizeof server_random);
  static const char kLabel[] = "key expansion";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(EVP_MD_get0_name(md)), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, master, master_len),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, const_cast<char*>(kLabel), sizeof kLabel - 1),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, server_random, sizeof server_random),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, client_random, sizeof client_random),
      OSSL_PARAM_construct_end()};
  const bool ok = master_len > 0 && derive(OSSL_KDF_NAME_TLS1_PRF, params, out, len);
  OPENSSL_cleanse(master, sizeof master);
  return ok;
}

}  // namespace

KeyTracker::~KeyTracker() {
  OPENSSL_cleanse(client_secret_.data(), client_secret_.size());
  OPENSSL_cleanse(server_secret_.data(), server_secret_.size());
}

void KeyTracker::attach(SSL* ssl) {
  SSL_set_ex_data(ssl, tracker_index(), this);
  SSL_set_msg_callback(ssl, message_callback);
  SSL_set_msg_callback_arg(ssl, this);
}

void KeyTracker::detach(SSL* ssl) {
  SSL_set_ex_data(ssl, tracker_index(), nullptr);
  SSL_set_msg_callback(ssl, nullptr);
  SSL_set_msg_callback_arg(ssl, nullptr);
}

// OpenSSL reports each record's header as it reads or writes it, and each handshake message after its
// record: a Finished message is the last record under the handshake keys, so the count starts over there
// (at 1 for TLS 1.2, whose Finished is record 0 under the new keys; at 0 for TLS 1.3, whose Finished still
// goes under the handshake keys).
void KeyTracker::message_callback(int write_p, int /*version*/, int content_type, const void* buf,
                                  std::size_t len, SSL* ssl, void* arg) {
  auto* t = static_cast<KeyTracker*>(arg);
  std::uint64_t& records = t->records_[static_cast<std::size_t>(write_p != 0 ? Direction::write : Direction::read)];
  if (content_type == SSL3_RT_HEADER) {
    ++records;
    return;
  }
  if (content_type != SSL3_RT_HANDSHAKE || len == 0) return;
  const unsigned char type = static_cast<const unsigned char*>(buf)[0];
  if (type == SSL3_MT_FINISHED) records = SSL_version(ssl) == TLS1_3_VERSION ? 0 : 1;
  if (type == SSL3_MT_KEY_UPDATE) t->rekeyed_ = true;
}

void KeyTracker::keylog_callback(const SSL* ssl, const char* line) {
  if (auto* t = static_cast<KeyTracker*>(SSL_get_ex_data(ssl, tracker_index()))) t->keep_secret(line);
}

// "CLIENT_TRAFFIC_SECRET_0 <client random> <secret>", in hex; the other lines are not needed.
void KeyTracker::keep_secret(const char* line) {
  const std::string_view l(line);
  const bool client = l.starts_with("CLIENT_TRAFFIC_SECRET_0 ");
  if (!client && !l.starts_with("SERVER_TRAFFIC_SECRET_0 ")) return;
  const std::size_t at = l.rfind(' ');
  const std::string_view hex = l.substr(at + 1);
  auto& out = client ? client_secret_ : server_secret_;
  std::size_t& out_len = client ? client_secret_len_ : server_secret_len_;
  out_len = 0;
  if (hex.size() % 2 != 0 || hex.size() / 2 > out.size()) return;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_digit(hex[i]);
    const int lo = hex_digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return;
    out[i / 2] = static_cast<unsigned char>(hi * 16 + lo);
  }
  out_len = hex.size() / 2;
}

net::Result<TrafficKeys> KeyTracker::keys(SSL* ssl, Direction d) const {
  TrafficKeys k;
  k.version = SSL_version(ssl);
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
  if (cipher == nullptr) return keys_error("no cipher yet (the handshake has not finished)");
  k.cipher_nid = SSL_CIPHER_get_cipher_nid(cipher);
  switch (k.cipher_nid) {
    case NID_aes_128_gcm: k.key_len = 16; break;
    case NID_aes_256_gcm:
    case NID_chacha20_poly1305: k.key_len = 32; break;
    default: return keys_error(std::string("cipher ") + SSL_CIPHER_get_name(cipher) + " has no kernel record layer here");
  }
  if (k.version != TLS1_2_VERSION && k.version != TLS1_3_VERSION) {
    return keys_error(std::string(SSL_get_version(ssl)) + " has no kernel record layer");
  }
  const EVP_MD* md = SSL_CIPHER_get_handshake_digest(cipher);
  // The client writes with the client's keys and reads with the server's.
  const bool client_keys = (d == Direction::write) == (SSL_is_server(ssl) == 0);
  if (k.version == TLS1_3_VERSION) {
    if (rekeyed_) return keys_error("a TLS 1.3 key update came after the handshake");
    const auto& secret = client_keys ? client_secret_ : server_secret_;
    const std::size_t secret_len = client_keys ? client_secret_len_ : server_secret_len_;
    if (secret_len == 0) return keys_error("no TLS 1.3 traffic secret seen (the context has no key-log callback)");
    if (!expand_label(md, secret.data(), secret_len, "key", k.key.data(), k.key_len) ||
        !expand_label(md, secret.data(), secret_len, "iv", k.iv.data(), k.iv.size())) {
      return keys_error("HKDF-Expand-Label: " + openssl_errors());
    }
  } else {
    const std::size_t iv_len = k.cipher_nid == NID_chacha20_poly1305 ? 12 : 4;
    // client key, server key, client IV, server IV (AEAD suites have no MAC keys)
    std::array<unsigned char, std::size_t{2} * (32 + 12)> block{};
    if (!key_block(md, ssl, block.data(), 2 * (k.key_len + iv_len))) return keys_error("TLS 1.2 PRF: " + openssl_errors());
    const std::size_t key_at = client_keys ? 0 : k.key_len;
    const std::size_t iv_at = 2 * k.key_len + (client_keys ? 0 : iv_len);
    std::memcpy(k.key.data(), block.data() + key_at, k.key_len);
    std::memcpy(k.iv.data(), block.data() + iv_at, iv_len);
    OPENSSL_cleanse(block.data(), block.size());
  }
  k.seq = records_[static_cast<std::size_t>(d)];
  return k;
}

}  // namespace corio::tls
