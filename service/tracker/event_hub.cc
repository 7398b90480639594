#include "service/tracker/event_hub.h"

#include <utility>

namespace tasktrail {

uint64_t EventHub::Subscribe(absl::string_view task_id, Listener listener) {
  absl::MutexLock lock(&mutex_);
  const uint64_t handle = next_handle_++;
  if (closed_) {
    listener(/*closing=*/true);
    return handle;
  }
  by_task_[task_id][handle] = true;
  entries_[handle] = Entry{std::string(task_id), std::move(listener)};
  return handle;
}

void EventHub::Unsubscribe(uint64_t handle) {
  absl::MutexLock lock(&mutex_);
  auto it = entries_.find(handle);
  if (it == entries_.end()) return;
  auto task_it = by_task_.find(it->second.task_id);
  if (task_it != by_task_.end()) {
    task_it->second.erase(handle);
    if (task_it->second.empty()) by_task_.erase(task_it);
  }
  entries_.erase(it);
}

void EventHub::Notify(absl::string_view task_id) {
  absl::MutexLock lock(&mutex_);
  auto task_it = by_task_.find(task_id);
  if (task_it == by_task_.end()) return;
  for (const auto& [handle, unused] : task_it->second) {
    entries_[handle].listener(/*closing=*/false);
  }
}

void EventHub::Close() {
  absl::MutexLock lock(&mutex_);
  closed_ = true;
  for (auto& [handle, entry] : entries_) entry.listener(/*closing=*/true);
}

size_t EventHub::watcher_count() const {
  absl::MutexLock lock(&mutex_);
  return entries_.size();
}

}  // namespace tasktrail
