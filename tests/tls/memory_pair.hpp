// A client and a server SSL from corio contexts, joined by memory BIOs that the test moves bytes between by
// hand, each watched by a KeyTracker: for looking at records one by one, and at what OpenSSL does with
// records made elsewhere.
#pragma once
#include <openssl/ssl.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "corio/tls/context.hpp"
#include "corio/tls/traffic_keys.hpp"

namespace corio::tls::testing {

inline std::string cert(const char* name) { return std::string(CORIO_TEST_CERTS) + "/" + name; }

// Contexts as Context builds them where the kernel has TLS: with the key-log callback (this machine's kernel
// may lack it, and the keys are checked here either way).
inline Context context(bool server, ContextOptions o) {
  if (server) {
    o.cert_file = cert("server.pem");
    o.key_file = cert("server.key");
  } else {
    o.ca_file = cert("ca.pem");
  }
  auto c = server ? Context::server(o) : Context::client(o);
  if (!c) throw std::runtime_error(c.error().message());
  SSL_CTX_set_keylog_callback(c->native(), KeyTracker::keylog_callback);
  return std::move(*c);
}

struct MemoryPair {
  MemoryPair(const Context& client_ctx, const Context& server_ctx)
      : client(SSL_new(client_ctx.native())), server(SSL_new(server_ctx.native())) {
    SSL_set_connect_state(client);
    SSL_set_accept_state(server);
    SSL_set_tlsext_host_name(client, "localhost");
    SSL_set1_host(client, "localhost");
    SSL_set_bio(client, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_bio(server, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    for (SSL* s : {client, server}) BIO_set_mem_eof_return(SSL_get_rbio(s), -1);
    client_keys.attach(client);
    server_keys.attach(server);
  }
  ~MemoryPair() {
    SSL_free(client);
    SSL_free(server);
  }
  MemoryPair(const MemoryPair&) = delete;
  MemoryPair& operator=(const MemoryPair&) = delete;

  // Everything `from` has written (its records, as they would cross the network).
  static std::vector<unsigned char> written(SSL* from) {
    BIO* out = SSL_get_wbio(from);
    std::vector<unsigned char> bytes(static_cast<std::size_t>(BIO_ctrl_pending(out)));
    if (!bytes.empty()) BIO_read(out, bytes.data(), static_cast<int>(bytes.size()));
    return bytes;
  }
  static void deliver(SSL* to, const std::vector<unsigned char>& bytes) {
    if (!bytes.empty()) BIO_write(SSL_get_rbio(to), bytes.data(), static_cast<int>(bytes.size()));
  }

  // Drives both sides until each has finished its handshake, moving bytes as they appear; throws on failure.
  // `on_client_done` runs as the client finishes (to write data that follows its last flight); of what the
  // client writes from then on, the last `hold_back` bytes stay in `held`, undelivered.
  void handshake(const std::function<void()>& on_client_done = {}, std::size_t hold_back = 0) {
    bool client_done = false;
    bool server_done = false;
    for (int round = 0; round < 10 && !(client_done && server_done); ++round) {
      if (!client_done) {
        client_done = step(client);
        if (client_done && on_client_done) on_client_done();
      }
      std::vector<unsigned char> bytes = written(client);
      if (client_done && hold_back > 0 && held.empty() && bytes.size() > hold_back) {
        held.assign(bytes.end() - static_cast<std::ptrdiff_t>(hold_back), bytes.end());
        bytes.resize(bytes.size() - hold_back);
      }
      deliver(server, bytes);
      if (!server_done) server_done = step(server);
      deliver(client, written(server));
    }
    if (!client_done || !server_done) throw std::runtime_error("handshake did not finish");
  }

  SSL* client;
  SSL* server;
  KeyTracker client_keys;
  KeyTracker server_keys;
  std::vector<unsigned char> held;

 private:
  static bool step(SSL* s) {
    const int r = SSL_do_handshake(s);
    if (r == 1) return true;
    if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ) throw std::runtime_error("handshake: " + openssl_errors());
    return false;
  }
};

}  // namespace corio::tls::testing
