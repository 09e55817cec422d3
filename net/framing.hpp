// Length-prefix framing: a 4-byte big-endian length, then that many bytes (the guide's format). A peer
// announcing more than `max_frame` gets an Error (EMSGSIZE) before anything is allocated, and the payload
// grows only as bytes arrive; a stream ending
// mid-frame is an Error (EPROTO) saying how much arrived; a zero-length frame is valid.
//   std::vector<char> payload;
//   auto got = co_await read_frame(reader, payload);   // true: a frame; false: the peer closed cleanly
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "corio/net/buffered.hpp"
#include "corio/net/memory_budget.hpp"

namespace corio::net {

inline constexpr std::uint32_t kDefaultMaxFrame = 16u << 20;
// read_frame grows the payload by at least this much as a frame's bytes arrive, never by what the peer
// merely announced.
inline constexpr std::size_t kFrameGrowth = 64 * 1024;

// With a `lease`, the payload's memory is held from its budget before it is allocated: a frame that would
// take the budget past its limit is an Error (ENOBUFS), so connections together hold no more than the
// limit for frames. The lease keeps what the payload holds after the call: release it with the payload.
task<Result<bool>> read_frame(BufferedReader& reader, std::vector<char>& payload,
                              std::uint32_t max_frame = kDefaultMaxFrame, MemoryBudget::Lease* lease = nullptr);
// Whether a whole frame is already in the reader: reading it will not wait for the peer. A server flushes
// its replies when this is false, so a request split across segments never holds back earlier replies.
bool frame_buffered(const BufferedReader& reader) noexcept;
// Buffers one frame; the caller flushes (or the writer does when full).
task<Result<void>> write_frame(BufferedWriter& writer, std::span<const char> payload);

}  // namespace corio::net
