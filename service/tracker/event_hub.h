// EventHub: hands the timeline entries a durable write appended to the
// watchers of its task, in memory and off the writer's thread.
//
// A writer calls Publish once an entry is durable. Publish only queues the
// entry on its task's channel (nothing at all when the task has no
// watchers): its cost does not depend on how many watchers there are, and it
// never waits for one. The hub's dispatch thread then appends the entry to
// the bounded buffer of each Subscription of that task and calls its
// listener. A subscription whose buffer is full is cut: its buffer is
// dropped, it receives nothing more, and its owner ends the watch (the
// client resumes from the last entry it was sent).
//
// Timelines written elsewhere: a hub attached to its store (Attach) also
// follows writes other processes commit to a shared store
// (TaskStore::WatchOtherWriters, PostgreSQL's LISTEN/NOTIFY). When told a
// watched task changed (Refresh), or that changes may have gone unreported
// (RefreshAll), its refresh thread (named tt-watch-read) re-reads the task
// from the store, once per task whatever the number of its watchers, and
// publishes the entries its channel has not carried yet; a task no longer
// stored cuts its subscriptions with kPurged. A channel subscribed with the
// task's known last seq carries each seq once and in order, with no gap: an
// entry already carried is dropped (one seen both from its own writer and in
// the store), and one that would skip a seq is dropped too and the task
// re-read from the store from its last carried seq (on it, the skipped
// entries and that one).
//
// Thread safety: all methods are safe to call concurrently. Listeners run on
// the dispatch thread (or on the refresh thread when it cuts a purged task's
// subscriptions, on the caller of Close, or of Subscribe after the hub
// closed); the listeners of one task never run at once. A listener must
// be quick and must not call Subscribe, Unsubscribe or Close. After
// Unsubscribe returns, the subscription's listener is not running and will
// not run again.
#ifndef TASKTRAIL_SERVICE_TRACKER_EVENT_HUB_H_
#define TASKTRAIL_SERVICE_TRACKER_EVENT_HUB_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "store/task_store.h"
#include "tasktrail/v1/task.pb.h"

namespace tasktrail {

// A durable timeline entry as watchers receive it; shared by every watcher
// of its task and immutable once published.
struct PublishedEvent {
  v1::TaskEvent event;
  // `event` serialized; filled by the hub before the entry reaches any
  // subscription.
  std::string bytes;
};

class EventHub {
 public:
  struct Options {
    // Entries a subscription may hold that its owner has not taken yet. One
    // more cuts it. Entries are shared between the watchers of a task, so
    // this bounds pointers per watcher, not copies. Must be at least 1.
    size_t buffer_events = 1024;
  };

  // A watcher's end: the entries published for its task since it
  // subscribed, in publishing order, up to Options::buffer_events.
  class Subscription {
   public:
    // Why a subscription stopped receiving.
    enum class Cut {
      kNone,
      kOverflow,  // its buffer was full when an entry arrived
      kClosing,   // the hub closed (the server shuts down)
      kPurged,    // the task is no longer stored (purged)
    };

    // The oldest entry not taken yet, removed from the buffer; null when
    // none is waiting (always null once cut).
    std::shared_ptr<const PublishedEvent> Pop();

    // kNone while the subscription receives entries.
    Cut cut() const;

    size_t capacity() const { return capacity_; }

    // Use EventHub::Subscribe.
    Subscription(std::string task_id, std::function<void()> listener,
                 size_t capacity)
        : task_id_(std::move(task_id)),
          listener_(std::move(listener)),
          capacity_(capacity) {}

   private:
    friend class EventHub;

    // Appends `events` (or cuts the subscription when they do not fit);
    // true when the listener should be told.
    bool Deliver(
        const std::vector<std::shared_ptr<const PublishedEvent>>& events);
    // Cuts the subscription with `why`; true when it was not cut before.
    bool CutWith(Cut why);

    const std::string task_id_;
    const std::function<void()> listener_;
    const size_t capacity_;
    mutable absl::Mutex mutex_;
    std::deque<std::shared_ptr<const PublishedEvent>> buffer_
        ABSL_GUARDED_BY(mutex_);
    Cut cut_ ABSL_GUARDED_BY(mutex_) = Cut::kNone;
  };

  EventHub() : EventHub(Options{}) {}
  // Starts the dispatch thread (named tt-watch).
  explicit EventHub(Options options);
  // Stops the dispatch thread; entries not dispatched yet are dropped and
  // subscriptions still open receive nothing more.
  ~EventHub();

  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // A last seq not known (Subscribe).
  static constexpr int64_t kUnknownSeq = -1;

