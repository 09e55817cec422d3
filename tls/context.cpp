#include "corio/tls/context.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include "corio/tls/context_state.hpp"
#include "corio/tls/kernel_tls.hpp"
#include "corio/tls/traffic_keys.hpp"
#include "corio/runtime/log.hpp"

namespace corio::tls {

std::string openssl_errors(const char* fallback) {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    // "error:0A000086:SSL routines::certificate verify failed" -> "SSL routines::certificate verify failed"
    std::string_view line = buf;
    for (int colons = 0; colons < 2 && !line.empty(); line.remove_prefix(1)) colons += line.front() == ':';
    if (!out.empty()) out += "; ";
    out += line;
  }
  return out.empty() ? fallback : out;
}

namespace {

Error tls_error(int code, const std::string& what) { return net::make_error(code, "tls: " + what); }

// A PEM file the context needs: a clear ENOENT/EACCES before OpenSSL's own wording.
Result<void> readable(const std::string& path, const char* what) {
  if (::access(path.c_str(), R_OK) != 0) return tls_error(errno, std::string(what) + " " + path);
  return {};
}

int password_cb(char* buf, int size, int /*rwflag*/, void* userdata) {
  const auto* pw = static_cast<const std::string*>(userdata);
  const int n = static_cast<int>(std::min<std::size_t>(pw->size(), static_cast<std::size_t>(size)));
  std::memcpy(buf, pw->data(), static_cast<std::size_t>(n));
  return n;
}

ContextState* state_of(SSL_CTX* ctx) { return static_cast<ContextState*>(SSL_CTX_get_app_data(ctx)); }

int ticket_cb(SSL* ssl, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX* cipher,
              EVP_MAC_CTX* mac, int enc) {
  return state_of(SSL_get_SSL_CTX(ssl))->tickets.handle(name, iv, cipher, mac, enc);
}

int alpn_select_cb(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                   unsigned int inlen, void* /*arg*/) {
  const std::string& ours = state_of(SSL_get_SSL_CTX(ssl))->alpn_wire;
  unsigned char* chosen = nullptr;
  // Server preference: the first of our protocols that the client offers.
  if (SSL_select_next_proto(&chosen, outlen, reinterpret_cast<const unsigned char*>(ours.data()),
                            static_cast<unsigned>(ours.size()), in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol: the client learns why
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

int new_session_cb(SSL* ssl, SSL_SESSION* session) {
  const auto* key = static_cast<const std::string*>(SSL_get_app_data(ssl));
  if (key == nullptr || key->empty()) return 0;
  state_of(SSL_get_SSL_CTX(ssl))->sessions.put(*key, session);
  return 1;  // the cache keeps the reference
}

int cert_verify_cb(X509_STORE_CTX* store, void* arg) {
  return static_cast<ContextState*>(arg)->verified.verify(store);
}

// A certificate that peers will refuse still loads (a clock can be wrong), but the operator hears of it.
void warn_if_out_of_date(X509* leaf, const std::string& file) {
  if (leaf == nullptr) return;
  auto when = [](const ASN1_TIME* t) {
    std::string out;
    if (BIO* b = BIO_new(BIO_s_mem())) {
      if (ASN1_TIME_print(b, t) == 1) {
        char* data = nullptr;
        const long len = BIO_get_mem_data(b, &data);
        out.assign(data, static_cast<std::size_t>(len));
      }
      BIO_free(b);
    }
    return out;
  };
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
    log::write(log::Level::warning, "tls: certificate %s expired on %s: peers will refuse it", file.c_str(),
               when(X509_get0_notAfter(leaf)).c_str());
  } else if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
    log::write(log::Level::warning, "tls: certificate %s is not valid before %s: peers will refuse it", file.c_str(),
               when(X509_get0_notBefore(leaf)).c_str());
  }
}

std::string alpn_wire(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const std::string& p : protocols) {  // each 1 to 255 bytes (checked by configure)
    wire += static_cast<char>(p.size());
    wire += p;
  }
  return wire;
}

}  // namespace

// --- TicketKeys ---

void TicketKeys::configure(std::chrono::seconds rotation, std::string file) {
  std::lock_guard lock(mu_);
  rotation_ = rotation;
  file_ = std::move(file);
  if (file_.empty()) generate_locked();
}

Result<void> TicketKeys::load() {
  std::lock_guard lock(mu_);
  return load_locked();
}

