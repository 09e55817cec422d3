// CircuitBreaker: whether requests to one host may go, from how the last ones went (a sliding window of
// the last `window` outcomes). Closed: every request goes. Once the window holds at least min_requests
// outcomes and failure_ratio of them are failures, it opens: requests fail at once, for open_for. Then it
// is half-open: `trials` requests go (the others still fail at once); if they all succeed it closes, with
// the window cleared, and if one fails it opens again. Outcomes of requests that started before it opened
// are ignored. One per host in http::Client (ClientOptions::breaker; off by default).
#pragma once
#include <chrono>
#include <cstdint>
#include <vector>

#include "corio/runtime/time.hpp"

namespace corio::http {

struct BreakerOptions {
  bool enabled = false;
  unsigned window = 20;        // outcomes remembered
  unsigned min_requests = 10;  // outcomes needed before it can open
  double failure_ratio = 0.5;  // of the window
  Clock::duration open_for = std::chrono::seconds(5);
  unsigned trials = 1;         // requests let through when half-open
};

class CircuitBreaker {
 public:
  enum class State { closed, open, half_open };
  explicit CircuitBreaker(const BreakerOptions& options) : options_(options) {}

  // True: the request may go, and its outcome is then record()ed with the generation it was given.
  bool allow(Clock::time_point now, std::uint64_t& generation);
  void record(bool ok, std::uint64_t generation, Clock::time_point now);
  State state(Clock::time_point now) const noexcept;

  std::uint64_t opened() const noexcept { return opened_; }      // times it opened
  std::uint64_t rejected() const noexcept { return rejected_; }  // requests failed at once

 private:
  void open(Clock::time_point now);
  BreakerOptions options_;
  State state_ = State::closed;
  std::vector<bool> outcomes_;  // ring of the last `window`: true = failure
  std::size_t next_ = 0;
  unsigned failures_ = 0;
  Clock::time_point open_until_{};
  unsigned trials_started_ = 0, trials_passed_ = 0;
  std::uint64_t generation_ = 0;  // bumped on every change of state
  std::uint64_t opened_ = 0, rejected_ = 0;
};

}  // namespace corio::http
