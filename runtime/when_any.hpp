// when_any: runs tasks concurrently on the current reactor; the first to end wins, the others are stopped
// (their operations end with ECANCELED) and awaited before it returns, so nothing outlives the call.
//   std::variant<int, std::string> v = co_await corio::when_any(count(), name());   // v.index(): winner
//   auto [i, value] = co_await corio::when_any(std::move(tasks));                  // over a vector
// A void task's value is std::monostate. If the winner threw, its exception is rethrown; the losers'
// values and exceptions are dropped. A stop of the awaiting task stops all of them (one still wins).
#pragma once
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "corio/runtime/child_task.hpp"

namespace corio {

namespace detail {
template <class... Ts, std::size_t... I>
task<std::variant<child_result_t<Ts>...>> when_any_of(std::index_sequence<I...>, task<Ts>... tasks) {
  std::tuple<std::optional<child_result_t<Ts>>...> slots;
  std::array<ChildTask, sizeof...(Ts)> children{run_into(std::move(tasks), std::get<I>(slots))...};
  Join join(Join::Policy::first, children);
  co_await join;
  join.rethrow();
  std::optional<std::variant<child_result_t<Ts>...>> out;
  ((join.winner() == I ? (out.emplace(std::in_place_index<I>, std::move(*std::get<I>(slots))), 0) : 0), ...);
  co_return std::move(*out);
}
}  // namespace detail

template <class... Ts>
task<std::variant<detail::child_result_t<Ts>...>> when_any(task<Ts>... tasks) {
  static_assert(sizeof...(Ts) > 0, "when_any needs at least one task");
  return detail::when_any_of(std::index_sequence_for<Ts...>{}, std::move(tasks)...);
}

// Over a vector: the winner's index and value. An empty vector throws std::invalid_argument.
template <class T>
task<std::pair<std::size_t, detail::child_result_t<T>>> when_any(std::vector<task<T>> tasks) {
  if (tasks.empty()) throw std::invalid_argument("corio: when_any of no tasks");
  std::vector<std::optional<detail::child_result_t<T>>> slots(tasks.size());
  std::vector<detail::ChildTask> children;
  children.reserve(tasks.size());
  for (std::size_t i = 0; i < tasks.size(); ++i) children.push_back(detail::run_into(std::move(tasks[i]), slots[i]));
  detail::Join join(detail::Join::Policy::first, children);
  co_await join;
  join.rethrow();
  co_return std::pair<std::size_t, detail::child_result_t<T>>(join.winner(), std::move(*slots[join.winner()]));
}

}  // namespace corio
