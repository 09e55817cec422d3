#include "corio/net/framing.hpp"

#include <algorithm>
#include <string>

namespace corio::net {

namespace {
std::uint32_t frame_length(const unsigned char* header) noexcept {
  return (std::uint32_t{header[0]} << 24) | (std::uint32_t{header[1]} << 16) | (std::uint32_t{header[2]} << 8) |
         std::uint32_t{header[3]};
}
}  // namespace

task<Result<bool>> read_frame(BufferedReader& reader, std::vector<char>& payload, std::uint32_t max_frame,
                              MemoryBudget::Lease* lease) {
  unsigned char header[4];
  auto h = co_await reader.read_exact(std::span(reinterpret_cast<char*>(header), sizeof header));
  if (!h) co_return h.error();
  if (*h == 0) co_return false;  // clean end of stream between frames
  if (*h < sizeof header) {
    co_return make_error(EPROTO, "truncated frame header: " + std::to_string(*h) + " of 4 bytes before end of stream");
  }
  const std::uint32_t size = frame_length(header);
  if (size > max_frame) {
    co_return make_error(EMSGSIZE, "frame of " + std::to_string(size) + " bytes exceeds the limit of " +
                                       std::to_string(max_frame));
  }
  // Grown as the bytes arrive (doubling past 64 KiB): a peer that announces a large frame and sends
  // little costs little.
  payload.clear();
  while (payload.size() < size) {
    const std::size_t had = payload.size();
    const std::size_t want = std::min<std::size_t>(size - had, std::max<std::size_t>(kFrameGrowth, had));
    if (lease != nullptr && !lease->hold(std::max(payload.capacity(), had + want))) {
      co_return make_error(ENOBUFS, "frame of " + std::to_string(size) + " bytes refused after " + std::to_string(had) +
                                        ": the memory for frames (limit " + std::to_string(lease->budget().limit()) +
                                        " bytes) is in use");
    }
    payload.reserve(had + want);  // exactly what the lease holds (resize alone may double the capacity)
    payload.resize(had + want);
    auto b = co_await reader.read_exact(std::span(payload).subspan(had));
    if (!b) co_return b.error();
    if (*b < want) {
      co_return make_error(EPROTO, "truncated frame: end of stream after " + std::to_string(had + *b) + " of " +
                                       std::to_string(size) + " bytes");
    }
  }
  co_return true;
}

task<Result<void>> write_frame(BufferedWriter& writer, std::span<const char> payload) {
  if (payload.size() > UINT32_MAX) {
    co_return make_error(EMSGSIZE, "frame of " + std::to_string(payload.size()) + " bytes does not fit a 4-byte length");
  }
  const auto size = static_cast<std::uint32_t>(payload.size());
  const char header[4] = {static_cast<char>(size >> 24), static_cast<char>(size >> 16), static_cast<char>(size >> 8),
                          static_cast<char>(size)};
  auto h = co_await writer.write(header);
  if (!h) co_return h;
  co_return co_await writer.write(payload);
}

bool frame_buffered(const BufferedReader& reader) noexcept {
  std::span<const char> b = reader.peek();
  return b.size() >= 4 && b.size() - 4 >= frame_length(reinterpret_cast<const unsigned char*>(b.data()));
}

}  // namespace corio::net
