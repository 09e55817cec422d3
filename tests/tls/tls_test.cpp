// tls/: handshakes and echo between corio clients and servers over loopback, ALPN, TLS 1.2 and 1.3,
// resumption across a ticket-key rotation and across contexts sharing a key file, peer verification with
// its cache, client certificates, and every bad input as a clear error while the server keeps serving.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "corio/net/tcp_listener.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/time.hpp"
#include "corio/tls/stream.hpp"

namespace corio::tls {
namespace {

using namespace std::chrono_literals;
using net::Address;
using net::TcpListener;
using net::TcpStream;

std::string cert(const char* name) { return std::string(CORIO_TEST_CERTS) + "/" + name; }

ContextOptions server_options() { return {.cert_file = cert("server.pem"), .key_file = cert("server.key")}; }
ContextOptions client_options() { return {.ca_file = cert("ca.pem")}; }

Context make_server(ContextOptions o = server_options()) {
  auto c = Context::server(o);
  if (!c) throw std::runtime_error(c.error().message());
  return std::move(*c);
}
Context make_client(ContextOptions o = client_options()) {
  auto c = Context::client(o);
  if (!c) throw std::runtime_error(c.error().message());
  return std::move(*c);
}

// Serves TLS echo on `l` for `count` connections, recording each handshake's error ("" when it worked).
task<void> serve(const TcpListener& l, const Context& ctx, int count, std::vector<std::string>& errors) {
  for (int i = 0; i < count; ++i) {
    auto tcp = co_await l.accept();
    if (!tcp) co_return;
    auto s = co_await Stream::accept(ctx, std::move(*tcp), Clock::now() + 2s);
    if (!s) {
      errors.push_back(s.error().message());
      continue;
    }
    errors.emplace_back();
    char buf[4096];
    for (;;) {
      auto n = co_await s->read_some(buf, Clock::now() + 2s);
      if (!n || *n == 0) break;
      if (!co_await s->write_all(std::span<const char>(buf, *n))) break;
    }
    (void)co_await s->shutdown(Clock::now() + 1s);
  }
}

struct Outcome {
  std::string error;  // "" when the handshake worked
  std::string echoed;
  std::string alpn;
  std::string version;
  bool reused = false;
};

task<Outcome> talk(const TcpListener& l, const Context& ctx, std::string name = "localhost", std::string key = {}) {
  const std::string msg = "hello tls";
  Outcome o;
  auto tcp = co_await TcpStream::connect(l.local_address(), 2s);
  if (!tcp) co_return Outcome{.error = tcp.error().message()};
  auto s = co_await Stream::connect(ctx, std::move(*tcp), name, Clock::now() + 2s, key);
  if (!s) co_return Outcome{.error = s.error().message()};
  o.alpn = s->alpn();
  o.version = s->version();
  o.reused = s->session_reused();
  if (!co_await s->write_all(msg)) co_return Outcome{.error = "write failed"};
  std::string got(msg.size(), '\0');
  std::size_t have = 0;
  while (have < msg.size()) {
    auto n = co_await s->read_some(std::span(got).subspan(have), Clock::now() + 2s);
    if (!n || *n == 0) co_return Outcome{.error = n ? "closed early" : n.error().message()};
    have += *n;
  }
  o.echoed = got;
  (void)co_await s->shutdown(Clock::now() + 1s);
  char c;
  (void)co_await s->read_some(std::span(&c, 1), Clock::now() + 1s);  // the server's close_notify (and tickets)
  co_return o;
}

struct Fixture {
  Result<TcpListener> l = TcpListener::bind(Address::loopback_v4(0));
};

TEST(Tls, HandshakeEchoAndAlpnByServerPreference) {
  Fixture f;
  Context server = make_server({.cert_file = cert("server.pem"), .key_file = cert("server.key"), .alpn = {"h2", "http/1.1"}});
  Context client = make_client({.ca_file = cert("ca.pem"), .alpn = {"http/1.1", "h2"}});
  std::vector<std::string> errors;
  Runtime rt({.reactors = 1});
  Outcome o = rt.run([&]() -> task<Outcome> {
    spawn(serve(*f.l, server, 1, errors));
    co_return co_await talk(*f.l, client);
  }());
  EXPECT_EQ(o.error, "");
  EXPECT_EQ(o.echoed, "hello tls");
  EXPECT_EQ(o.alpn, "h2");
  EXPECT_EQ(o.version, "TLSv1.3");
  EXPECT_EQ(errors, std::vector<std::string>{""});
}

// Three connections from one client context: the second and third resume (TLS 1.3 / TLS 1.2 tickets).
void resumes(int max_version) {
  Fixture f;
  Context server = make_server();
  ContextOptions co = client_options();
  co.max_version = max_version;
  Context client = make_client(co);
  std::vector<std::string> errors;
  Runtime rt({.reactors = 1});
  auto [first, second, third] = rt.run([&]() -> task<std::tuple<Outcome, Outcome, Outcome>> {
    spawn(serve(*f.l, server, 3, errors));
    Outcome a = co_await talk(*f.l, client);
    Outcome b = co_await talk(*f.l, client);
    Outcome c = co_await talk(*f.l, client);
    co_return std::tuple{a, b, c};
  }());
  EXPECT_EQ(first.error, "");
  EXPECT_FALSE(first.reused);
  EXPECT_EQ(second.error, "");
  EXPECT_TRUE(second.reused);
  EXPECT_TRUE(third.reused);  // every resumption brings a fresh ticket (TLS 1.3 tickets are used once)
  EXPECT_EQ(second.version, max_version == 0x0303 ? "TLSv1.2" : "TLSv1.3");
  EXPECT_GE(client.cached_sessions(), 1u);
}

TEST(Tls, SessionResumptionTls13) { resumes(0); }
TEST(Tls, SessionResumptionTls12) { resumes(0x0303); }

// One rotation: tickets made with the previous key still resume. Two: they no longer do.
TEST(Tls, ResumptionAcrossTicketKeyRotation) {
  Fixture f;
  Context server = make_server();
  Context client = make_client();
  std::vector<std::string> errors;
  Runtime rt({.reactors = 1});
  auto reused = rt.run([&]() -> task<std::vector<bool>> {
    spawn(serve(*f.l, server, 4, errors));
    std::vector<bool> r;
    (void)co_await talk(*f.l, client);  // a ticket under key A
    server.rotate_ticket_keys();        // current B, previous A
    Outcome b = co_await talk(*f.l, client);
    r.push_back(b.reused);              // A still accepted (and the ticket renewed under B)
    server.rotate_ticket_keys();        // current C, previous B
    server.rotate_ticket_keys();        // current D, previous C: B is gone
    Outcome d = co_await talk(*f.l, client);
    r.push_back(d.reused);
    co_return r;
  }());
  EXPECT_EQ(reused, (std::vector<bool>{true, false}));
}

// Two server contexts (two processes, say) sharing one key file: a ticket from one resumes on the other.
TEST(Tls, TicketKeyFileSharedBetweenServers) {
  const std::string file = std::string(CORIO_TEST_CERTS) + "/tickets.key";
  {
    std::ofstream out(file, std::ios::binary);
    std::string key(80, '\0');
    for (int i = 0; i < 80; ++i) key[static_cast<std::size_t>(i)] = static_cast<char>(i * 7 + 1);
    out << key;
  }
  Fixture a;
  Fixture b;
  ContextOptions so = server_options();
  so.ticket_key_file = file;
  Context server_a = make_server(so);
  Context server_b = make_server(so);
  Context client = make_client();
  std::vector<std::string> errors;
  Runtime rt({.reactors = 1});
  Outcome second = rt.run([&]() -> task<Outcome> {
    spawn(serve(*a.l, server_a, 1, errors));
    spawn(serve(*b.l, server_b, 1, errors));
    (void)co_await talk(*a.l, client, "localhost", "pool");
    co_return co_await talk(*b.l, client, "localhost", "pool");  // one session key for both servers
  }());
  EXPECT_EQ(second.error, "");
  EXPECT_TRUE(second.reused);
  auto bad = Context::server({.cert_file = cert("server.pem"), .key_file = cert("server.key"),
                              .ticket_key_file = cert("ca.pem")});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("80-byte keys"), std::string::npos) << bad.error().message();
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// A key file gone at a rotation: the server keeps the keys it has (tickets still resume), says so once, and
// reads the file again a rotation later, not on every handshake; once restored, its new key is taken.
TEST(Tls, TicketKeyFileThatCannotBeReadKeepsTheKeysUntilTheNextRotation) {
  // Per process: ctest runs the .uring and .epoll variants of this test side by side.
  const std::string file = std::string(CORIO_TEST_CERTS) + "/rotating-tickets-" + std::to_string(::getpid()) + ".key";
  auto write_key = [&](int seed) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    for (int i = 0; i < 80; ++i) out.put(static_cast<char>(seed + i * 7));
  };
  write_key(1);
  Fixture f;
  ContextOptions so = server_options();
  so.ticket_key_file = file;
  so.ticket_rotation = 1s;
  Context server = make_server(so);
  Context client = make_client();
  constexpr int kBurst = 20;
  constexpr auto kPastRotation = 1100ms;
  struct Seen {
    std::vector<Outcome> burst;
    Clock::duration burst_took{};
    std::uint64_t failures_after_burst = 0;
    Outcome later;  // a rotation after the burst, the file still gone
    std::uint64_t failures_later = 0;
    Outcome restored;  // a rotation after the file is back with a new key
    Outcome next;
  };
  std::vector<std::string> errors;
  Runtime rt({.reactors = 1});
  testing::internal::CaptureStderr();
  Seen seen = rt.run([&]() -> task<Seen> {
    spawn(serve(*f.l, server, kBurst + 4, errors));
    Seen out;
    (void)co_await talk(*f.l, client);  // a ticket under the file's first key
    std::remove(file.c_str());
    co_await sleep_for(kPastRotation);
    const auto start = Clock::now();
    for (int i = 0; i < kBurst; ++i) out.burst.push_back(co_await talk(*f.l, client));
    out.burst_took = Clock::now() - start;
    out.failures_after_burst = server.ticket_key_reload_failures();
    co_await sleep_for(kPastRotation);
    out.later = co_await talk(*f.l, client);
    out.failures_later = server.ticket_key_reload_failures();
    write_key(50);
    co_await sleep_for(kPastRotation);
    out.restored = co_await talk(*f.l, client);
    out.next = co_await talk(*f.l, client);
    co_return out;
  }());
  const std::string logged = testing::internal::GetCapturedStderr();
  std::remove(file.c_str());
  for (const Outcome& o : seen.burst) {
    EXPECT_EQ(o.error, "");
    EXPECT_TRUE(o.reused);  // the first key is still current
  }
  // One failed re-read per rotation interval, however many handshakes (the burst may outlast one under a
  // sanitizer).
  EXPECT_GE(seen.failures_after_burst, 1u);
  EXPECT_LE(seen.failures_after_burst, 1u + static_cast<std::uint64_t>(seen.burst_took / 1s));
  EXPECT_EQ(seen.later.error, "");
  EXPECT_TRUE(seen.later.reused);
  EXPECT_EQ(seen.failures_later, seen.failures_after_burst + 1);
  EXPECT_EQ(server.ticket_key_reload_failures(), seen.failures_later);  // the restored file was read
  EXPECT_EQ(count(logged, "corio: tls: ticket key file " + file +
                              ": No such file or directory; keeping the current keys, retrying in 1s\n"),
            1u)
      << logged;
  EXPECT_EQ(count(logged, "corio: tls: ticket key file " + file + " read again"), 1u) << logged;
  EXPECT_EQ(seen.restored.error, "");
  EXPECT_FALSE(seen.restored.reused);  // the file now holds only the new key: the old tickets are unknown
  EXPECT_TRUE(seen.next.reused);       // and the new key's ticket resumes
}

TEST(Tls, ContextErrorsNameTheFileAndTheReason) {
  auto missing = Context::server({.cert_file = cert("nope.pem"), .key_file = cert("server.key")});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("nope.pem: No such file or directory"), std::string::npos)
      << missing.error().message();
  auto password = Context::server({.cert_file = cert("server.pem"), .key_file = cert("secret.key"), .key_password = "wrong"});
  ASSERT_FALSE(password);
  EXPECT_NE(password.error().message().find("a wrong password"), std::string::npos) << password.error().message();
  auto right = Context::server({.cert_file = cert("server.pem"), .key_file = cert("secret.key"), .key_password = "hunter2"});
  EXPECT_TRUE(right) << (right ? "" : right.error().message());
  auto mismatch = Context::server({.cert_file = cert("server.pem"), .key_file = cert("other.key")});
  ASSERT_FALSE(mismatch);
  EXPECT_NE(mismatch.error().message().find("does not match certificate"), std::string::npos) << mismatch.error().message();
  auto ciphers = Context::client({.ciphers = "NO-SUCH-CIPHER", .ciphersuites = ""});
  ASSERT_FALSE(ciphers);
  EXPECT_NE(ciphers.error().message().find("cipher list"), std::string::npos) << ciphers.error().message();
  auto alpn = Context::server({.cert_file = cert("server.pem"), .key_file = cert("server.key"),
                               .alpn = {"h2", std::string(300, 'x')}});
  ASSERT_FALSE(alpn);
  EXPECT_NE(alpn.error().message().find("is 300 bytes: a name must be 1 to 255 bytes"), std::string::npos)
      << alpn.error().message();
  EXPECT_FALSE(Context::client({.alpn = {""}}));
}

