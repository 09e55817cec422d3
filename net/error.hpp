// Error and Result<T>: how net/ reports failure as a value. An Error carries the errno and what was being
// done ("connect 127.0.0.1:7000"), and message() reads "connect 127.0.0.1:7000: Connection refused". Where
// the errno text would not say why (a DNS answer), `reason` says it instead: "resolve db.internal: NXDOMAIN
// from 127.0.0.1:5353".
// End of stream is not an error: read_some returns 0.
#pragma once
#include <cerrno>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace corio::net {

struct Error {
  int code = 0;            // errno value
  bool explained = false;  // the context already says why: message() adds no errno text (fits the padding)
  std::string context;     // what failed, with its arguments
  // Bytes written before the failure (write_all: a stopped, timed-out or failed write still sent these).
  std::size_t transferred = 0;
  std::string message() const;
  bool timed_out() const noexcept { return code == ETIMEDOUT; }
  bool cancelled() const noexcept { return code == ECANCELED; }
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor): results convert
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success, or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const noexcept { return error_.code == 0; }
  explicit operator bool() const noexcept { return ok(); }
  const Error& error() const { return error_; }

 private:
  Error error_;
};

// An Error from errno-style `err` (positive or negative) and a context.
Error make_error(int err, std::string context);
// An Error that says why in its own words: message() is "WHAT: WHY".
Error explained_error(int code, std::string what, std::string_view why);

}  // namespace corio::net
