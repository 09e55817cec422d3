// SignalSet: process signals read as values by a coroutine instead of run in a handler.
//   corio::SignalSet signals({SIGINT, SIGTERM});   // before the Runtime: its threads inherit the mask
//   corio::Runtime rt;
//   rt.run([&]() -> task<void> { int sig = co_await signals.next(); ... }());
// The constructor blocks the signals in the calling thread (threads started later inherit that) and opens a
// signalfd for them: a blocked signal waits there until next() reads it, through the reactor, so it arrives
// on a reactor like any I/O. Threads started before it do not block them, and one of those may take the
// signal instead: create it first thing in main(), before any Runtime. Programs it starts inherit the
// blocked mask (give them their own: posix_spawnattr_setsigmask). Two signals of one kind sent before a
// read merge into one, as blocked standard signals do. It must outlive a pending next(). Throws
// std::system_error if the signalfd cannot be made (the mask is then left as it was).
#pragma once
#include <initializer_list>

#include "corio/runtime/task.hpp"

namespace corio {

class SignalSet {
 public:
  explicit SignalSet(std::initializer_list<int> signals);
  ~SignalSet();  // closes the signalfd; the signals stay blocked (one arriving later stays pending)
  SignalSet(const SignalSet&) = delete;
  SignalSet& operator=(const SignalSet&) = delete;

  // The next signal's number; -errno if the read failed (-ECANCELED when the awaiting task was stopped).
  task<int> next();

 private:
  int fd_;
};

}  // namespace corio
