// tls/kernel_tls: the CryptoInfo a connection hands to the kernel, used the way the kernel's software record
// layer (net/tls/tls_sw.c) uses it, makes records that a real OpenSSL peer accepts and opens the records
// that peer sends, for every cipher suite and both versions, at the exact point tls::Stream hands over
// (tickets sent, a record cut short in the input); the ULP is detected, or fails cleanly where the kernel
// has no TLS, leaving the socket a plain TCP socket.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "memory_pair.hpp"
#include "corio/tls/kernel_tls.hpp"

namespace corio::tls {
namespace {

using testing::MemoryPair;
using Bytes = std::vector<unsigned char>;

// One direction of the kernel's record layer, from the CryptoInfo it is given: the key, the 4-byte salt
// (none for ChaCha20) and the 8- or 12-byte iv, the sequence number; nonces as tls_sw.c makes them.
class KernelRecords {
 public:
  explicit KernelRecords(const kernel_tls::CryptoInfo& c) {
    tls13_ = c.base.version == TLS_1_3_VERSION;
    switch (c.base.cipher_type) {
      case TLS_CIPHER_AES_GCM_128: take(c.aes_gcm_128, EVP_aes_128_gcm()); break;
      case TLS_CIPHER_AES_GCM_256: take(c.aes_gcm_256, EVP_aes_256_gcm()); break;
      case TLS_CIPHER_CHACHA20_POLY1305: take(c.chacha20_poly1305, EVP_chacha20_poly1305()); break;
      default: throw std::runtime_error("unknown cipher type");
    }
  }

  Bytes seal(unsigned char type, const std::string& text) {
    const Bytes n = nonce();
    Bytes plain(text.begin(), text.end());
    if (tls13_) plain.push_back(type);  // the inner content type
    const std::size_t body = explicit_nonce() + plain.size() + kTag;
    const Bytes header = {tls13_ ? static_cast<unsigned char>(23) : type, 3, 3, static_cast<unsigned char>(body >> 8),
                          static_cast<unsigned char>(body & 0xff)};
    const Bytes aad = tls13_ ? header : tls12_aad(type, plain.size());
    Bytes record(5 + body);
    std::copy(header.begin(), header.end(), record.begin());
    if (explicit_nonce() > 0) std::copy(n.begin() + 4, n.end(), record.begin() + 5);
    unsigned char* out = record.data() + 5 + explicit_nonce();
    crypt(true, n, aad, plain.data(), plain.size(), out, out + plain.size());
    advance();
    return record;
  }

  // Opens the record at the front of `bytes`: its content type and text.
  std::pair<unsigned char, std::string> open(const Bytes& bytes) {
    const std::size_t body = std::size_t{bytes.at(3)} << 8 | bytes.at(4);
    Bytes n = nonce();
    if (explicit_nonce() > 0) std::copy_n(bytes.begin() + 5, 8, n.begin() + 4);  // the sender's explicit nonce
    const unsigned char* ct = bytes.data() + 5 + explicit_nonce();
    const std::size_t ct_len = body - explicit_nonce() - kTag;
    Bytes plain(ct_len);
    const Bytes aad = tls13_ ? Bytes(bytes.begin(), bytes.begin() + 5) : tls12_aad(bytes[0], ct_len);
    crypt(false, n, aad, ct, ct_len, plain.data(), const_cast<unsigned char*>(ct + ct_len));
    advance();
    unsigned char type = bytes[0];
    if (tls13_) {
      while (!plain.empty() && plain.back() == 0) plain.pop_back();  // padding
      type = plain.back();
      plain.pop_back();
    }
    return {type, std::string(plain.begin(), plain.end())};
  }

  std::uint64_t seq() const { return seq_; }

 private:
  static constexpr std::size_t kTag = 16;

