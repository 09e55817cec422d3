// Backend selection: an explicit choice, else CORIO_BACKEND, else io_uring when the kernel allows it and
// epoll otherwise, with one notice on stderr giving io_uring_setup's error.
#include "corio/runtime/backend.hpp"

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <charconv>
#include <mutex>
#include <stdexcept>
#include <system_error>

#include "corio/runtime/log.hpp"

namespace corio {

std::optional<BackendOptions::Kind> parse_backend_kind(std::string_view name) {
  if (name == "uring" || name == "io_uring") return BackendOptions::Kind::uring;
  if (name == "epoll") return BackendOptions::Kind::epoll;
  return std::nullopt;
}

const char* const kFeatureNames =
    "provided-buffers,multishot-recv,fixed-buffers,send-zc,fixed-files,single-issuer,defer-taskrun,coop-taskrun,msg-ring,"
    "register-ring-fd,multishot-accept,recv-bundle";

bool switch_off(BackendOptions& o, std::string_view feature) {
  bool BackendOptions::*const fields[] = {&BackendOptions::provided_buffers, &BackendOptions::multishot_recv,
                                          &BackendOptions::fixed_buffers,    &BackendOptions::send_zc,
                                          &BackendOptions::fixed_files,
                                          &BackendOptions::single_issuer,    &BackendOptions::defer_taskrun,
                                          &BackendOptions::coop_taskrun,     &BackendOptions::msg_ring,
                                          &BackendOptions::register_ring_fd, &BackendOptions::multishot_accept,
                                          &BackendOptions::recv_bundle};
  std::string_view names = kFeatureNames;
  for (bool BackendOptions::*field : fields) {
    std::string_view name = names.substr(0, names.find(','));
    names.remove_prefix(std::min(names.size(), name.size() + 1));
    if (name == feature) {
      o.*field = false;
      return true;
    }
  }
  return false;
}

const char* const kOptInFeatureNames = "busy-poll[=US],sqpoll[=IDLE_MS],napi[=US],incremental-buffers[=KIB]";

bool switch_on(BackendOptions& o, std::string_view feature) {
  const std::size_t eq = feature.find('=');
  const std::string_view name = feature.substr(0, eq);
  unsigned value = 0;
  if (eq != std::string_view::npos) {
    const std::string_view text = feature.substr(eq + 1);
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value == 0) return false;
  }
  if (name == "busy-poll") {
    o.busy_poll = std::chrono::microseconds(value != 0 ? value : 50);
  } else if (name == "sqpoll") {
    o.sqpoll = true;
    if (value != 0) o.sqpoll_idle = std::chrono::milliseconds(value);
  } else if (name == "napi") {
    o.napi_busy_poll = std::chrono::microseconds(value != 0 ? value : 50);
  } else if (name == "incremental-buffers") {
    const unsigned kib = value != 0 ? value : 64;
    if (kib > 64 || (kib & (kib - 1)) != 0) return false;  // a power of two up to 64 KiB
    o.incremental_buffers = true;
    o.incremental.buffer_size = kib * 1024;
    o.incremental.limit = 64 * 1024 / kib;  // up to 64 MiB, taken a slab (1 MiB) at a time as receives need
    o.incremental.slab = 1024 / kib;
  } else {
    return false;
  }
  return true;
}

std::unique_ptr<Backend> make_backend(const BackendOptions& options) {
  BackendOptions::Kind kind = options.kind;
  if (kind == BackendOptions::Kind::automatic) {
    if (const char* env = std::getenv("CORIO_BACKEND"); env != nullptr && *env != '\0') {
      auto parsed = parse_backend_kind(env);
      if (!parsed) throw std::invalid_argument(std::string("CORIO_BACKEND=") + env + ": expected uring or epoll");
      kind = *parsed;
    }
  }
  switch (kind) {
    case BackendOptions::Kind::uring:
      return make_uring_backend(options);
    case BackendOptions::Kind::epoll:
      return make_epoll_backend(options);
    case BackendOptions::Kind::automatic:
      break;
  }
  try {
    return make_uring_backend(options);
  } catch (const std::system_error& e) {
    static std::once_flag noticed;
    std::call_once(noticed, [&] { log::write(log::Level::warning, "io_uring unavailable (%s); using epoll", e.what()); });
    return make_epoll_backend(options);
  }
}

}  // namespace corio
