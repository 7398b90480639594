// EventHub: tells watchers of a task that its timeline grew. Writers call
// Notify after a write is durable; each watcher re-reads the store.
//
// Thread safety: all methods are safe to call concurrently. Listeners run on
// the notifying thread while the hub's lock is held, so a listener must be
// quick and must not call back into the hub. After Unsubscribe returns, the
// listener is not running and will not run again.
#ifndef TASKTRAIL_SERVICE_TRACKER_EVENT_HUB_H_
#define TASKTRAIL_SERVICE_TRACKER_EVENT_HUB_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace tasktrail {

class EventHub {
 public:
  // Called with `closing` false when the task's timeline grew, and once with
  // `closing` true when the hub shuts down.
  using Listener = std::function<void(bool closing)>;

  // Registers `listener` for `task_id`; returns a handle for Unsubscribe.
  // When the hub is already closed, the listener is called once with
  // closing=true before Subscribe returns.
  uint64_t Subscribe(absl::string_view task_id, Listener listener);
  void Unsubscribe(uint64_t handle);

  // Wakes the listeners of `task_id`.
  void Notify(absl::string_view task_id);

  // Calls every listener with closing=true; later subscribers are told at
  // once. Used when the server shuts down.
  void Close();

  size_t watcher_count() const;

 private:
  struct Entry {
    std::string task_id;
    Listener listener;
  };
  mutable absl::Mutex mutex_;
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
  uint64_t next_handle_ ABSL_GUARDED_BY(mutex_) = 1;
  absl::flat_hash_map<uint64_t, Entry> entries_ ABSL_GUARDED_BY(mutex_);
  absl::flat_hash_map<std::string, absl::flat_hash_map<uint64_t, bool>> by_task_
      ABSL_GUARDED_BY(mutex_);
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_EVENT_HUB_H_
