// tls-echo-server: echo-server over TLS (OpenSSL 3 through corio's tls::Stream).
//   tls-echo-server --cert server.pem --key server.key [--key-password P] [--alpn h2,http/1.1]
//                   [--ticket-keys FILE] [--client-ca ca.pem] [--kernel-tls auto|required|off]
//                   [--handshake-timeout SECONDS (10)] [echo-server flags]
// A handshake that fails (plaintext, a wrong certificate, no common protocol or cipher) is reported on
// stderr with its reason and closes that connection only. --client-ca requires client certificates.
// Kernel TLS (records encrypted by the kernel after the handshake) is used where the kernel has it; the
// server says at start whether it does, and why not.
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "examples/flags.hpp"
#include "examples/server_main.hpp"
#include "corio/tls/stream.hpp"

using corio::Clock;
using corio::task;

int main(int argc, char** argv) {
  const std::vector<std::string> own = {"--cert", "--key", "--key-password", "--alpn", "--ticket-keys", "--client-ca",
                                  "--kernel-tls", "--handshake-timeout"};
  return corio::examples::run_server(argc, argv, "tls-echo-server", false, [](const corio::examples::ServerFlags& f) {
    auto get = [&](const char* name) {
      auto it = f.extra.find(name);
      return it == f.extra.end() ? std::string() : it->second;
    };
    unsigned long handshake_s = 10;
    if (std::string h = get("--handshake-timeout");
        !h.empty() && (!corio::examples::parse_number(h.c_str(), 3600, handshake_s) || handshake_s == 0)) {
      throw std::runtime_error("--handshake-timeout: not a valid value: \"" + h + "\"");
    }
    const std::string kernel = get("--kernel-tls");
    if (!kernel.empty() && kernel != "auto" && kernel != "required" && kernel != "off") {
      throw std::runtime_error("--kernel-tls " + kernel + ": expected auto, required or off");
    }
    auto ctx = corio::tls::Context::server({.cert_file = get("--cert"),
                                            .key_file = get("--key"),
                                            .key_password = get("--key-password"),
                                            .ca_file = get("--client-ca"),
                                            .alpn = corio::examples::split_list(get("--alpn")),
                                            .ticket_key_file = get("--ticket-keys"),
                                            .kernel_tls = kernel == "required" ? corio::tls::KernelTls::required
                                                          : kernel == "off"    ? corio::tls::KernelTls::off
                                                                               : corio::tls::KernelTls::when_available});
    if (!ctx) throw std::runtime_error(ctx.error().message());
    std::fprintf(stderr, "tls-echo-server: kernel TLS %s\n",
                 ctx->kernel_tls() ? "on" : ("off (" + ctx->kernel_tls_note() + ")").c_str());
    auto shared = std::make_shared<corio::tls::Context>(std::move(*ctx));
    const Clock::duration idle = f.idle_timeout;
    const Clock::duration handshake = std::chrono::seconds(handshake_s);
    // Like echo-server, a connection stays busy until its client closes or --drain-timeout.
    return [shared, idle, handshake](corio::net::Connection& conn) -> task<void> {
      auto stream = co_await corio::tls::Stream::accept(*shared, std::move(conn.stream()), Clock::now() + handshake);
      if (!stream) {
        std::fprintf(stderr, "tls-echo-server: %s\n", stream.error().message().c_str());
        co_return;
      }
      std::vector<char> buf(std::size_t{16} * 1024);
      for (;;) {
        auto deadline = idle.count() > 0 ? Clock::now() + idle : Clock::time_point::max();
        auto n = co_await stream->read_some(buf, deadline);
        if (!n || *n == 0) break;
        auto sent = co_await stream->write_all(std::span(buf).first(*n), deadline);  // stalled readers too
        if (!sent) co_return;
      }
      (void)co_await stream->shutdown(Clock::now() + std::chrono::seconds(1));
    };
  }, own);
}