Result<void> TicketKeys::load_locked() {
  std::ifstream in(file_, std::ios::binary);
  if (!in) return tls_error(errno != 0 ? errno : ENOENT, "ticket key file " + file_);
  std::vector<Key> keys;
  Key k;
  while (in.read(reinterpret_cast<char*>(&k), sizeof k)) keys.push_back(k);
  if (keys.empty() || in.gcount() != 0) {
    return tls_error(EINVAL, "ticket key file " + file_ + ": expected one or more 80-byte keys (name, AES key, HMAC key)");
  }
  current_ = keys[0];
  previous_ = keys.size() > 1 ? std::optional<Key>(keys[1]) : std::nullopt;
  since_ = std::chrono::steady_clock::now();
  return {};
}

void TicketKeys::generate_locked() {
  if (current_) previous_ = current_;
  Key k;
  RAND_bytes(reinterpret_cast<unsigned char*>(&k), sizeof k);
  current_ = k;
  since_ = std::chrono::steady_clock::now();
}

// When the key file is read next ("in 1h", "in 90s"), for the message that says a re-read failed.
std::string TicketKeys::next_read_locked() const {
  const auto n = rotation_.count();
  if (n <= 0) return "at the next rotate_ticket_keys()";
  if (n % 3600 == 0) return "in " + std::to_string(n / 3600) + "h";
  if (n % 60 == 0) return "in " + std::to_string(n / 60) + "min";
  return "in " + std::to_string(n) + "s";
}

// A file that cannot be read keeps the keys we have until the next rotation: since_ moves on anyway, or
// every handshake would try again under the lock they all take. Said once per run of failures.
void TicketKeys::reload_locked() {
  auto r = load_locked();
  if (r) {
    if (std::exchange(failing_, false)) {
      log::write(log::Level::info, "tls: ticket key file %s read again; its keys are in use", file_.c_str());
    }
    return;
  }
  since_ = std::chrono::steady_clock::now();
  ++reload_failures_;
  if (!std::exchange(failing_, true)) {
    log::write(log::Level::error, "%s; keeping the current keys, retrying %s", r.error().message().c_str(),
               next_read_locked().c_str());
  }
}

std::uint64_t TicketKeys::reload_failures() const {
  std::lock_guard lock(mu_);
  return reload_failures_;
}

void TicketKeys::rotate() {
  std::lock_guard lock(mu_);
  if (file_.empty()) generate_locked();
  else reload_locked();
}

int TicketKeys::handle(unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc) {
  std::lock_guard lock(mu_);
  if (rotation_.count() > 0 && std::chrono::steady_clock::now() - since_ >= rotation_) {
    if (file_.empty()) generate_locked();
    else reload_locked();
  }
  auto init = [&](const Key& k, int encrypt) {
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(k.hmac), sizeof k.hmac),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(mac, params) != 1) return false;
    return EVP_CipherInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k.aes, iv, encrypt) == 1;
  };
  if (enc == 1) {
    if (!current_) return -1;
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1) return -1;
    std::memcpy(name, current_->name, sizeof current_->name);
    return init(*current_, 1) ? 1 : -1;
  }
  // 2 = valid, send a new ticket: for the previous key that moves the client to the current one, and for
  // either it keeps TLS 1.3 clients resuming, since they use each ticket once and OpenSSL's server sends
  // none after a resumption unless asked.
  for (const std::optional<Key>* k : {&current_, &previous_}) {
    if (*k && std::memcmp(name, (*k)->name, 16) == 0) return init(**k, 0) ? 2 : -1;
  }
  return 0;  // unknown key: a full handshake
}

// --- SessionCache ---

void SessionCache::put(const std::string& key, SSL_SESSION* session) {
  std::lock_guard lock(mu_);
  if (auto it = sessions_.find(key); it != sessions_.end()) {
    SSL_SESSION_free(it->second);  // the same session again: this drops the extra reference
    it->second = session;
    return;
  }
  sessions_.emplace(key, session);
  order_.push_back(key);
  while (sessions_.size() > limit_ && !order_.empty()) {
    if (auto it = sessions_.find(order_.front()); it != sessions_.end()) {
      SSL_SESSION_free(it->second);
      sessions_.erase(it);
    }
    order_.pop_front();
  }
}

bool SessionCache::apply(const std::string& key, SSL* ssl) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(key);
  return it != sessions_.end() && SSL_set_session(ssl, it->second) == 1;
}

std::size_t SessionCache::size() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

SessionCache::~SessionCache() {
  for (auto& [k, s] : sessions_) SSL_SESSION_free(s);
}

// --- VerifyCache ---

