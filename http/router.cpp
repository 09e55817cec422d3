#include <algorithm>
#include <memory>

#include "corio/http/server.hpp"

namespace corio::http {

void Router::route(std::string_view method, std::string_view path, Handler h) {
  routes_.push_back({std::string(method), std::string(path), false, std::move(h)});
}

void Router::prefix(std::string_view method, std::string_view path_prefix, Handler h) {
  routes_.push_back({std::string(method), std::string(path_prefix), true, std::move(h)});
}

Handler Router::handler() const {
  // Exact routes first (in the order added), then prefixes, longest first.
  auto routes = std::make_shared<std::vector<Route>>();
  std::vector<const Route*> prefixes;
  for (const Route& r : routes_) {
    if (r.prefix) prefixes.push_back(&r);
    else routes->push_back(r);
  }
  std::sort(prefixes.begin(), prefixes.end(), [](const Route* a, const Route* b) {
    return a->path.size() != b->path.size() ? a->path.size() > b->path.size() : a < b;
  });
  for (const Route* r : prefixes) routes->push_back(*r);
  return [routes](Request& req, Response& res) -> task<void> {
    const Route* path_match = nullptr;
    std::string allow;
    for (const Route& r : *routes) {
      const bool matches = r.prefix ? req.path.starts_with(r.path) : req.path == r.path;
      if (!matches) continue;
      if (path_match != nullptr && path_match->path != r.path) break;  // a shorter prefix: not this path's
      path_match = &r;
      if (r.method == req.method || (req.method == "HEAD" && r.method == "GET")) {
        co_await r.h(req, res);
        co_return;
      }
      allow += allow.empty() ? r.method : ", " + r.method;
    }
    if (path_match == nullptr) {
      res.status = 404;
      res.body = "not found\n";
    } else {
      res.status = 405;
      res.header("Allow", allow);
      res.body = "method not allowed\n";
    }
  };
}

}  // namespace corio::http
