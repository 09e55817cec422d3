// frame-client: sends frames to a frame server and checks that each comes back intact.
//   frame-client [--target 127.0.0.1:7000] [--frames N] [--size BYTES] [--conns C] [--timeout SECONDS]
// Exits 0 when every frame came back, 1 on any error (each reported), 2 on bad flags.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "examples/flags.hpp"
#include "corio/net/framing.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/when_all.hpp"

using namespace corio;
using namespace corio::net;

namespace {

struct Flags {
  std::string target = "127.0.0.1:7000";
  unsigned long frames = 1000;
  unsigned long size = 64;
  unsigned long conns = 1;
  unsigned long timeout_s = 10;
  BackendOptions::Kind backend = BackendOptions::Kind::automatic;
};

// One connection: send each frame, read its echo, compare. Returns the number of verified frames.
task<unsigned long> run_connection(const Address& to, const Flags& f, unsigned id, unsigned long& errors) {
  auto conn = co_await TcpStream::connect(to, std::chrono::seconds(f.timeout_s));
  if (!conn) {
    std::fprintf(stderr, "frame-client: connection %u: %s\n", id, conn.error().message().c_str());
    ++errors;
    co_return 0;
  }
  BufferedReader reader(*conn);
  BufferedWriter writer(*conn);
  std::vector<char> frame(f.size), echo;
  unsigned long verified = 0;
  for (unsigned long i = 0; i < f.frames; ++i) {
    for (std::size_t b = 0; b < frame.size(); ++b) frame[b] = static_cast<char>((i + b * 31 + id) & 0xff);
    auto sent = co_await write_frame(writer, frame);
    if (sent) sent = co_await writer.flush();
    if (!sent) {
      std::fprintf(stderr, "frame-client: connection %u frame %lu: %s\n", id, i, sent.error().message().c_str());
      ++errors;
      co_return verified;
    }
    reader.set_deadline(Clock::now() + std::chrono::seconds(f.timeout_s));
    auto got = co_await read_frame(reader, echo, static_cast<std::uint32_t>(f.size));
    if (!got || !*got) {
      std::fprintf(stderr, "frame-client: connection %u frame %lu: %s\n", id, i,
                   got ? "server closed the connection" : got.error().message().c_str());
      ++errors;
      co_return verified;
    }
    if (echo != frame) {
      std::fprintf(stderr, "frame-client: connection %u frame %lu: echo differs from what was sent\n", id, i);
      ++errors;
      co_return verified;
    }
    ++verified;
  }
  co_return verified;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  bool parsed = examples::parse_pairs(
      argc, argv, {{"--target", f.target}},
      {{"--frames", f.frames, 100'000'000}, {"--size", f.size, 1ul << 30}, {"--conns", f.conns, 100'000, 1},
       {"--timeout", f.timeout_s, 3600, 1}},
      "[--target ADDR] [--frames N] [--size BYTES] [--conns C] [--timeout SECONDS] [--backend uring|epoll]",
      [&f](std::string_view flag, const char* value) -> std::optional<bool> {
        if (flag != "--backend") return std::nullopt;
        return examples::parse_backend(value, f.backend);
      });
  if (!parsed) return 2;
  auto to = Address::parse(f.target);
  if (!to) {
    std::fprintf(stderr, "frame-client: --target: %s\n", to.error().message().c_str());
    return 2;
  }
  Runtime rt({.reactors = 1, .backend = {.kind = f.backend}});
  unsigned long errors = 0, verified = 0;
  auto t0 = Clock::now();
  rt.run([&]() -> task<void> {
    std::vector<task<unsigned long>> conns;
    for (unsigned id = 0; id < f.conns; ++id) conns.push_back(run_connection(*to, f, id, errors));
    for (unsigned long n : co_await when_all(std::move(conns))) verified += n;
  }());
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  std::printf("frame-client: %lu of %lu frames of %lu bytes verified over %lu connections in %.1f ms, %lu errors\n",
              verified, f.frames * f.conns, f.size, f.conns, ms, errors);
  return errors == 0 && verified == f.frames * f.conns ? 0 : 1;
}
