#include "corio/runtime/cancel_hook.hpp"

#include "corio/runtime/message.hpp"
#include "corio/runtime/reactor.hpp"

namespace corio {

// A stop requested on another thread, travelling to the hook's reactor. `hook` is cleared if the awaiter
// is destroyed before the message runs.
struct CancelHook::RemoteStop final : Message {
  explicit RemoteStop(CancelHook* h) : hook(h) {}
  void run() noexcept override {
    if (CancelHook* h = hook) {
      h->remote_.store(nullptr, std::memory_order_relaxed);
      if (h->finished_) h->resume_after_cancel();
      else h->cancel_on_home();
    }
    delete this;
  }
  CancelHook* hook;
};

void CancelHook::OnStop::operator()() const noexcept {
  if (Reactor::current() == hook->home_) {
    hook->cancel_on_home();
    return;
  }
  // A stop callback cannot report failure: running out of memory here ends the process, as noexcept says.
  auto* m = new RemoteStop(hook);  // NOLINT(bugprone-unhandled-exception-at-new)
  hook->remote_.store(m, std::memory_order_release);
  hook->home_->post(m);
}

void CancelHook::watch(const std::stop_token& token, Reactor& home) {
  home_ = &home;
  finished_ = false;
  if (token.stop_possible()) on_stop_.emplace(token, OnStop{this});
}

bool CancelHook::unwatch() noexcept {
  // Destroying the callback waits for it if it is running on another thread, so remote_ is final after.
  on_stop_.reset();
  if (remote_.load(std::memory_order_acquire) == nullptr) return true;
  finished_ = true;
  return false;
}

void CancelHook::detach() noexcept {
  on_stop_.reset();
  if (RemoteStop* m = remote_.exchange(nullptr, std::memory_order_acquire)) m->hook = nullptr;
}

}  // namespace corio
