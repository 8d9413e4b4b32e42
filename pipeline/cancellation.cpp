#include "pipeline/cancellation.hpp"

#include <algorithm>

namespace pixpool {

bool CancelToken::check() {
  if (cancelled()) return true;
  if (probe_ && probe_()) cancel();
  return cancelled();
}

void CancelToken::cancel() {
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  std::vector<std::pair<HookId, std::function<void()>>> hooks;
  {
    std::lock_guard lock(mutex_);
    hooks.swap(withdraw_);
  }
  for (auto& [id, hook] : hooks) {
    if (hook) hook();
  }
}

CancelToken::HookId CancelToken::set_withdraw(std::function<void()> hook) {
  {
    std::lock_guard lock(mutex_);
    if (!cancelled()) {
      const HookId id = next_id_++;
      withdraw_.emplace_back(id, std::move(hook));
      return id;
    }
  }
  // Cancelled before the hook was set: cancel() has already run, so withdraw now.
  if (hook) hook();
  return 0;
}

void CancelToken::clear_withdraw(HookId id) {
  std::lock_guard lock(mutex_);
  std::erase_if(withdraw_, [id](const auto& entry) { return entry.first == id; });
}

}  // namespace pixpool
