// asio-echo: the Asio reference for bench/echo-compare: Asio 1.22 with C++20 coroutines, one thread, one
// io_context, read_some then write per connection. Built twice: on epoll, and with ASIO_HAS_IO_URING and
// ASIO_DISABLE_EPOLL so that sockets go through io_uring.
//   asio-echo 127.0.0.1 7000
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <cstdio>
#include <cstdlib>

using asio::ip::tcp;

asio::awaitable<void> echo(tcp::socket s) {
  char buf[16384];
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    auto [wec, m] = co_await asio::async_write(s, asio::buffer(buf, n), asio::experimental::as_tuple(asio::use_awaitable));
    if (wec) co_return;
  }
}

asio::awaitable<void> listen(tcp::acceptor& a) {
  for (;;) {
    auto [ec, s] = co_await a.async_accept(asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) continue;
    s.set_option(tcp::no_delay(true));
    asio::co_spawn(a.get_executor(), echo(std::move(s)), asio::detached);
  }
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: asio-echo HOST PORT\n");
    return 2;
  }
  asio::io_context io(1);
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address(argv[1]), static_cast<unsigned short>(std::atoi(argv[2]))));
  std::printf("listening on %s:%u\n", argv[1], a.local_endpoint().port());
  std::fflush(stdout);
  asio::co_spawn(io, listen(a), asio::detached);
  io.run();
}
