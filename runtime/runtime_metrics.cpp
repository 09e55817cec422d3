// The runtime's own metrics, read from what the reactors keep anyway at scrape time (the hot path pays
// nothing for them): loop turns, time busy and waiting, operations, the completion queue, receive
// buffers, timers, cross-reactor messages, the blocking pool.
#include <algorithm>
#include <mutex>

#include "corio/runtime/blocking_pool.hpp"
#include "corio/runtime/metrics.hpp"
#include "corio/runtime/reactor.hpp"
#include "corio/runtime/runtime.hpp"

namespace corio::detail {

void register_runtime_metrics() {
  static std::once_flag once;
  std::call_once(once, [] {
    using metrics::observe;
    auto r = [] { return Reactor::current(); };
    observe("corio_reactor_loop_turns_total", "Turns of the reactor's event loop.", "counter",
            [r] { return static_cast<double>(r()->turns()); });
    observe("corio_reactor_busy_seconds_total", "CPU seconds of the reactor's thread (user and kernel).", "counter",
            [r] { return r()->busy_seconds(); });
    observe("corio_reactor_idle_seconds_total", "Seconds the reactor's thread was not on a CPU (waiting for work).", "counter",
            [r] { return std::max(0.0, r()->running_seconds() - r()->busy_seconds()); });
    observe("corio_reactor_utilisation", "Fraction of the last ~100 ms the reactor was busy (what load shedding reads).",
            "gauge", [r] { return r()->utilisation(); });
    observe("corio_operations_submitted_total", "Operations handed to the backend.", "counter",
            [r] { return static_cast<double>(r()->backend().stats().submitted); });
    observe("corio_operations_completed_total", "Completions delivered to operations.", "counter",
            [r] { return static_cast<double>(r()->backend().stats().completed); });
    observe("corio_operations_cancelled_total", "Cancellations asked of the backend.", "counter",
            [r] { return static_cast<double>(r()->backend().stats().cancels); });
    observe("corio_operations_in_flight", "Operations the backend holds now.", "gauge",
            [r] { return static_cast<double>(r()->backend().in_flight()); });
    observe("corio_backend_waits_total", "System calls that submitted and/or waited (io_uring_enter, epoll_wait).",
            "counter", [r] { return static_cast<double>(r()->backend().stats().waits); });
    observe("corio_completion_queue_overflows_total", "Completions io_uring could not post to a full completion queue.",
            "counter", [r] { return static_cast<double>(r()->backend().cq_overflows()); });
    observe("corio_buffer_ring_empty_total", "Times the kernel found the receive buffer ring empty (ENOBUFS).", "counter",
            [r] { return static_cast<double>(r()->backend().buffers().ran_dry()); });
    observe("corio_buffers_in_use", "Receive buffers held by the application.", "gauge",
            [r] { return static_cast<double>(r()->backend().buffers().lent()); });
    observe("corio_buffers_allocated", "Receive buffers allocated.", "gauge",
            [r] { return static_cast<double>(r()->backend().buffers().allocated()); });
    observe("corio_timers_pending", "Timers armed on the reactor (deadlines, sleeps).", "gauge",
            [r] { return static_cast<double>(r()->timers().size()); });
    observe("corio_cross_reactor_messages_total", "Messages run from other threads (submit_to, posts).", "counter",
            [r] { return static_cast<double>(r()->messages()); });
    observe("corio_blocking_pool_queued", "Jobs waiting for a blocking-pool thread.", "gauge",
            [r] { return static_cast<double>(r()->runtime()->blocking_pool().queued()); }, {}, false);
  });
}

}  // namespace corio::detail
