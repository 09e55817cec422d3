#include "corio/http/circuit_breaker.hpp"

namespace corio::http {

CircuitBreaker::State CircuitBreaker::state(Clock::time_point now) const noexcept {
  return state_ == State::open && now >= open_until_ ? State::half_open : state_;
}

bool CircuitBreaker::allow(Clock::time_point now, std::uint64_t& generation) {
  if (state_ == State::open && now >= open_until_) {
    state_ = State::half_open;
    trials_started_ = trials_passed_ = 0;
    ++generation_;
  }
  generation = generation_;
  if (state_ == State::closed) return true;
  if (state_ == State::half_open && trials_started_ < options_.trials) {
    ++trials_started_;
    return true;
  }
  ++rejected_;
  return false;
}

void CircuitBreaker::open(Clock::time_point now) {
  state_ = State::open;
  open_until_ = now + options_.open_for;
  outcomes_.clear();
  next_ = 0;
  failures_ = 0;
  ++generation_;
  ++opened_;
}

void CircuitBreaker::record(bool ok, std::uint64_t generation, Clock::time_point now) {
  if (generation != generation_) return;  // from before the last change of state
  if (state_ == State::half_open) {
    if (!ok) {
      open(now);
    } else if (++trials_passed_ == options_.trials) {
      state_ = State::closed;
      ++generation_;
    }
    return;
  }
  if (state_ != State::closed || options_.window == 0) return;
  if (outcomes_.size() < options_.window) {
    outcomes_.push_back(!ok);
  } else {
    failures_ -= outcomes_[next_];
    outcomes_[next_] = !ok;
    next_ = (next_ + 1) % options_.window;
  }
  failures_ += !ok;
  if (outcomes_.size() >= options_.min_requests &&
      static_cast<double>(failures_) >= options_.failure_ratio * static_cast<double>(outcomes_.size())) {
    open(now);
  }
}

}  // namespace corio::http
