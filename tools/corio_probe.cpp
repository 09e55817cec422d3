// corio-probe: what this machine offers corio, before you benchmark on it. Kernel, io_uring availability,
// each setup flag tried for real, the opcodes the kernel supports, what corio will use and why anything is
// off, the memlock limit, CPUs and NUMA nodes. Run it as the user that will run the server.
//   corio-probe
#include <dirent.h>
#include <liburing.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/utsname.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "corio/runtime/backend.hpp"
#include "corio/runtime/runtime.hpp"
#include "corio/tls/context.hpp"

namespace {

// Names for the opcodes liburing 2.3's headers know, indexed by opcode.
constexpr const char* kOpcodes[] = {
    "NOP", "READV", "WRITEV", "FSYNC", "READ_FIXED", "WRITE_FIXED", "POLL_ADD", "POLL_REMOVE",
    "SYNC_FILE_RANGE", "SENDMSG", "RECVMSG", "TIMEOUT", "TIMEOUT_REMOVE", "ACCEPT", "ASYNC_CANCEL",
    "LINK_TIMEOUT", "CONNECT", "FALLOCATE", "OPENAT", "CLOSE", "FILES_UPDATE", "STATX", "READ", "WRITE",
    "FADVISE", "MADVISE", "SEND", "RECV", "OPENAT2", "EPOLL_CTL", "SPLICE", "PROVIDE_BUFFERS",
    "REMOVE_BUFFERS", "TEE", "SHUTDOWN", "RENAMEAT", "UNLINKAT", "MKDIRAT", "SYMLINKAT", "LINKAT", "MSG_RING",
    "FSETXATTR", "SETXATTR", "FGETXATTR", "GETXATTR", "SOCKET", "URING_CMD", "SEND_ZC", "SENDMSG_ZC"};
static_assert(sizeof kOpcodes / sizeof *kOpcodes == IORING_OP_LAST);

// Tries to set up a small ring with `flags`; returns 0 or the negative errno.
int try_setup(unsigned flags) {
  io_uring ring;
  io_uring_params p{};
  p.flags = flags;
  int err = io_uring_queue_init_params(8, &ring, &p);
  if (err == 0) io_uring_queue_exit(&ring);
  return err;
}

std::string first_line(const char* path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return f ? line : "(unreadable)";
}

int numa_nodes() {
  int n = 0;
  if (DIR* d = ::opendir("/sys/devices/system/node")) {
    while (dirent* e = ::readdir(d)) {
      if (std::strncmp(e->d_name, "node", 4) == 0 && e->d_name[4] >= '0' && e->d_name[4] <= '9') ++n;
    }
    ::closedir(d);
  }
  return n;
}

}  // namespace

