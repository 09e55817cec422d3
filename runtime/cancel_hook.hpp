// CancelHook: lets a suspended awaiter react to a std::stop_token whichever thread requests the stop.
// The reaction (cancel_on_home) always runs on the awaiter's own reactor: a stop requested there runs it
// at once; a stop requested on another thread posts a message to that reactor. The message may still be
// queued when the awaiter finishes or is destroyed; the handshake below makes both cases safe.
#pragma once
#include <atomic>
#include <optional>
#include <stop_token>

namespace corio {

class Reactor;

class CancelHook {
 public:
  CancelHook() = default;
  CancelHook(const CancelHook&) = delete;
  CancelHook& operator=(const CancelHook&) = delete;

 protected:
  ~CancelHook() = default;
  // Starts watching `token` for an awaiter that lives on `home`. Call after the awaiter is armed.
  void watch(const std::stop_token& token, Reactor& home);
  // Stops watching, on the home reactor when the awaited thing finished. Returns false when a stop
  // requested from another thread is still on its way: resume_after_cancel() then runs when it arrives,
  // and the caller must not resume the awaiter itself.
  bool unwatch() noexcept;
  // Stops watching for good; the awaiter is being destroyed. Call first thing in the destructor.
  void detach() noexcept;

  // Runs on the home reactor when stop is requested while the awaiter is armed.
  virtual void cancel_on_home() noexcept = 0;
  // Runs on the home reactor when a remote stop arrives after the awaiter finished (see unwatch).
  virtual void resume_after_cancel() noexcept = 0;

 private:
  struct OnStop {
    CancelHook* hook;
    void operator()() const noexcept;
  };
  struct RemoteStop;
  std::optional<std::stop_callback<OnStop>> on_stop_;
  std::atomic<RemoteStop*> remote_{nullptr};
  Reactor* home_ = nullptr;
  bool finished_ = false;
};

}  // namespace corio