  template <class Info>
  void take(const Info& info, const EVP_CIPHER* cipher) {
    cipher_ = cipher;
    key_.assign(info.key, info.key + sizeof info.key);
    iv_.assign(info.salt, info.salt + sizeof info.salt);
    iv_.insert(iv_.end(), info.iv, info.iv + sizeof info.iv);  // salt + iv: 12 bytes
    for (unsigned char b : info.rec_seq) seq_ = seq_ << 8 | b;
    chacha_ = cipher == EVP_chacha20_poly1305();
  }
  // TLS 1.2 AES-GCM: salt + an explicit nonce sent in each record; otherwise the IV XOR the sequence number.
  std::size_t explicit_nonce() const { return tls13_ || chacha_ ? 0 : 8; }
  Bytes nonce() const {
    Bytes n = iv_;
    if (explicit_nonce() == 0) {
      for (int i = 0; i < 8; ++i) n[4 + static_cast<std::size_t>(i)] ^= static_cast<unsigned char>(seq_ >> (56 - 8 * i));
    }
    return n;
  }
  void advance() {
    ++seq_;
    if (explicit_nonce() > 0) {  // the kernel counts the explicit nonce up with the sequence number
      for (std::size_t i = iv_.size(); i-- > 4;) {
        if (++iv_[i] != 0) break;
      }
    }
  }
  Bytes tls12_aad(unsigned char type, std::size_t len) const {
    Bytes aad;
    for (int i = 0; i < 8; ++i) aad.push_back(static_cast<unsigned char>(seq_ >> (56 - 8 * i)));
    aad.insert(aad.end(), {type, 3, 3, static_cast<unsigned char>(len >> 8), static_cast<unsigned char>(len & 0xff)});
    return aad;
  }
  void crypt(bool enc, const Bytes& nonce, const Bytes& aad, const unsigned char* in, std::size_t len,
             unsigned char* out, unsigned char* tag) const {
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    int n = 0;
    bool ok = EVP_CipherInit_ex(c, cipher_, nullptr, nullptr, nullptr, enc ? 1 : 0) == 1 &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) == 1 &&
              EVP_CipherInit_ex(c, nullptr, nullptr, key_.data(), nonce.data(), enc ? 1 : 0) == 1 &&
              EVP_CipherUpdate(c, nullptr, &n, aad.data(), static_cast<int>(aad.size())) == 1 &&
              EVP_CipherUpdate(c, out, &n, in, static_cast<int>(len)) == 1;
    if (ok && !enc) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, kTag, tag) == 1;
    ok = ok && EVP_CipherFinal_ex(c, out + n, &n) == 1;
    if (ok && enc) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, kTag, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) throw std::runtime_error(enc ? "seal failed" : "open failed: the record does not authenticate");
  }

  const EVP_CIPHER* cipher_ = nullptr;
  bool tls13_ = false;
  bool chacha_ = false;
  Bytes key_;
  Bytes iv_;
  std::uint64_t seq_ = 0;
};

KernelRecords kernel_records(KeyTracker& t, SSL* ssl, Direction d) {
  auto keys = t.keys(ssl, d);
  if (!keys) throw std::runtime_error(keys.error().message());
  auto info = kernel_tls::crypto_info(*keys);
  if (!info) throw std::runtime_error(info.error().message());
  return KernelRecords(*info);
}

std::size_t missing_in(SSL* ssl) {
  char* data = nullptr;
  const long have = BIO_get_mem_data(SSL_get_rbio(ssl), &data);
  return kernel_tls::missing_record_bytes({reinterpret_cast<unsigned char*>(data), static_cast<std::size_t>(have)});
}

std::string read_text(SSL* ssl) {
  char buf[256];
  std::size_t n = 0;
  if (SSL_read_ex(ssl, buf, sizeof buf, &n) != 1) throw std::runtime_error("SSL_read: " + openssl_errors("no data"));
  return {buf, n};
}

struct Suite {
  const char* name;
  int version;
  const char* suites;  // TLS 1.3 suite, or TLS 1.2 cipher
  int cipher_type;
};

void PrintTo(const Suite& s, std::ostream* os) { *os << s.name; }

class KernelRecordLayer : public ::testing::TestWithParam<Suite> {};

