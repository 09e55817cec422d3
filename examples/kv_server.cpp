// kv-server: an in-memory key-value store over a line protocol, sharded by key across the reactors.
//   kv-server [--listen 127.0.0.1:7000] [--reactors N] [--max-conns N] [--idle-timeout S] [--drain-timeout S]
//             [--max-line BYTES] [--max-keys N]
// One command per line (\n or \r\n), one reply line each:
//   SET key value -> OK | ERROR store full        GET key -> VALUE value | NOT_FOUND
//   DEL key       -> DELETED | NOT_FOUND          COUNT   -> COUNT n (keys on every shard)
// Key k lives on shard hash(k) % reactors (Sharded<Shard>): a connection reaches a shard on another reactor
// by a hop, its own inline. Pipelined commands get their replies in one send. A line over --max-line gets
// "ERROR line too long" and the connection is closed; a malformed command gets an ERROR and the
// connection goes on; --max-keys bounds the store. SIGINT/SIGTERM stops accepting, lets connections
// finish (--drain-timeout), stops the rest, then destroys each shard on its reactor.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

#include "examples/flags.hpp"
#include "examples/server_main.hpp"
#include "corio/net/buffered.hpp"
#include "corio/runtime/sharded.hpp"

using corio::Clock;
using corio::task;
using corio::net::Connection;

namespace {

struct Shard {
  explicit Shard(std::size_t max_keys_total) {
    const std::size_t shards = corio::Reactor::current()->runtime()->size();
    const std::size_t id = corio::Reactor::current()->id();
    max_keys = max_keys_total / shards + (id < max_keys_total % shards ? 1 : 0);
  }
  std::unordered_map<std::string, std::string> map;
  std::size_t max_keys;  // this shard's share of --max-keys: the shares add up to it exactly
};

using Store = corio::Sharded<Shard>;

unsigned shard_of(const Store& store, std::string_view key) {
  return static_cast<unsigned>(std::hash<std::string_view>{}(key) % store.size());
}

// "GET key" -> {"GET", "key"}; the rest of the line after the second space stays in `rest`.
struct Command {
  std::string_view verb, key, rest;
};
Command parse(std::string_view line) {
  Command c;
  auto next = [&line]() {
    std::string_view word = line.substr(0, line.find(' '));
    line.remove_prefix(std::min(line.size(), word.size() + 1));
    return word;
  };
  c.verb = next();
  c.key = next();
  c.rest = line;
  return c;
}

// Appends the reply to `line`. The key and value are views into the connection's line buffer: they stay
// valid on another reactor because this task waits for the hop to come back.
task<void> execute(Store& store, std::string_view line, std::string& reply) {
  Command c = parse(line);
  const bool has_key = !c.key.empty();
  if (c.verb == "GET" && has_key && c.rest.empty()) {
    auto value = co_await store.invoke_on(shard_of(store, c.key), [key = c.key](Shard& s) -> std::optional<std::string> {
      auto it = s.map.find(std::string(key));
      if (it == s.map.end()) return std::nullopt;
      return it->second;
    });
    reply += value ? "VALUE " + *value + "\n" : "NOT_FOUND\n";
  } else if (c.verb == "SET" && has_key) {
    bool stored = co_await store.invoke_on(shard_of(store, c.key), [key = c.key, value = c.rest](Shard& s) {
      auto it = s.map.find(std::string(key));
      if (it != s.map.end()) {
        it->second.assign(value);
        return true;
      }
      if (s.map.size() >= s.max_keys) return false;
      s.map.emplace(key, value);
      return true;
    });
    reply += stored ? "OK\n" : "ERROR store full\n";
  } else if (c.verb == "DEL" && has_key && c.rest.empty()) {
    bool erased = co_await store.invoke_on(shard_of(store, c.key), [key = c.key](Shard& s) {
      return s.map.erase(std::string(key)) > 0;
    });
    reply += erased ? "DELETED\n" : "NOT_FOUND\n";
  } else if (c.verb == "COUNT" && !has_key) {
    std::size_t n = co_await store.map_reduce([](Shard& s) { return s.map.size(); }, std::size_t{0}, std::plus<>{});
    reply += "COUNT " + std::to_string(n) + "\n";
  } else {
    reply += "ERROR expected SET key value, GET key, DEL key or COUNT\n";
  }
}

task<void> serve_client(Connection& conn, Store& store, Clock::duration idle, std::size_t max_line) {
  corio::net::BufferedReader reader(conn.stream());
  corio::net::BufferedWriter writer(conn.stream());
  std::string line, reply;
  auto idle_deadline = [idle] { return idle.count() > 0 ? Clock::now() + idle : Clock::time_point::max(); };
  for (;;) {
    // Per command: the idle timeout covers a client that stops reading as well as one that stops sending.
    const auto deadline = idle_deadline();
    reader.set_deadline(deadline);
    writer.set_deadline(deadline);
    // About to wait for the client with no whole command in hand: send the replies that are ready.
    if (std::ranges::find(reader.peek(), '\n') == reader.peek().end()) {
      auto flushed = co_await writer.flush();
      if (!flushed) co_return;
      if (reader.buffered() == 0) {  // between commands: a shutdown may end the connection here
        if (!conn.idle()) break;
        auto more = co_await reader.await_data();
        if (!more || *more == 0) break;
        conn.busy();  // the next command has begun: a shutdown lets it finish
      }
    }
    line.clear();
    auto got = co_await reader.read_until('\n', line, max_line);
    if (!got) {
      if (got.error().code == EMSGSIZE) (void)co_await writer.write(std::string_view("ERROR line too long\n"));
      break;  // too long, idle, reset or stopped: close
    }
    if (!*got) break;  // the client closed its side: the replies still go out
    std::string_view text(line);
    if (text.ends_with('\n')) text.remove_suffix(1);
    if (text.ends_with('\r')) text.remove_suffix(1);
    reply.clear();
    co_await execute(store, text, reply);
    auto sent = co_await writer.write(reply);
    if (!sent) co_return;
  }
  writer.set_deadline(idle_deadline());
  (void)co_await writer.flush();
}

}  // namespace

int main(int argc, char** argv) {
  Store store;  // outlives the runtime that run_server starts
  unsigned long max_keys = 1'000'000;
  auto make_handler = [&](const corio::examples::ServerFlags& f) -> corio::examples::Handler {
    unsigned long max_line = 4096;
    auto number = [&f](const char* flag, unsigned long max, unsigned long& out) {
      auto it = f.extra.find(flag);
      if (it != f.extra.end() && (!corio::examples::parse_number(it->second.c_str(), max, out) || out == 0)) {
        throw std::invalid_argument(std::string(flag) + ": not a valid value: \"" + it->second + "\"");
      }
    };
    number("--max-line", 1ul << 20, max_line);
    number("--max-keys", 1ul << 32, max_keys);
    const Clock::duration idle = f.idle_timeout;
    return [&store, idle, max_line](Connection& conn) { return serve_client(conn, store, idle, max_line); };
  };
  corio::examples::ServerHooks hooks{
      .start = [&] { return store.start(static_cast<std::size_t>(max_keys)); },
      .stop = [&] { return store.stop(); },
  };
  return corio::examples::run_server(argc, argv, "kv-server", false, make_handler, {"--max-line", "--max-keys"}, hooks);
}
