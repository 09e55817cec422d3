// Sharded<T>: one T per reactor, each built, used and destroyed on its own reactor, so a shard needs no
// lock: a call reaches it by a hop to its reactor (submit_to), or inline when it is the caller's own.
//   corio::Sharded<Store> store;
//   co_await store.start(capacity);                          // Store(capacity) on every reactor
//   auto v = co_await store.invoke_on(shard_of(key), [&](Store& s) { return s.get(key); });
//   co_await store.invoke_on_all([](Store& s) { s.clear(); });
//   auto n = co_await store.map_reduce([](Store& s) { return s.size(); }, std::size_t{0}, std::plus<>{});
//   co_await store.stop();                                   // ~Store() on every reactor
// A function may return a value or a task (awaited on the shard's reactor); its exception is rethrown
// at the caller. Stopping the caller stops the call on the other reactor too, as submit_to does.
#pragma once
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "corio/runtime/runtime.hpp"
#include "corio/runtime/when_all.hpp"

namespace corio {

template <class T>
class Sharded {
  template <class F>
  using result_t = typename detail::unwrap_task<std::invoke_result_t<F&, T&>>::type;

 public:
  Sharded() = default;
  // Shards not stopped are destroyed here, on the calling thread.
  ~Sharded() = default;
  Sharded(const Sharded&) = delete;
  Sharded& operator=(const Sharded&) = delete;

  // Constructs T(args...) on every reactor of the current runtime, each from its own copy of args.
  template <class... Args>
  task<void> start(Args... args) {
    if (!shards_.empty()) throw std::logic_error("corio: Sharded::start called twice");
    shards_.resize(Reactor::current()->runtime()->size());
    std::vector<task<void>> builds;
    for (unsigned i = 0; i < shards_.size(); ++i) builds.push_back(build(i, args...));
    co_await when_all(std::move(builds));
  }
  // Destroys every shard on its own reactor.
  task<void> stop() {
    std::vector<task<void>> ends;
    for (unsigned i = 0; i < shards_.size(); ++i) ends.push_back(destroy(i));
    co_await when_all(std::move(ends));
    shards_.clear();
  }

  unsigned size() const noexcept { return static_cast<unsigned>(shards_.size()); }
  // The calling reactor's shard.
  T& local() { return *shards_.at(Reactor::current()->id()); }

  template <class F>
  task<result_t<F>> invoke_on(unsigned shard, F fn) {
    if (shard >= shards_.size()) throw std::out_of_range("corio: Sharded::invoke_on: no shard " + std::to_string(shard));
    if (!shards_[shard]) throw std::logic_error("corio: Sharded::invoke_on: shard " + std::to_string(shard) + " was not built");
    T& target = *shards_[shard];
    if (shard == Reactor::current()->id()) {
      if constexpr (std::is_same_v<std::invoke_result_t<F&, T&>, result_t<F>>) co_return fn(target);
      else co_return co_await fn(target);
    }
    co_return co_await submit_to(shard, [&target, fn = std::move(fn)]() mutable { return fn(target); });
  }

  // Runs a copy of `fn` on every shard concurrently; waits for all (the first exception is rethrown).
  template <class F>
  task<void> invoke_on_all(F fn) {
    std::vector<task<void>> calls;
    for (unsigned i = 0; i < shards_.size(); ++i) calls.push_back(call_dropping_result(i, fn));
    co_await when_all(std::move(calls));
  }

  // Folds map(shard) over every shard (run concurrently) with reduce, in shard order, from `init`.
  template <class Map, class Acc, class Reduce>
  task<Acc> map_reduce(Map map, Acc init, Reduce reduce) {
    std::vector<task<result_t<Map>>> calls;
    for (unsigned i = 0; i < shards_.size(); ++i) calls.push_back(invoke_on(i, map));
    std::vector<result_t<Map>> parts = co_await when_all(std::move(calls));
    for (auto& part : parts) init = reduce(std::move(init), std::move(part));
    co_return init;
  }

 private:
  template <class... Args>
  task<void> build(unsigned i, Args... args) {
    co_await submit_to(i, [this, i, args...] { shards_[i] = std::make_unique<T>(args...); });
  }
  task<void> destroy(unsigned i) {
    co_await submit_to(i, [this, i] { shards_[i].reset(); });
  }
  template <class F>
  task<void> call_dropping_result(unsigned i, F fn) {
    co_await invoke_on(i, std::move(fn));
  }

  std::vector<std::unique_ptr<T>> shards_;
};

}  // namespace corio