int VerifyCache::verify(X509_STORE_CTX* store) {
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  std::array<unsigned char, 32> digest{};
  unsigned int len = 0;
  const char* host = X509_VERIFY_PARAM_get0_host(X509_STORE_CTX_get0_param(store), 0);
  std::string key;
  const bool usable = leaf != nullptr && X509_digest(leaf, EVP_sha256(), digest.data(), &len) == 1 &&
                      X509_cmp_current_time(X509_get0_notAfter(leaf)) > 0;
  if (usable) {
    key.assign(reinterpret_cast<const char*>(digest.data()), len);
    key += host != nullptr ? host : "";
    std::lock_guard lock(mu_);
    if (known_.count(key) != 0) {
      ++hits_;
      return 1;
    }
  }
  const int ok = X509_verify_cert(store);
  if (ok == 1 && usable && limit_ > 0) {
    std::lock_guard lock(mu_);
    if (known_.insert(key).second) order_.push_back(key);
    while (known_.size() > limit_) {
      known_.erase(order_.front());
      order_.pop_front();
    }
  }
  return ok;
}

std::size_t VerifyCache::size() const {
  std::lock_guard lock(mu_);
  return known_.size();
}

std::uint64_t VerifyCache::hits() const {
  std::lock_guard lock(mu_);
  return hits_;
}

// --- Context ---

Context::Context(SSL_CTX* ctx, bool server, const ContextOptions& options)
    : ctx_(ctx), server_(server), options_(options), state_(std::make_unique<ContextState>()) {
  SSL_CTX_set_app_data(ctx_, state_.get());
}

Context::Context(Context&& o) noexcept
    : ctx_(std::exchange(o.ctx_, nullptr)),
      server_(o.server_),
      kernel_tls_(o.kernel_tls_),
      kernel_tls_note_(std::move(o.kernel_tls_note_)),
      options_(std::move(o.options_)),
      state_(std::move(o.state_)) {}

Context& Context::operator=(Context&& o) noexcept {
  if (this != &o) {
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    ctx_ = std::exchange(o.ctx_, nullptr);
    server_ = o.server_;
    kernel_tls_ = o.kernel_tls_;
    kernel_tls_note_ = std::move(o.kernel_tls_note_);
    options_ = std::move(o.options_);
    state_ = std::move(o.state_);
  }
  return *this;
}

Context::~Context() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

Result<Context> Context::server(const ContextOptions& options) {
  if (options.cert_file.empty() || options.key_file.empty()) {
    return tls_error(EINVAL, "a server context needs cert_file and key_file");
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return tls_error(ENOMEM, "SSL_CTX_new: " + openssl_errors());
  Context c(ctx, true, options);
  if (auto r = c.configure(); !r) return r.error();
  return c;
}

Result<Context> Context::client(const ContextOptions& options) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return tls_error(ENOMEM, "SSL_CTX_new: " + openssl_errors());
  Context c(ctx, false, options);
  if (auto r = c.configure(); !r) return r.error();
  return c;
}

