// A connected TCP pair on 127.0.0.1 for tests: `client` connected to `server`, accepted from `l` (or from a
// listener of its own).
#pragma once
#include <chrono>
#include <stdexcept>

#include "corio/net/tcp_listener.hpp"

namespace corio::net::testing {

struct Pair {
  TcpStream client;
  TcpStream server;
};

inline task<Pair> connected(const TcpListener& l) {
  auto client = co_await TcpStream::connect(l.local_address(), std::chrono::seconds(2));
  auto server = co_await l.accept();
  if (!client || !server) throw std::runtime_error("no loopback connection");
  co_return Pair{std::move(*client), std::move(*server)};
}

inline task<Pair> connect_pair() {
  auto l = TcpListener::bind(Address::loopback_v4(0));
  if (!l) throw std::runtime_error(l.error().message());
  co_return co_await connected(*l);
}

}  // namespace corio::net::testing
