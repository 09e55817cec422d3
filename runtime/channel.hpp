// Channel<T>: a bounded FIFO between tasks on one reactor (no atomics, no locks). SharedChannel<T>: the
// same between tasks on any reactors, under a mutex; a wake crosses to the waiting task's reactor as a
// message, as submit_to's result does.
//   corio::Channel<std::string> lines(64);
//   std::error_code ec = co_await lines.send("hello");      // waits while full
//   if (auto got = co_await lines.recv()) use(*got);        // waits while empty
//   else if (got.error == std::errc::broken_pipe) /* closed and drained */;
// send ends with EPIPE once the channel is closed (the value is not sent), recv with EPIPE once it is
// closed and every item is taken; both end with ECANCELED when their task is stopped first (its token,
// with_timeout), and with ETIMEDOUT at their deadline (recv(Clock::now() + 1s)). Items go out in the
// order they came in; each reaches exactly one receiver: an item handed to a receiver destroyed before it
// resumed goes back to the front (the one case where the channel holds more than its capacity, until it
// is taken). A send that fails drops its value. The channel must outlive the tasks that wait on it.
#pragma once
#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include "corio/runtime/waiter.hpp"

namespace corio {

template <class T>
struct Received {
  std::optional<T> value;
  std::error_code error;  // EPIPE: closed and drained; ECANCELED: stopped first
  explicit operator bool() const noexcept { return value.has_value(); }
  T& operator*() & { return *value; }
  T* operator->() { return &*value; }
};

namespace detail {

template <class T, bool kShared>
class BasicChannel {
 public:
  explicit BasicChannel(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0) throw std::invalid_argument("corio: a channel needs a capacity of at least 1");
  }
  ~BasicChannel() { close(); }
  BasicChannel(const BasicChannel&) = delete;
  BasicChannel& operator=(const BasicChannel&) = delete;

  // Wakes every waiter: receivers once the items left are taken, senders at once (EPIPE).
  void close() noexcept {
    MaybeLock guard(lock());
    closed_ = true;
    receivers_.wake_all(-EPIPE);
    senders_.wake_all(-EPIPE);
  }
  // Sends without waiting; false (and `value` untouched) when full or closed.
  bool try_send(T&& value) {
    MaybeLock guard(lock());
    return put(value) == 0;
  }
  std::optional<T> try_recv() {
    MaybeLock guard(lock());
    std::optional<T> out;
    take(out);
    return out;
  }
  std::size_t size() const {
    MaybeLock guard(lock());
    return items_.size();
  }
  std::size_t capacity() const noexcept { return capacity_; }
  bool closed() const {
    MaybeLock guard(lock());
    return closed_;
  }

  class [[nodiscard]] Send final : private Waiter {
   public:
    Send(BasicChannel& c, T value, Clock::time_point deadline) : Waiter(c.lock()), channel_(c), value_(std::move(value)) {
      set_deadline(deadline);
    }
    ~Send() {
      if (!engaged()) return;
      MaybeLock guard(lock());
      withdraw();
    }
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      const std::stop_token* token = stop_token_of(h);
      {
        MaybeLock guard(lock());
        if (int r = channel_.put(value_); r != kFull) {
          complete(r);
          return false;
        }
        if (ends_before_parking(token)) return false;
        park(channel_.senders_, h);
      }
      watch_stop(token);
      return true;
    }
    std::error_code await_resume() const noexcept { return error(); }

   private:
    friend class BasicChannel;
    BasicChannel& channel_;
    T value_;
  };

  class [[nodiscard]] Recv final : private Waiter {
   public:
    Recv(BasicChannel& c, Clock::time_point deadline) noexcept : Waiter(c.lock()), channel_(c) { set_deadline(deadline); }
    ~Recv() {
      if (!engaged()) return;
      MaybeLock guard(lock());
      if (withdraw() && item_) channel_.give_back(std::move(*item_));
    }
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      const std::stop_token* token = stop_token_of(h);
      {
        MaybeLock guard(lock());
        if (channel_.take(item_)) return false;
        if (channel_.closed_) {
          complete(-EPIPE);
          return false;
        }
        if (ends_before_parking(token)) return false;
        park(channel_.receivers_, h);
      }
      watch_stop(token);
      return true;
    }
    Received<T> await_resume() noexcept(std::is_nothrow_move_constructible_v<T>) {
      const std::error_code failed = item_ ? std::error_code() : error();
      return {std::move(item_), failed};
    }

   private:
    friend class BasicChannel;
    BasicChannel& channel_;
    std::optional<T> item_;
  };

  // Both end with ETIMEDOUT if still waiting at `deadline`.
  Send send(T value, Clock::time_point deadline = Clock::time_point::max()) {
    return Send(*this, std::move(value), deadline);
  }
  Recv recv(Clock::time_point deadline = Clock::time_point::max()) noexcept { return Recv(*this, deadline); }

 private:
  static constexpr int kFull = 1;
  struct NoMutex {};

  std::mutex* lock() const noexcept {
    if constexpr (kShared) return &mutex_;
    else return nullptr;
  }
  // Under the lock. 0: handed to a waiting receiver or queued; -EPIPE: closed; kFull.
  int put(T& value) {
    if (closed_) return -EPIPE;
    if (!receivers_.empty()) {
      static_cast<Recv*>(receivers_.front())->item_.emplace(std::move(value));
      receivers_.wake_front(0);
      return 0;
    }
    if (items_.size() >= capacity_) return kFull;
    items_.push_back(std::move(value));
    return 0;
  }
  // Under the lock: the oldest item into `out`, and the first waiting sender's item into its place.
  bool take(std::optional<T>& out) {
    if (items_.empty()) return false;
    out.emplace(std::move(items_.front()));
    items_.pop_front();
    if (!senders_.empty() && items_.size() < capacity_) {  // not while over the bound (give_back)
      items_.push_back(std::move(static_cast<Send*>(senders_.front())->value_));
      senders_.wake_front(0);
    }
    return true;
  }
  void give_back(T&& value) {
    if (!receivers_.empty()) {
      static_cast<Recv*>(receivers_.front())->item_.emplace(std::move(value));
      receivers_.wake_front(0);
    } else {
      items_.push_front(std::move(value));
    }
  }

  [[no_unique_address]] mutable std::conditional_t<kShared, std::mutex, NoMutex> mutex_;
  std::deque<T> items_;
  std::size_t capacity_;
  WaitList receivers_;
  WaitList senders_;
  bool closed_ = false;
};

}  // namespace detail

template <class T>
using Channel = detail::BasicChannel<T, false>;
template <class T>
using SharedChannel = detail::BasicChannel<T, true>;

}  // namespace corio
