// kv-client: loads a kv-server and checks every answer. Each connection SETs its own keys, GETs each back
// and compares, DELetes half and checks they are gone, sending --batch commands before reading their
// replies (pipelined); the connections run side by side under when_all.
//   kv-client [--target 127.0.0.1:7000] [--conns 20] [--keys 500] [--batch 32] [--timeout SECONDS]
// Exits 0 when every reply was the expected one, 1 on any error (each reported), 2 on bad flags.
#include <cstdio>
#include <string>
#include <vector>

#include "examples/flags.hpp"
#include "corio/net/buffered.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/runtime/when_all.hpp"

using namespace corio;
using namespace corio::net;

namespace {

struct Flags {
  std::string target = "127.0.0.1:7000";
  unsigned long conns = 20;
  unsigned long keys = 500;
  unsigned long batch = 32;
  unsigned long timeout_s = 10;
};

struct Tally {
  unsigned long checked = 0;  // replies that were as expected
  unsigned long errors = 0;
};

// A command and the reply it must get.
struct Exchange {
  std::string command, expect;
};

// Sends `exchanges` in batches and checks each reply in order.
task<bool> run_script(BufferedReader& reader, BufferedWriter& writer, const std::vector<Exchange>& exchanges,
                      const Flags& f, unsigned id, Tally& tally) {
  std::string line;
  for (std::size_t at = 0; at < exchanges.size(); at += f.batch) {
    const std::size_t end = std::min(exchanges.size(), at + f.batch);
    for (std::size_t i = at; i < end; ++i) {
      auto sent = co_await writer.write(exchanges[i].command);
      if (!sent) {
        std::fprintf(stderr, "kv-client: connection %u: %s\n", id, sent.error().message().c_str());
        co_return false;
      }
    }
    auto flushed = co_await writer.flush();
    if (!flushed) {
      std::fprintf(stderr, "kv-client: connection %u: %s\n", id, flushed.error().message().c_str());
      co_return false;
    }
    for (std::size_t i = at; i < end; ++i) {
      line.clear();
      reader.set_deadline(Clock::now() + std::chrono::seconds(f.timeout_s));
      auto got = co_await reader.read_until('\n', line);
      if (!got || !*got) {
        std::fprintf(stderr, "kv-client: connection %u: %s\n", id,
                     got ? "server closed the connection" : got.error().message().c_str());
        co_return false;
      }
      if (line != exchanges[i].expect && ++tally.errors <= 3) {  // the first few tell; the count tells the rest
        std::fprintf(stderr, "kv-client: connection %u: %.*s got \"%.*s\", expected \"%.*s\"\n", id,
                     static_cast<int>(exchanges[i].command.size() - 1), exchanges[i].command.c_str(),
                     static_cast<int>(line.size() - 1), line.c_str(),
                     static_cast<int>(exchanges[i].expect.size() - 1), exchanges[i].expect.c_str());
      } else if (line == exchanges[i].expect) {
        ++tally.checked;
      }
    }
  }
  co_return true;
}

task<Tally> run_connection(const Address& to, const Flags& f, unsigned id) {
  Tally tally;
  auto conn = co_await TcpStream::connect(to, std::chrono::seconds(f.timeout_s));
  if (!conn) {
    std::fprintf(stderr, "kv-client: connection %u: %s\n", id, conn.error().message().c_str());
    ++tally.errors;
    co_return tally;
  }
  BufferedReader reader(*conn);
  BufferedWriter writer(*conn);
  std::vector<Exchange> script;
  auto key = [id](unsigned long k) { return "c" + std::to_string(id) + "-k" + std::to_string(k); };
  auto value = [id](unsigned long k) { return "value of " + std::to_string(k) + " from " + std::to_string(id); };
  for (unsigned long k = 0; k < f.keys; ++k) script.push_back({"SET " + key(k) + " " + value(k) + "\n", "OK\n"});
  for (unsigned long k = 0; k < f.keys; ++k) script.push_back({"GET " + key(k) + "\n", "VALUE " + value(k) + "\n"});
  for (unsigned long k = 0; k < f.keys; k += 2) script.push_back({"DEL " + key(k) + "\n", "DELETED\n"});
  for (unsigned long k = 0; k < f.keys; ++k) {
    script.push_back({"GET " + key(k) + "\n", k % 2 == 0 ? "NOT_FOUND\n" : "VALUE " + value(k) + "\n"});
  }
  if (!co_await run_script(reader, writer, script, f, id, tally)) ++tally.errors;
  co_return tally;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  bool parsed = examples::parse_pairs(
      argc, argv, {{"--target", f.target}},
      {{"--conns", f.conns, 10'000, 1}, {"--keys", f.keys, 10'000'000}, {"--batch", f.batch, 10'000, 1},
       {"--timeout", f.timeout_s, 3600, 1}},
      "[--target ADDR] [--conns N] [--keys N] [--batch N] [--timeout SECONDS]");
  if (!parsed) return 2;
  auto to = Address::parse(f.target);
  if (!to) {
    std::fprintf(stderr, "kv-client: --target: %s\n", to.error().message().c_str());
    return 2;
  }
  Runtime rt({.reactors = 1});
  auto t0 = Clock::now();
  std::vector<Tally> tallies = rt.run([&]() -> task<std::vector<Tally>> {
    std::vector<task<Tally>> conns;
    for (unsigned id = 0; id < f.conns; ++id) conns.push_back(run_connection(*to, f, id));
    co_return co_await when_all(std::move(conns));
  }());
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  Tally total;
  for (const Tally& t : tallies) {
    total.checked += t.checked;
    total.errors += t.errors;
  }
  const unsigned long expected = f.conns * (f.keys * 3 + (f.keys + 1) / 2);
  std::printf("kv-client: %lu of %lu replies as expected over %lu connections in %.3f s (%.0f commands/s), %lu errors\n",
              total.checked, expected, f.conns, s, static_cast<double>(total.checked) / s, total.errors);
  return total.errors == 0 && total.checked == expected ? 0 : 1;
}