TEST(Tls, AnExpiredCertificateLoadsWithAWarning) {
  ::testing::internal::CaptureStderr();
  auto expired = Context::server({.cert_file = cert("expired.pem"), .key_file = cert("expired.key")});
  const std::string warned = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(expired) << (expired ? "" : expired.error().message());
  EXPECT_NE(warned.find("certificate " + cert("expired.pem") + " expired on"), std::string::npos) << warned;
  EXPECT_NE(warned.find("2020"), std::string::npos) << warned;
  ::testing::internal::CaptureStderr();
  auto fine = Context::server({.cert_file = cert("server.pem"), .key_file = cert("server.key")});
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_TRUE(fine);
}

// Each bad handshake fails on its own connection with a reason, and the server serves the next client.
TEST(Tls, BadPeersFailAloneWithAReason) {
  Fixture f;
  Context server = make_server({.cert_file = cert("server.pem"), .key_file = cert("server.key"), .alpn = {"h2"}});
  Context expired_server = make_server({.cert_file = cert("expired.pem"), .key_file = cert("expired.key")});
  Context wronghost_server = make_server({.cert_file = cert("wronghost.pem"), .key_file = cert("wronghost.key")});
  Context client = make_client();
  Context alpn_client = make_client({.ca_file = cert("ca.pem"), .alpn = {"spdy/1"}});
  Context cipher_client = make_client({.ca_file = cert("ca.pem"), .ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305",
                                       .ciphersuites = "", .max_version = 0x0303});
  Context aes_only_server = make_server({.cert_file = cert("server.pem"), .key_file = cert("server.key"),
                                         .ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256", .max_version = 0x0303});
  std::vector<std::string> errors;
  Runtime rt({.reactors = 1});
  auto outcomes = rt.run([&]() -> task<std::vector<std::string>> {
    std::vector<std::string> out;
    spawn(serve(*f.l, server, 4, errors));
    // Plaintext to the TLS port.
    {
      auto tcp = co_await TcpStream::connect(f.l->local_address(), 2s);
      (void)co_await tcp->write_all(std::string_view("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      char c[64];
      (void)co_await tcp->read_some(c).timeout(2s);
    }
    // A handshake cut short: half a ClientHello, then the connection closes.
    {
      auto tcp = co_await TcpStream::connect(f.l->local_address(), 2s);
      const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
      (void)co_await tcp->write_all(std::span(reinterpret_cast<const char*>(hello), sizeof hello));
    }
    out.push_back((co_await talk(*f.l, alpn_client)).error);  // no common ALPN
    out.push_back((co_await talk(*f.l, client)).error);       // and a good client is still served
    co_return out;
  }());
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_NE(outcomes[0].find("no application protocol"), std::string::npos) << outcomes[0];
  EXPECT_EQ(outcomes[1], "");
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_NE(errors[0].find("tls handshake with 127.0.0.1"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("mid-handshake"), std::string::npos) << errors[1];
  EXPECT_NE(errors[2].find("no application protocol"), std::string::npos) << errors[2];
  EXPECT_EQ(errors[3], "");

  // Certificates the client must refuse, and no common cipher.
  auto refused = [&](const Context& srv, const Context& cli) {
    Fixture g;
    std::vector<std::string> errs;
    Runtime r({.reactors = 1});
    return r.run([&]() -> task<std::string> {
      spawn(serve(*g.l, srv, 1, errs));
      co_return (co_await talk(*g.l, cli)).error;
    }());
  };
  std::string expired = refused(expired_server, client);
  EXPECT_NE(expired.find("certificate has expired"), std::string::npos) << expired;
  std::string wrong = refused(wronghost_server, client);
  EXPECT_NE(wrong.find("hostname mismatch"), std::string::npos) << wrong;
  std::string cipher = refused(aes_only_server, cipher_client);
  EXPECT_NE(cipher.find("handshake failure"), std::string::npos) << cipher;
}

TEST(Tls, ClientCertificatesWhenTheServerAsks) {
  Fixture f;
  Context server = make_server({.cert_file = cert("server.pem"), .key_file = cert("server.key"), .ca_file = cert("ca.pem")});
  Context anonymous = make_client();
  Context known = make_client({.cert_file = cert("client.pem"), .key_file = cert("client.key"), .ca_file = cert("ca.pem")});
  std::vector<std::string> errors;
  Runtime rt({.reactors = 1});
  auto [without, with] = rt.run([&]() -> task<std::pair<Outcome, Outcome>> {
    spawn(serve(*f.l, server, 2, errors));
    Outcome a = co_await talk(*f.l, anonymous);
    Outcome b = co_await talk(*f.l, known);
    co_return std::pair{a, b};
  }());
  EXPECT_NE(without.error, "");  // TLS 1.3: the refusal arrives with the first read
  EXPECT_EQ(with.error, "");
  EXPECT_EQ(with.echoed, "hello tls");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_NE(errors[0].find("peer did not return a certificate"), std::string::npos) << errors[0];
}

TEST(Tls, VerifiedLeavesAreRemembered) {
  Fixture f;
  Context server = make_server();
  Context client = make_client({.ca_file = cert("ca.pem"), .session_cache_size = 0});  // full handshakes
  std::vector<std::string> errors;
  Runtime rt({.reactors = 1});
  rt.run([&]() -> task<void> {
    spawn(serve(*f.l, server, 3, errors));
    for (int i = 0; i < 3; ++i) (void)co_await talk(*f.l, client);
  }());
  EXPECT_EQ(errors, (std::vector<std::string>{"", "", ""}));
  EXPECT_EQ(client.verified_leaves(), 1u);
  EXPECT_EQ(client.verify_cache_hits(), 2u);  // the 2nd and 3rd handshakes skip the chain verification
}

// TLS 1.2 without tickets resumes through the server's session-ID cache.
TEST(Tls, SessionIdResumptionTls12WithoutTickets) {
  Fixture f;
  Context server = make_server({.cert_file = cert("server.pem"), .key_file = cert("server.key"), .session_tickets = false});
  Context client = make_client({.ca_file = cert("ca.pem"), .max_version = 0x0303, .session_tickets = false});
  std::vector<std::string> errors;
  Runtime rt({.reactors = 1});
  auto reused = rt.run([&]() -> task<std::pair<bool, bool>> {
    spawn(serve(*f.l, server, 2, errors));
    Outcome a = co_await talk(*f.l, client);
    Outcome b = co_await talk(*f.l, client);
    co_return std::pair{a.reused, b.reused};
  }());
  EXPECT_EQ(reused, std::pair(false, true));
}

// A client that connects and says nothing: the server's handshake deadline ends it.
TEST(Tls, HandshakeDeadline) {
  Fixture f;
  Context server = make_server();
  Runtime rt({.reactors = 1});
  auto [code, waited] = rt.run([&]() -> task<std::pair<int, Clock::duration>> {
    auto silent = co_await TcpStream::connect(f.l->local_address(), 2s);
    auto tcp = co_await f.l->accept();
    const auto start = Clock::now();
    auto s = co_await Stream::accept(server, std::move(*tcp), Clock::now() + 100ms);
    co_return std::pair{s ? 0 : s.error().code, Clock::now() - start};
  }());
  EXPECT_EQ(code, ETIMEDOUT);
  EXPECT_GE(waited, 90ms);
  EXPECT_LT(waited, 2s);
}

// Where the kernel has TLS, established streams hand their records to it (the server at once, the client's
// receiving after its first read) and carry on: large writes, close_notify both ways, resumption. Where it
// has not (this machine), they say why and carry on in user space. Either way the bytes are the same.
struct KernelOutcome {
  std::string error;
  bool echoed = false;
  bool reused = false;
  bool client_tx = false, client_rx = false, server_tx = false, server_rx = false;
  std::string client_note, server_note;
};

task<void> serve_reporting(const TcpListener& l, const Context& ctx, KernelOutcome& out) {
  auto tcp = co_await l.accept();
  if (!tcp) co_return;
  auto s = co_await Stream::accept(ctx, std::move(*tcp), Clock::now() + 2s);
  if (!s) co_return;
  out.server_tx = s->kernel_tx();
  out.server_rx = s->kernel_rx();
  out.server_note = s->kernel_tls_note();
  std::vector<char> buf(8192);
  for (;;) {
    auto n = co_await s->read_some(buf, Clock::now() + 2s);
    if (!n || *n == 0) break;
    if (!co_await s->write_all(std::span<const char>(buf.data(), *n), Clock::now() + 2s)) break;
  }
  (void)co_await s->shutdown(Clock::now() + 1s);
}

task<KernelOutcome> talk_through_kernel(const TcpListener& l, const Context& server, const Context& client) {
  KernelOutcome o;
  spawn(serve_reporting(l, server, o));
  auto tcp = co_await TcpStream::connect(l.local_address(), 2s);
  if (!tcp) co_return KernelOutcome{.error = tcp.error().message()};
  auto s = co_await Stream::connect(client, std::move(*tcp), "localhost", Clock::now() + 2s);
  if (!s) co_return KernelOutcome{.error = s.error().message()};
  o.reused = s->session_reused();
  // 200 KiB: many records, and above the zero-copy threshold (a kernel TLS socket takes only plain sends).
  std::string msg(200 * 1024, '\0');
  for (std::size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<char>('a' + i % 23);
  std::string got(msg.size(), '\0');
  std::size_t have = 0;
  auto wrote = co_await s->write_all(msg, Clock::now() + 2s);
  if (!wrote) co_return KernelOutcome{.error = wrote.error().message()};
  while (have < msg.size()) {
    auto n = co_await s->read_some(std::span(got).subspan(have), Clock::now() + 2s);
    if (!n || *n == 0) co_return KernelOutcome{.error = n ? "closed early" : n.error().message()};
    have += *n;
  }
  o.echoed = got == msg;
  o.client_tx = s->kernel_tx();
  o.client_rx = s->kernel_rx();
  o.client_note = s->kernel_tls_note();
  auto closed = co_await s->shutdown(Clock::now() + 1s);
  if (!closed) co_return KernelOutcome{.error = closed.error().message()};
  char c;
  auto end = co_await s->read_some(std::span(&c, 1), Clock::now() + 1s);  // the server's close_notify
  if (!end || *end != 0) co_return KernelOutcome{.error = end ? "data after the echo" : end.error().message()};
  co_return o;
}

void kernel_tls_or_fallback(int max_version) {
  Fixture f;
  ContextOptions so = server_options();
  ContextOptions co = client_options();
  so.max_version = co.max_version = max_version;
  Context server = make_server(so);
  Context client = make_client(co);
  std::string why;
  const bool kernel = Context::kernel_tls_available(&why);
  EXPECT_EQ(server.kernel_tls(), kernel);
  EXPECT_EQ(client.kernel_tls(), kernel);
  Runtime rt({.reactors = 1});
  auto [first, second] = rt.run([&]() -> task<std::pair<KernelOutcome, KernelOutcome>> {
    KernelOutcome a = co_await talk_through_kernel(*f.l, server, client);
    KernelOutcome b = co_await talk_through_kernel(*f.l, server, client);
    co_return std::pair{a, b};
  }());
  for (const KernelOutcome* o : {&first, &second}) {
    EXPECT_EQ(o->error, "");
    EXPECT_TRUE(o->echoed);
    EXPECT_EQ(o->client_tx, kernel);
    EXPECT_EQ(o->client_rx, kernel);
    EXPECT_EQ(o->server_tx, kernel);
    EXPECT_EQ(o->server_rx, kernel);
    EXPECT_EQ(o->client_note, kernel ? "" : why);
    EXPECT_EQ(o->server_note, kernel ? "" : why);
  }
  EXPECT_FALSE(first.reused);
  EXPECT_TRUE(second.reused);  // the tickets reached OpenSSL before receiving moved to the kernel
}

TEST(Tls, KernelTlsOrACleanFallbackTls13) { kernel_tls_or_fallback(0); }
TEST(Tls, KernelTlsOrACleanFallbackTls12) { kernel_tls_or_fallback(0x0303); }

}  // namespace
}  // namespace corio::tls