  // Subscribes to the entries of `task_id` published from now on;
  // `listener` is called whenever the subscription has a new entry or was
  // cut. `known_seq`: the task's last timeline seq as read from the store
  // before subscribing. When it is given and the task had no subscribers,
  // its channel carries entries from known_seq + 1 on, each seq once and in
  // order (see above); with kUnknownSeq it carries what is published, as
  // published. When the hub is already closed, the subscription is returned
  // cut (kClosing) and its listener has been called once.
  std::shared_ptr<Subscription> Subscribe(absl::string_view task_id,
                                          std::function<void()> listener,
                                          int64_t known_seq = kUnknownSeq);
  // Ends `subscription`; a no-op for one already unsubscribed or null.
  void Unsubscribe(const std::shared_ptr<Subscription>& subscription);

  // Queues `entry`, a durable entry of `task_id`, for the task's watchers
  // and returns; drops it when the task has none or the hub is closed.
  // REQUIRES: called in the order the task's entries became durable.
  void Publish(absl::string_view task_id,
               std::shared_ptr<PublishedEvent> entry);

  // Reads `store` from now on to fill gaps and to follow the writes of other
  // processes: starts the refresh thread and listens to
  // store->WatchOtherWriters. A hub not attached never reads a store. An
  // earlier attachment is detached first. Returns the attachment's number,
  // for Detach.
  // REQUIRES: `store` outlives the attachment.
  uint64_t Attach(store::TaskStore* store);
  // Ends attachment `attachment` (a no-op when it ended already): stops
  // listening to its store and joins the refresh thread; once it returns
  // the hub does not touch that store again.
  void Detach(uint64_t attachment);

  // Re-reads `task_id` from the store (on the refresh thread) when it has
  // watchers: its entries past the last its channel carried are published,
  // and its subscriptions are cut with kPurged when it is no longer stored.
  // Returns at once. A no-op when not attached.
  void Refresh(absl::string_view task_id);
  // Refresh for every watched task.
  void RefreshAll();

  // Cuts every subscription with kClosing (calling its listener before
  // Close returns); later subscribers are cut at once. Used when the server
  // shuts down.
  void Close();

  // Subscriptions not unsubscribed yet.
  size_t watcher_count() const;

 private:
  // The watchers of one task.
  struct Channel {
    // Guards `subscriptions` and serialises this channel's listeners. Taken
    // without mutex_ held, never the other way round.
    absl::Mutex fanout_mutex;
    std::vector<std::shared_ptr<Subscription>> subscriptions
        ABSL_GUARDED_BY(fanout_mutex);
    // Guarded by the hub's mutex_: subscribers counted (decided under
    // mutex_, so that an empty channel is removed exactly once), entries
    // published and not dispatched yet, and whether it is queued in ready_.
    size_t subscribers = 0;
    std::vector<std::shared_ptr<PublishedEvent>> pending;
    bool queued = false;
    // The last seq queued on the channel, or kUnknownSeq when it carries
    // entries as published (Subscribe).
    int64_t last_seq = kUnknownSeq;
  };

  void Dispatch();
  // The number of the latest attachment (0 before any).
  uint64_t CurrentAttachment() const;
  void DetachLocked(uint64_t attachment)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(attach_mutex_);
  void RefreshLoop();
  // Reads what the store holds of `task_id` past its channel's last seq and
  // publishes it; cuts its subscriptions when it is not stored. OK when it
  // has no channel (any more).
  absl::Status RefreshTask(const std::string& task_id);
  // Cuts every subscription of `task_id` with `why`, calling its listener.
  void CutTask(absl::string_view task_id, Subscription::Cut why);

  const Options options_;
  mutable absl::Mutex mutex_;
  absl::CondVar work_;
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  size_t watchers_ ABSL_GUARDED_BY(mutex_) = 0;
  absl::flat_hash_map<std::string, std::shared_ptr<Channel>> channels_
      ABSL_GUARDED_BY(mutex_);
  std::deque<std::shared_ptr<Channel>> ready_ ABSL_GUARDED_BY(mutex_);
  // The attached store (set by Attach before the refresh thread starts,
  // cleared by Detach after it stopped) and the tasks to re-read.
  store::TaskStore* store_ ABSL_GUARDED_BY(mutex_) = nullptr;
  uint64_t attachment_ ABSL_GUARDED_BY(mutex_) = 0;
  // Serialises Attach and Detach.
  absl::Mutex attach_mutex_;
  bool refresh_all_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopping_refresh_ ABSL_GUARDED_BY(mutex_) = false;
  absl::flat_hash_set<std::string> refresh_ ABSL_GUARDED_BY(mutex_);
  absl::CondVar refresh_work_;
  std::thread refresher_;
  std::thread dispatcher_;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_EVENT_HUB_H_
