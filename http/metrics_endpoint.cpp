#include "corio/http/metrics_endpoint.hpp"

#include "corio/runtime/metrics.hpp"

namespace corio::http {

Handler metrics_handler() {
  return [](Request&, Response& res) -> task<void> {
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    res.body = co_await metrics::scrape();
  };
}

net::Result<std::unique_ptr<Server>> serve_metrics(const net::Address& at) {
  static Router routes = [] {
    Router r;
    r.get("/metrics", metrics_handler());
    return r;
  }();
  return Server::start(at, routes.handler(), {.name = "metrics"});
}

}  // namespace corio::http
