// The Prometheus endpoint: every reactor's metrics (runtime/metrics.hpp) as text exposition 0.0.4.
//   routes.get("/metrics", http::metrics_handler());                              // on a server of yours
//   auto m = http::serve_metrics(*net::Address::parse("127.0.0.1:9100"));          // or a server of its own
// A scrape visits each reactor in turn (a cross-reactor call each) and formats on the one serving the
// request; the reactors' own work is not paused.
#pragma once
#include <memory>

#include "corio/http/server.hpp"

namespace corio::http {

Handler metrics_handler();

// An http::Server (named "metrics") answering GET /metrics, on every reactor; stop it like any server.
net::Result<std::unique_ptr<Server>> serve_metrics(const net::Address& at);

}  // namespace corio::http
