// Buffered I/O over a TcpStream. BufferedReader reads ahead into its buffer so that small reads (a frame
// header, a line) cost no system call each; BufferedWriter coalesces small writes and sends them on size,
// on flush(), or (the caller's rule, used by the frame server) before its reader would block: responses
// to pipelined requests leave in one send. Both borrow the stream, which must outlive them.
#pragma once
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "corio/net/tcp_stream.hpp"

namespace corio::net {

class BufferedReader {
 public:
  explicit BufferedReader(const TcpStream& stream, std::size_t capacity = 16 * 1024)
      : stream_(&stream), buf_(capacity) {}

  // Reads from the stream fail with ETIMEDOUT after `deadline` (an idle timeout, renewed by the caller).
  void set_deadline(Clock::time_point deadline) noexcept { deadline_ = deadline; }
  // Bytes already read ahead: reading them will not block.
  std::size_t buffered() const noexcept { return end_ - begin_; }
  std::span<const char> peek() const noexcept { return {buf_.data() + begin_, end_ - begin_}; }
  // Waits until something is buffered, reading only when nothing is: the bytes buffered, 0 at end of stream.
  // A server waits here between requests, to learn that the next one has begun (Connection::busy()).
  task<Result<std::size_t>> await_data();
  // Copies up to buf.size() bytes, reading from the stream only when nothing is buffered; 0 at end of stream.
  task<Result<std::size_t>> read_some(std::span<char> buf);
  // Fills `buf` unless the stream ends: returns the bytes read (< buf.size() only at end of stream).
  task<Result<std::size_t>> read_exact(std::span<char> buf);
  // Appends to `out` up to and including `delim`. Returns false at end of stream before any delimiter.
  // More than `max` bytes before the delimiter is an Error (EMSGSIZE), whether or not it has arrived.
  task<Result<bool>> read_until(char delim, std::string& out, std::size_t max = 64 * 1024);

 private:
  task<Result<std::size_t>> fill();
  const TcpStream* stream_;
  std::vector<char> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  Clock::time_point deadline_ = Clock::time_point::max();
};

class BufferedWriter {
 public:
  explicit BufferedWriter(const TcpStream& stream, std::size_t capacity = 16 * 1024) : stream_(&stream) {
    buf_.reserve(capacity);
  }

  std::size_t pending() const noexcept { return buf_.size(); }
  // Sends fail with ETIMEDOUT after `deadline` (a peer that stopped reading), as Error::transferred says.
  void set_deadline(Clock::time_point deadline) noexcept { deadline_ = deadline; }
  // Buffers `data`, sending first if it would not fit; data larger than the buffer goes straight out.
  task<Result<void>> write(std::span<const char> data);
  task<Result<void>> flush();

 private:
  const TcpStream* stream_;
  std::vector<char> buf_;
  Clock::time_point deadline_ = Clock::time_point::max();
};

}  // namespace corio::net