Result<void> Context::configure() {
  const ContextOptions& o = options_;
  ERR_clear_error();
  if (SSL_CTX_set_min_proto_version(ctx_, o.min_version) != 1 ||
      (o.max_version != 0 && SSL_CTX_set_max_proto_version(ctx_, o.max_version) != 1)) {
    return tls_error(EINVAL, "protocol versions: " + openssl_errors());
  }
  if (!o.ciphers.empty() && SSL_CTX_set_cipher_list(ctx_, o.ciphers.c_str()) != 1) {
    return tls_error(EINVAL, "cipher list \"" + o.ciphers + "\": " + openssl_errors());
  }
  if (!o.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx_, o.ciphersuites.c_str()) != 1) {
    return tls_error(EINVAL, "TLS 1.3 cipher suites \"" + o.ciphersuites + "\": " + openssl_errors());
  }
  if (!o.groups.empty() && SSL_CTX_set1_groups_list(ctx_, o.groups.c_str()) != 1) {
    return tls_error(EINVAL, "groups \"" + o.groups + "\": " + openssl_errors());
  }
  SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS);
  // A renegotiation would change keys behind the kernel's back (and is a known attack surface anyway).
  SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION);
  if (o.kernel_tls == KernelTls::off) {
    kernel_tls_note_ = "kernel TLS is off (ContextOptions::kernel_tls)";
  } else if (auto kernel = kernel_tls::available(); !kernel) {
    if (o.kernel_tls == KernelTls::required) return tls_error(kernel.error().code, "kernel TLS required: " + kernel.error().context);
    kernel_tls_note_ = kernel.error().message();
  } else {
    kernel_tls_ = true;
    // The TLS 1.3 traffic secrets reach us only through the key-log callback.
    SSL_CTX_set_keylog_callback(ctx_, KeyTracker::keylog_callback);
  }
  if (!o.cert_file.empty()) {
    if (auto r = readable(o.cert_file, "certificate chain"); !r) return r;
    if (auto r = readable(o.key_file, "private key"); !r) return r;
    if (SSL_CTX_use_certificate_chain_file(ctx_, o.cert_file.c_str()) != 1) {
      return tls_error(EINVAL, "certificate chain " + o.cert_file + ": " + openssl_errors());
    }
    warn_if_out_of_date(SSL_CTX_get0_certificate(ctx_), o.cert_file);
    // Read the key ourselves: "cannot decrypt" and "not this certificate's key" are different mistakes.
    std::string password = o.key_password;
    EVP_PKEY* key = nullptr;
    if (BIO* in = BIO_new_file(o.key_file.c_str(), "r")) {
      key = PEM_read_bio_PrivateKey(in, nullptr, password_cb, &password);
      BIO_free(in);
    }
    if (key == nullptr) {
      return tls_error(EINVAL, "private key " + o.key_file + " (not a PEM key, or a wrong password): " + openssl_errors());
    }
    const bool matches = SSL_CTX_use_PrivateKey(ctx_, key) == 1 && SSL_CTX_check_private_key(ctx_) == 1;
    EVP_PKEY_free(key);
    if (!matches) {
      ERR_clear_error();
      return tls_error(EINVAL, "private key " + o.key_file + " does not match certificate " + o.cert_file);
    }
  }
  const bool verify = server_ ? !o.ca_file.empty() : o.verify_peer;
  if (!o.ca_file.empty()) {
    if (auto r = readable(o.ca_file, "CA bundle"); !r) return r;
    if (SSL_CTX_load_verify_locations(ctx_, o.ca_file.c_str(), nullptr) != 1) {
      return tls_error(EINVAL, "CA bundle " + o.ca_file + ": " + openssl_errors());
    }
    if (server_) SSL_CTX_set_client_CA_list(ctx_, SSL_load_client_CA_file(o.ca_file.c_str()));
  } else if (verify) {
    SSL_CTX_set_default_verify_paths(ctx_);
  }
  if (verify) {
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | (server_ ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), nullptr);
    state_->verified.set_limit(o.verify_cache_size);
    SSL_CTX_set_cert_verify_callback(ctx_, cert_verify_cb, state_.get());
  }
  for (const std::string& p : o.alpn) {
    if (p.empty() || p.size() > 255) {
      return tls_error(EINVAL, "ALPN protocol \"" + p.substr(0, 32) + (p.size() > 32 ? "...\"" : "\"") + " is " +
                                   std::to_string(p.size()) + " bytes: a name must be 1 to 255 bytes");
    }
  }
  state_->alpn_wire = alpn_wire(o.alpn);
  if (server_) {
    SSL_CTX_set_options(ctx_, SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (!state_->alpn_wire.empty()) SSL_CTX_set_alpn_select_cb(ctx_, alpn_select_cb, nullptr);
    static const unsigned char kSessionContext[] = "corio";
    SSL_CTX_set_session_id_context(ctx_, kSessionContext, sizeof kSessionContext - 1);
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_SERVER);
    if (o.session_tickets) {
      state_->tickets.configure(o.ticket_rotation, o.ticket_key_file);
      if (!o.ticket_key_file.empty()) {
        if (auto r = state_->tickets.load(); !r) return r;
      }
      SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx_, ticket_cb);
    } else {
      SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET);
    }
  } else {
    if (!state_->alpn_wire.empty() &&
        SSL_CTX_set_alpn_protos(ctx_, reinterpret_cast<const unsigned char*>(state_->alpn_wire.data()),
                                static_cast<unsigned>(state_->alpn_wire.size())) != 0) {
      return tls_error(EINVAL, "ALPN protocols: " + openssl_errors());
    }
    state_->sessions.set_limit(o.session_cache_size);
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx_, new_session_cb);
    if (!o.session_tickets) SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET);
  }
  return {};
}

void Context::rotate_ticket_keys() { state_->tickets.rotate(); }
std::size_t Context::cached_sessions() const { return state_->sessions.size(); }
std::size_t Context::verified_leaves() const { return state_->verified.size(); }
std::uint64_t Context::verify_cache_hits() const { return state_->verified.hits(); }
std::uint64_t Context::ticket_key_reload_failures() const { return state_->tickets.reload_failures(); }

bool Context::kernel_tls_available(std::string* why) {
  auto r = kernel_tls::available();
  if (!r && why != nullptr) *why = r.error().message();
  return r.ok();
}

}  // namespace corio::tls
