// when_all: runs tasks concurrently on the current reactor and waits for every one.
//   auto [a, b] = co_await corio::when_all(fetch(x), fetch(y));          // std::tuple of the values
//   std::vector<int> v = co_await corio::when_all(std::move(tasks));     // over a vector of task<int>
// A void task's value is std::monostate; a vector of task<void> gives task<void>. If one throws, the
// others are stopped (their operations end with ECANCELED) and awaited, then the first exception is
// rethrown. A stop of the awaiting task stops all of them. Nothing outlives the call.
#pragma once
#include <array>
#include <cstddef>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "corio/runtime/child_task.hpp"

namespace corio {

namespace detail {
template <class... Ts, std::size_t... I>
task<std::tuple<child_result_t<Ts>...>> when_all_of(std::index_sequence<I...>, task<Ts>... tasks) {
  std::tuple<std::optional<child_result_t<Ts>>...> slots;
  std::array<ChildTask, sizeof...(Ts)> children{run_into(std::move(tasks), std::get<I>(slots))...};
  Join join(Join::Policy::all, children);
  co_await join;
  join.rethrow();
  co_return std::tuple<child_result_t<Ts>...>(std::move(*std::get<I>(slots))...);
}

template <class T>
task<void> when_all_into(std::vector<task<T>> tasks, std::vector<std::optional<child_result_t<T>>>& slots) {
  slots.resize(tasks.size());
  std::vector<ChildTask> children;
  children.reserve(tasks.size());
  for (std::size_t i = 0; i < tasks.size(); ++i) children.push_back(run_into(std::move(tasks[i]), slots[i]));
  Join join(Join::Policy::all, children);
  co_await join;
  join.rethrow();
}
}  // namespace detail

template <class... Ts>
task<std::tuple<detail::child_result_t<Ts>...>> when_all(task<Ts>... tasks) {
  return detail::when_all_of(std::index_sequence_for<Ts...>{}, std::move(tasks)...);
}

template <class T>
task<std::vector<T>> when_all(std::vector<task<T>> tasks) {
  std::vector<std::optional<T>> slots;
  co_await detail::when_all_into(std::move(tasks), slots);
  std::vector<T> out;
  out.reserve(slots.size());
  for (std::optional<T>& s : slots) out.push_back(std::move(*s));
  co_return out;
}

inline task<void> when_all(std::vector<task<void>> tasks) {
  std::vector<std::optional<std::monostate>> slots;
  co_await detail::when_all_into(std::move(tasks), slots);
}

}  // namespace corio
