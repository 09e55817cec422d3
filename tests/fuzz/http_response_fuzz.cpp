// libFuzzer target for corio-load's HTTP response counter: any bytes, fed whole and fed split at a point
// chosen by the input, must give the same count and the same verdict, and never crash or over-read.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tools/http_response.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t split = data[0] % size;
  std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  corio::tools::HttpResponses whole;
  const int a = whole.feed(input);
  corio::tools::HttpResponses parts;
  const std::size_t cut = std::min(split, input.size());
  const int b1 = parts.feed(std::span(input).first(cut));
  const int b2 = b1 < 0 ? -1 : parts.feed(std::span(input).subspan(cut));
  const bool failed_whole = a < 0;
  const bool failed_parts = b1 < 0 || b2 < 0;
  if (failed_whole != failed_parts) std::abort();
  if (!failed_whole && a != b1 + b2) std::abort();
  return 0;
}
