// Counting this process's open descriptors, to prove that nothing leaked.
#pragma once
#include <dirent.h>

#include <cstddef>

namespace corio::testing {

inline std::size_t open_fds() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

}  // namespace corio::testing