// One connection, from handshake to close_notify, with the kernel's records standing in where tls::Stream
// hands over. Returns the client's session, for a resumption.
SSL_SESSION* hand_over(const Context& client_ctx, const Context& server_ctx, const Suite& p, SSL_SESSION* resume) {
  MemoryPair pair(client_ctx, server_ctx);
  if (resume != nullptr) SSL_set_session(pair.client, resume);
  // The client's first request follows its Finished; 7 bytes of it are still on the way when the server
  // finishes (as in tls::Stream, where the server hands over with whatever its last read brought).
  pair.handshake([&] { ASSERT_EQ(SSL_write(pair.client, "request", 7), 7); }, 7);
  EXPECT_EQ(SSL_version(pair.server), p.version);
  EXPECT_EQ(SSL_session_reused(pair.server), resume != nullptr ? 1 : 0);

  // Server: the kernel starts at a record boundary, after the request (read by OpenSSL).
  EXPECT_EQ(missing_in(pair.server), 7u);
  MemoryPair::deliver(pair.server, pair.held);
  EXPECT_EQ(missing_in(pair.server), 0u);
  EXPECT_EQ(read_text(pair.server), "request");
  KernelRecords server_tx = kernel_records(pair.server_keys, pair.server, Direction::write);
  KernelRecords server_rx = kernel_records(pair.server_keys, pair.server, Direction::read);
  {
    auto info = kernel_tls::crypto_info(*pair.server_keys.keys(pair.server, Direction::write));
    EXPECT_EQ(info->base.cipher_type, p.cipher_type);
  }

  // What the client's OpenSSL sends next, the server's kernel opens.
  EXPECT_EQ(SSL_write(pair.client, "second", 6), 6);
  const auto [type, text] = server_rx.open(MemoryPair::written(pair.client));
  EXPECT_EQ(type, SSL3_RT_APPLICATION_DATA);
  EXPECT_EQ(text, "second");

  // What the server's kernel sends after OpenSSL's tickets, the client's OpenSSL reads.
  MemoryPair::deliver(pair.client, server_tx.seal(SSL3_RT_APPLICATION_DATA, "reply"));
  EXPECT_EQ(read_text(pair.client), "reply");

  // The client hands over after that first read: its kernel continues where the server's left off, in
  // both directions (the server's kernel sent "reply"; the client's OpenSSL sent "request" and "second").
  KernelRecords client_rx = kernel_records(pair.client_keys, pair.client, Direction::read);
  KernelRecords client_tx = kernel_records(pair.client_keys, pair.client, Direction::write);
  EXPECT_EQ(client_rx.seq(), server_tx.seq());
  EXPECT_EQ(client_tx.seq(), server_rx.seq());
  const auto [t2, back] = server_rx.open(client_tx.seal(SSL3_RT_APPLICATION_DATA, "kernel to kernel"));
  EXPECT_EQ(back, "kernel to kernel");
  // close_notify goes as an alert record; the receiving kernel reports its type.
  const auto [alert_type, alert] = client_rx.open(server_tx.seal(SSL3_RT_ALERT, std::string("\1\0", 2)));
  EXPECT_EQ(alert_type, SSL3_RT_ALERT);
  EXPECT_EQ(alert, std::string("\1\0", 2));
  // As tls::Stream marks a connection closed through the kernel: its session stays resumable.
  SSL_set_shutdown(pair.client, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  return SSL_get1_session(pair.client);
}

// A full handshake, then one resumed from its session (TLS 1.3 ticket / TLS 1.2 ticket).
TEST_P(KernelRecordLayer, TakesOverFromOpenSslAtTheHandOver) {
  const Suite& p = GetParam();
  ContextOptions o;
  o.min_version = o.max_version = p.version;
  (p.version == TLS1_3_VERSION ? o.ciphersuites : o.ciphers) = p.suites;
  Context server_ctx = testing::context(true, o);
  Context client_ctx = testing::context(false, o);
  SSL_SESSION* session = hand_over(client_ctx, server_ctx, p, nullptr);
  ASSERT_NE(session, nullptr);
  ASSERT_EQ(SSL_SESSION_is_resumable(session), 1);
  SSL_SESSION_free(hand_over(client_ctx, server_ctx, p, session));
  SSL_SESSION_free(session);
}

INSTANTIATE_TEST_SUITE_P(
    Suites, KernelRecordLayer,
    ::testing::Values(Suite{"Tls13Aes128Gcm", TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", TLS_CIPHER_AES_GCM_128},
                      Suite{"Tls13Aes256Gcm", TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", TLS_CIPHER_AES_GCM_256},
                      Suite{"Tls13ChaCha20", TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256", TLS_CIPHER_CHACHA20_POLY1305},
                      Suite{"Tls12Aes128Gcm", TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", TLS_CIPHER_AES_GCM_128},
                      Suite{"Tls12Aes256Gcm", TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", TLS_CIPHER_AES_GCM_256},
                      Suite{"Tls12ChaCha20", TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", TLS_CIPHER_CHACHA20_POLY1305}),
    [](const ::testing::TestParamInfo<Suite>& i) { return std::string(i.param.name); });

TEST(KernelTls, MissingRecordBytes) {
  const Bytes two = {23, 3, 3, 0, 2, 'a', 'b', 23, 3, 3, 1, 0};  // one whole record, then a header of 256
  EXPECT_EQ(kernel_tls::missing_record_bytes({}), 0u);
  EXPECT_EQ(kernel_tls::missing_record_bytes({two.data(), 7}), 0u);
  EXPECT_EQ(kernel_tls::missing_record_bytes({two.data(), 6}), 1u);
  EXPECT_EQ(kernel_tls::missing_record_bytes({two.data(), 3}), 2u);  // the rest of the header first
  EXPECT_EQ(kernel_tls::missing_record_bytes({two.data(), 9}), 3u);
  EXPECT_EQ(kernel_tls::missing_record_bytes({two.data(), two.size()}), 256u);
}

// On a connected loopback socket: the ULP attaches, or fails as available() said it would, and the socket
// then still carries plain bytes both ways.
TEST(KernelTls, AttachesOrFailsCleanly) {
  auto probe = kernel_tls::available();
  const bool available = probe.ok();
  const std::string why = available ? "" : probe.error().message();
  std::printf("kernel TLS: %s\n", available ? "available" : why.c_str());
  int l = ::socket(AF_INET, SOCK_STREAM, 0);
  int c = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(l, 1), 0);
  ASSERT_EQ(::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ASSERT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  int s = ::accept(l, nullptr, nullptr);
  ASSERT_GE(s, 0);
  auto attached = kernel_tls::attach(c);
  EXPECT_EQ(attached.ok(), available);
  if (!attached) {
    EXPECT_EQ(attached.error().message(), why);
    EXPECT_NE(why.find("TCP_ULP \"tls\": "), std::string::npos) << why;
  }
  // No TLS_TX / TLS_RX yet: plain bytes either way.
  char buf[8] = {};
  ASSERT_EQ(::send(c, "ping", 4, 0), 4);
  ASSERT_EQ(::recv(s, buf, sizeof buf, 0), 4);
  ASSERT_EQ(::send(s, "pong", 4, 0), 4);
  ASSERT_EQ(::recv(c, buf, sizeof buf, 0), 4);
  EXPECT_EQ(std::string(buf, 4), "pong");
  for (int fd : {s, c, l}) ::close(fd);
}

TEST(KernelTls, RequiredNamesWhatIsMissing) {
  auto probe = kernel_tls::available();
  const bool available = probe.ok();
  const std::string why = available ? "" : probe.error().message();
  auto ctx = Context::server({.cert_file = testing::cert("server.pem"), .key_file = testing::cert("server.key"),
                              .kernel_tls = KernelTls::required});
  EXPECT_EQ(ctx.ok(), available);
  if (ctx) {
    EXPECT_TRUE(ctx->kernel_tls());
  } else {
    EXPECT_EQ(ctx.error().message(), "tls: kernel TLS required: " + why);
  }
  auto off = Context::server({.cert_file = testing::cert("server.pem"), .key_file = testing::cert("server.key"),
                              .kernel_tls = KernelTls::off});
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->kernel_tls());
  EXPECT_NE(off->kernel_tls_note().find("off"), std::string::npos);
}

}  // namespace
}  // namespace corio::tls
