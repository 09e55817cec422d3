#include "corio/net/buffered.hpp"

#include <algorithm>
#include <cstring>

namespace corio::net {

task<Result<std::size_t>> BufferedReader::fill() {
  if (begin_ == end_) begin_ = end_ = 0;
  auto n = co_await stream_->read_some(std::span(buf_).subspan(end_)).deadline(deadline_);
  if (n) end_ += *n;
  co_return n;
}

task<Result<std::size_t>> BufferedReader::await_data() {
  if (buffered() > 0) co_return buffered();
  co_return co_await fill();
}

task<Result<std::size_t>> BufferedReader::read_some(std::span<char> buf) {
  if (buffered() == 0) {
    if (buf.size() >= buf_.size()) co_return co_await stream_->read_some(buf).deadline(deadline_);  // no copy
    auto n = co_await fill();
    if (!n || *n == 0) co_return n;
  }
  std::size_t take = std::min(buf.size(), buffered());
  std::memcpy(buf.data(), buf_.data() + begin_, take);
  begin_ += take;
  co_return take;
}

task<Result<std::size_t>> BufferedReader::read_exact(std::span<char> buf) {
  std::size_t got = 0;
  while (got < buf.size()) {
    auto n = co_await read_some(buf.subspan(got));
    if (!n) co_return n.error();
    if (*n == 0) break;
    got += *n;
  }
  co_return got;
}

task<Result<bool>> BufferedReader::read_until(char delim, std::string& out, std::size_t max) {
  std::size_t scanned = 0;
  for (;;) {
    const char* start = buf_.data() + begin_;
    if (const void* hit = std::memchr(start, delim, buffered())) {
      std::size_t len = static_cast<std::size_t>(static_cast<const char*>(hit) - start) + 1;
      if (scanned + len - 1 > max) co_return make_error(EMSGSIZE, "read_until from " + stream_->peer().to_string());
      out.append(start, len);
      begin_ += len;
      co_return true;
    }
    scanned += buffered();
    if (scanned > max) co_return make_error(EMSGSIZE, "read_until from " + stream_->peer().to_string());
    out.append(start, buffered());
    begin_ = end_;
    auto n = co_await fill();
    if (!n) co_return n.error();
    if (*n == 0) co_return false;
  }
}

task<Result<void>> BufferedWriter::write(std::span<const char> data) {
  if (buf_.size() + data.size() > buf_.capacity()) {
    auto f = co_await flush();
    if (!f) co_return f;
    if (data.size() >= buf_.capacity()) co_return co_await stream_->write_all(data, deadline_);
  }
  buf_.insert(buf_.end(), data.begin(), data.end());
  co_return Result<void>{};
}

task<Result<void>> BufferedWriter::flush() {
  if (buf_.empty()) co_return Result<void>{};
  auto r = co_await stream_->write_all(buf_, deadline_);
  buf_.clear();
  co_return r;
}

}  // namespace corio::net