int main() {
  rlimit files{};  // before any Runtime raises it
  ::getrlimit(RLIMIT_NOFILE, &files);
  utsname u{};
  ::uname(&u);
  std::printf("kernel              %s %s (%s)\n", u.sysname, u.release, u.machine);
  std::printf("io_uring_disabled   %s\n", first_line("/proc/sys/kernel/io_uring_disabled").c_str());

  struct Flag {
    const char* name;
    unsigned flags;
  };
  const Flag flags[] = {
      {"(none)", 0},
      {"COOP_TASKRUN", IORING_SETUP_COOP_TASKRUN},
      {"TASKRUN_FLAG", IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG},
      {"SINGLE_ISSUER", IORING_SETUP_SINGLE_ISSUER},
      {"DEFER_TASKRUN", IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN},
      {"SUBMIT_ALL", IORING_SETUP_SUBMIT_ALL},
      {"SQPOLL", IORING_SETUP_SQPOLL},
      {"CQE32", IORING_SETUP_CQE32},
  };
  std::printf("\nio_uring setup flags (each tried for real)\n");
  bool any_ring = false;
  for (const Flag& f : flags) {
    int err = try_setup(f.flags);
    any_ring = any_ring || err == 0;
    std::printf("  %-16s %s\n", f.name, err == 0 ? "yes" : std::strerror(-err));
  }

  if (any_ring) {
    io_uring_probe* probe = io_uring_get_probe();
    std::printf("\nopcodes supported\n ");
    int shown = 0;
    for (int op = 0; op < IORING_OP_LAST; ++op) {
      bool ok = probe != nullptr && io_uring_opcode_supported(probe, op);
      std::printf(" %s%s", ok ? "" : "-", kOpcodes[op]);
      if (++shown % 8 == 0) std::printf("\n ");
    }
    std::printf("\n  (- : not supported)\n");
    if (probe != nullptr) io_uring_free_probe(probe);
  }

  std::printf("\nwhat corio will use\n");
  try {
    corio::Runtime rt({.reactors = 1});
    std::string chosen = rt.run([]() -> corio::task<std::string> {
      co_return corio::Reactor::current()->backend().describe();
    }());
    // One feature per line: "io_uring: FLAGS; wake=...; buffers: ...; ..." (each says why when off).
    std::size_t start = 0;
    const char* label = "  backend           ";
    while (start <= chosen.size()) {
      std::size_t end = chosen.find("; ", start);
      if (end == std::string::npos) end = chosen.size();
      std::printf("%s%s\n", label, chosen.substr(start, end - start).c_str());
      label = "                    ";
      start = end + 2;
    }
  } catch (const std::exception& e) {
    std::printf("  backend           none: %s\n", e.what());
  }
  // The opt-in features, switched on together: what the kernel took of them (SQPOLL, the NAPI note).
  try {
    corio::BackendOptions opt_in;
    corio::switch_on(opt_in, "busy-poll");
    corio::switch_on(opt_in, "sqpoll");
    corio::switch_on(opt_in, "napi");
    corio::switch_on(opt_in, "incremental-buffers");
    corio::Runtime rt({.reactors = 1, .backend = opt_in});
    std::string chosen = rt.run([]() -> corio::task<std::string> {
      co_return corio::Reactor::current()->backend().describe();
    }());
    auto part = [&](const char* name, const char* missing) {
      const std::size_t at = chosen.find(name);
      if (at == std::string::npos) return std::string(missing);
      return chosen.substr(at, chosen.find("; ", at) - at);
    };
    std::printf("  --enable sqpoll,napi,incremental-buffers: %s; %s; %s\n", chosen.substr(0, chosen.find(';')).c_str(),
                part("napi", "napi: not reported").c_str(), part("buffers:", "buffers: not reported").c_str());
  } catch (const std::exception& e) {
    std::printf("  --enable sqpoll,napi,incremental-buffers: refused: %s\n", e.what());
  }
  std::string why;
  const bool ktls = corio::tls::Context::kernel_tls_available(&why);
  std::printf("  kernel TLS        %s\n", ktls ? "yes: TLS streams hand their records to the kernel" : ("no: " + why).c_str());

  rlimit mem{};
  ::getrlimit(RLIMIT_MEMLOCK, &mem);
  auto show = [](rlim_t v) { return v == RLIM_INFINITY ? std::string("unlimited") : std::to_string(v / 1024) + " KiB"; };
  std::printf("\nRLIMIT_MEMLOCK      soft %s, hard %s (registered buffers count against it without CAP_IPC_LOCK)\n",
              show(mem.rlim_cur).c_str(), show(mem.rlim_max).c_str());
  std::printf("RLIMIT_NOFILE       soft %s, hard %s (corio raises soft to hard at start)\n",
              std::to_string(files.rlim_cur).c_str(), std::to_string(files.rlim_max).c_str());
  cpu_set_t set;
  CPU_ZERO(&set);
  ::sched_getaffinity(0, sizeof set, &set);
  std::printf("CPUs                %d usable (one reactor each by default)\n", CPU_COUNT(&set));
  std::printf("NUMA nodes          %d\n", numa_nodes());
  return 0;
}
