// The net layer's metrics (corio_net_*): connections accepted, active, shed and closed by reason, accept
// errors, bytes received and sent on TCP streams (TLS included, as ciphertext). Kept per reactor; see
// runtime/metrics.hpp. Used by the accept loop and the stream operations; a server reads them through a
// scrape, not here.
#pragma once
#include "corio/runtime/metrics.hpp"

namespace corio::net::detail {

struct NetMetrics {
  metrics::Counter accepted{"corio_net_connections_accepted_total", "TCP connections accepted."};
  metrics::Counter shed{"corio_net_connections_shed_total", "Connections closed at once, over the server's max_conns."};
  metrics::Gauge active{"corio_net_connections_active", "Connections being served."};
  metrics::Counter closed_ended{"corio_net_connections_closed_total", "Served connections that ended, by why.",
                                {{"reason", "handler_returned"}}};
  metrics::Counter closed_threw{"corio_net_connections_closed_total", "Served connections that ended, by why.",
                                {{"reason", "handler_threw"}}};
  metrics::Counter closed_stopped{"corio_net_connections_closed_total", "Served connections that ended, by why.",
                                  {{"reason", "stopped"}}};
  metrics::Counter out_of_descriptors{"corio_net_accept_errors_total", "Accept failures, by kind.",
                                      {{"kind", "out_of_descriptors"}}};
  metrics::Counter accept_errors{"corio_net_accept_errors_total", "Accept failures, by kind.", {{"kind", "other"}}};
  metrics::Counter received{"corio_net_received_bytes_total", "Bytes received on TCP streams."};
  metrics::Counter sent{"corio_net_sent_bytes_total", "Bytes sent on TCP streams."};
};

NetMetrics& net_metrics();
// A served connection ended: one fewer active, one more closed (by why).
inline void count_closed(bool threw, bool stopped) noexcept {
  NetMetrics& m = net_metrics();
  m.active.add(-1);
  (threw ? m.closed_threw : stopped ? m.closed_stopped : m.closed_ended).add();
}

}  // namespace corio::net::detail
