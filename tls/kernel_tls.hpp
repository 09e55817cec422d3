// Kernel TLS (the "tls" TCP upper-layer protocol): after the handshake the kernel encrypts what is sent on
// the socket and decrypts what is received, so plain io_uring sends and receives carry TLS records.
// tls::Stream hands a connection over with these pieces where the kernel has the ULP:
//   if (auto r = kernel_tls::attach(fd); r) r = kernel_tls::install(fd, Direction::write, *tracker.keys(...));
// Where it lacks it (no CONFIG_TLS), attach() fails with ENOENT and the stream keeps its records in user space.
// Why not OpenSSL's own kTLS (SSL_OP_ENABLE_KTLS): it works only on socket BIOs, whose reads and writes would
// bypass the runtime; corio's streams use memory BIOs, so the hand-over is done here, from the keys and
// sequence numbers KeyTracker takes out of OpenSSL.
#pragma once
#include <linux/tls.h>
#include <sys/socket.h>

#include <cstddef>
#include <span>
#include <string>

#include "corio/net/error.hpp"
#include "corio/tls/traffic_keys.hpp"

namespace corio::tls::kernel_tls {

// Whether the kernel takes the "tls" ULP, tried on a loopback connection: the error says why not.
net::Result<void> available();

// The kernel's description of one direction (setsockopt SOL_TLS, TLS_TX / TLS_RX).
struct CryptoInfo {
  union {
    tls_crypto_info base;
    tls12_crypto_info_aes_gcm_128 aes_gcm_128;
    tls12_crypto_info_aes_gcm_256 aes_gcm_256;
    tls12_crypto_info_chacha20_poly1305 chacha20_poly1305;
  };
  socklen_t size = 0;
  CryptoInfo() : base{} {}
  CryptoInfo(const CryptoInfo& o) = default;
  CryptoInfo& operator=(const CryptoInfo& o) = default;
  ~CryptoInfo();  // wipes the key
};
net::Result<CryptoInfo> crypto_info(const TrafficKeys& keys);

// Attaches the ULP to a connected TCP socket (once); then install() gives the kernel one direction.
net::Result<void> attach(int fd);
net::Result<void> install(int fd, Direction d, const TrafficKeys& keys);

// Sends one alert record (close_notify: level 1, description 0) through the kernel. 0 or the errno
// (EAGAIN when the socket's send buffer is full: it is non-blocking).
int send_alert(int fd, unsigned char level, unsigned char description);

// A receive on a kernel TLS socket fails with EIO when the next record is not application data (an alert,
// a post-handshake message): this reads that record into `buf` with its type.
struct Record {
  unsigned char type = 0;  // SSL3_RT_ALERT, SSL3_RT_HANDSHAKE, SSL3_RT_APPLICATION_DATA
  std::size_t size = 0;
};
net::Result<Record> read_record(int fd, std::span<char> buf);

// How many more bytes complete the TLS record that `bytes` (whole records from a record boundary) ends in
// the middle of: 0 when they end on a boundary. The kernel must start at a record boundary.
std::size_t missing_record_bytes(std::span<const unsigned char> bytes);

}  // namespace corio::tls::kernel_tls
