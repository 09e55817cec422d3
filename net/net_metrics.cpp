#include "corio/net/net_metrics.hpp"

namespace corio::net::detail {

NetMetrics& net_metrics() {
  static NetMetrics m;
  return m;
}

}  // namespace corio::net::detail
