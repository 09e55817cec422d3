#include "corio/runtime/signal_set.hpp"

#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <span>
#include <string>
#include <system_error>

#include "corio/runtime/read.hpp"

namespace corio {

SignalSet::SignalSet(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) {
    if (sigaddset(&set, s) != 0) throw std::system_error(errno, std::generic_category(), "corio: SignalSet: signal " + std::to_string(s));
  }
  sigset_t old;
  if (int err = pthread_sigmask(SIG_BLOCK, &set, &old); err != 0) {
    throw std::system_error(err, std::generic_category(), "corio: SignalSet: pthread_sigmask");
  }
  fd_ = signalfd(-1, &set, SFD_CLOEXEC);
  if (fd_ < 0) {
    const int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw std::system_error(err, std::generic_category(), "corio: SignalSet: signalfd");
  }
}

SignalSet::~SignalSet() { ::close(fd_); }

task<int> SignalSet::next() {
  signalfd_siginfo info{};
  const int n = co_await corio::read(fd_, std::span(reinterpret_cast<char*>(&info), sizeof info));
  if (n < 0) co_return n;
  co_return n == sizeof info ? static_cast<int>(info.ssi_signo) : -EIO;
}

}  // namespace corio
