#include "corio/tls/kernel_tls.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace corio::tls::kernel_tls {
namespace {

template <class Info>
void fill(Info& info, const TrafficKeys& k, std::size_t salt_size) {
  info.info.version = static_cast<unsigned short>(k.version == TLS1_3_VERSION ? TLS_1_3_VERSION : TLS_1_2_VERSION);
  std::memcpy(info.key, k.key.data(), sizeof info.key);
  unsigned char seq[8];
  for (int i = 0; i < 8; ++i) seq[i] = static_cast<unsigned char>(k.seq >> (56 - 8 * i));
  std::memcpy(info.rec_seq, seq, sizeof seq);
  // The kernel's nonce is salt + iv; for TLS 1.3 and ChaCha20 that is the static IV, XORed with the
  // sequence number per record. TLS 1.2 AES-GCM instead sends salt + iv's 8 bytes as an explicit nonce that
  // the kernel counts up per record: starting it at the sequence number keeps every nonce unique.
  std::memcpy(info.salt, k.iv.data(), salt_size);
  if (k.version == TLS1_2_VERSION && k.cipher_nid != NID_chacha20_poly1305) std::memcpy(info.iv, seq, sizeof info.iv);
  else std::memcpy(info.iv, k.iv.data() + salt_size, sizeof info.iv);
}

net::Error os_error(int err, const std::string& what) { return net::make_error(err, "kernel tls: " + what); }

}  // namespace

CryptoInfo::~CryptoInfo() { OPENSSL_cleanse(this, sizeof *this); }

net::Result<void> available() {
  // The ULP attaches only to a connected TCP socket: try it on a loopback pair.
  int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  net::Result<void> attached = os_error(EBADF, "no loopback connection to try the ULP on");
  if (l >= 0 && c >= 0 && ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(l, 1) == 0 &&
      ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) == 0 &&
      ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    attached = attach(c);
  } else {
    attached = os_error(errno, "no loopback connection to try the ULP on");
  }
  if (l >= 0) ::close(l);
  if (c >= 0) ::close(c);
  return attached;
}

net::Result<CryptoInfo> crypto_info(const TrafficKeys& k) {
  CryptoInfo c;
  switch (k.cipher_nid) {
    case NID_aes_128_gcm:
      c.aes_gcm_128.info.cipher_type = TLS_CIPHER_AES_GCM_128;
      fill(c.aes_gcm_128, k, TLS_CIPHER_AES_GCM_128_SALT_SIZE);
      c.size = sizeof c.aes_gcm_128;
      break;
    case NID_aes_256_gcm:
      c.aes_gcm_256.info.cipher_type = TLS_CIPHER_AES_GCM_256;
      fill(c.aes_gcm_256, k, TLS_CIPHER_AES_GCM_256_SALT_SIZE);
      c.size = sizeof c.aes_gcm_256;
      break;
    case NID_chacha20_poly1305:
      c.chacha20_poly1305.info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
      fill(c.chacha20_poly1305, k, TLS_CIPHER_CHACHA20_POLY1305_SALT_SIZE);
      c.size = sizeof c.chacha20_poly1305;
      break;
    default:
      return os_error(EOPNOTSUPP, "no kernel cipher for OpenSSL cipher NID " + std::to_string(k.cipher_nid));
  }
  return c;
}

net::Result<void> attach(int fd) {
  if (::setsockopt(fd, SOL_TCP, TCP_ULP, "tls", 3) != 0) return os_error(errno, "setsockopt TCP_ULP \"tls\"");
  return {};
}

net::Result<void> install(int fd, Direction d, const TrafficKeys& keys) {
  auto info = crypto_info(keys);
  if (!info) return info.error();
  const bool tx = d == Direction::write;
  if (::setsockopt(fd, SOL_TLS, tx ? TLS_TX : TLS_RX, &info->base, info->size) != 0) {
    return os_error(errno, std::string("setsockopt SOL_TLS ") + (tx ? "TLS_TX" : "TLS_RX"));
  }
  return {};
}

// One buffer and room for one record-type control message (SOL_TLS).
struct RecordMessage {
  RecordMessage(void* data, std::size_t len) : iov{data, len} {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
  }
  RecordMessage(const RecordMessage&) = delete;
  RecordMessage& operator=(const RecordMessage&) = delete;
  iovec iov;
  alignas(cmsghdr) char control[CMSG_SPACE(1)] = {};
  msghdr msg{};
};

int send_alert(int fd, unsigned char level, unsigned char description) {
  unsigned char body[2] = {level, description};
  RecordMessage m(body, sizeof body);
  cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
  c->cmsg_level = SOL_TLS;
  c->cmsg_type = TLS_SET_RECORD_TYPE;
  c->cmsg_len = CMSG_LEN(1);
  *CMSG_DATA(c) = 21;  // SSL3_RT_ALERT
  return ::sendmsg(fd, &m.msg, MSG_DONTWAIT | MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof body) ? 0 : errno;
}

net::Result<Record> read_record(int fd, std::span<char> buf) {
  RecordMessage m(buf.data(), buf.size());
  msghdr& msg = m.msg;
  // Non-blocking: the EIO that sends us here means the record is already whole in the socket.
  const ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT);
  if (n < 0) return os_error(errno, "recvmsg of a TLS control record");
  Record r{.type = 23, .size = static_cast<std::size_t>(n)};  // SSL3_RT_APPLICATION_DATA unless told
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE) r.type = *CMSG_DATA(c);
  }
  return r;
}

std::size_t missing_record_bytes(std::span<const unsigned char> bytes) {
  constexpr std::size_t kHeader = 5;  // type, version (2), length (2)
  while (!bytes.empty()) {
    if (bytes.size() < kHeader) return kHeader - bytes.size();
    const std::size_t record = kHeader + (std::size_t{bytes[3]} << 8 | bytes[4]);
    if (bytes.size() < record) return record - bytes.size();
    bytes = bytes.subspan(record);
  }
  return 0;
}

}  // namespace corio::tls::kernel_tls
