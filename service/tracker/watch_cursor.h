// WatchCursor: what a WatchTask stream sends next, as plain C++ (the gRPC
// reactor only moves its answers onto the wire). A stream sends the stored
// timeline after `after_seq`, read from the store in batches of kBatch, then
// the live entries its EventHub subscription receives in memory (an entry
// at or below the last seq sent, such as a poll folded into an entry already
// sent, is skipped). It ends:
//   - OK once the event that finished the task has been sent, or, for a
//     task that was already finished, once the stored timeline has been sent;
//   - with the error of a failed read;
//   - NOT_FOUND, as GetTask answers then, once the task is purged;
//   - UNAVAILABLE when it is cut short (the server shuts down, the watcher
//     fell a whole buffer behind, the stream reached its maximum lifetime):
//     the status names the after_seq to resume with.
//
// The subscription must be made before the first Next, so that every entry
// that becomes durable after the stored timeline was read reaches it.
//
// Thread safety: none; the owner serialises every call (the reactor holds
// its mutex).
#ifndef TASKTRAIL_SERVICE_TRACKER_WATCH_CURSOR_H_
#define TASKTRAIL_SERVICE_TRACKER_WATCH_CURSOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/tracker.h"
#include "tasktrail/v1/task.pb.h"

namespace tasktrail {

class WatchCursor {
 public:
  // Events read from the store per read of the stored timeline.
  static constexpr int kBatch = 64;

  // A cursor on `task_id` after `after_seq`, once the request is checked:
  // errors as Tracker::GetSnapshot's (INVALID_ARGUMENT for a malformed id,
  // NOT_FOUND when unknown), then INVALID_ARGUMENT for a negative after_seq.
  // Nothing is read for the stream yet.
  // REQUIRES: `tracker` outlives the cursor.
  static absl::StatusOr<WatchCursor> Open(const Tracker* tracker,
                                          absl::string_view task_id,
                                          int64_t after_seq);

  // Takes live entries from `live`, a subscription to this task's entries.
  // Without one the cursor sends the stored timeline and then waits.
  // REQUIRES: called before the first Next.
  void Follow(std::shared_ptr<EventHub::Subscription> live) {
    live_ = std::move(live);
  }

  // What to do next.
  enum class Action {
    kSend,  // send event; it counts as sent
    kWait,  // nothing to send now: call Next again when the subscription's
            // listener runs (or, after a kWait answered to a call that
            // could not read the store, from a call that can)
    kEnd,   // end the stream with status
  };
  struct Step {
    Action action = Action::kWait;
    std::shared_ptr<const PublishedEvent> event;  // kSend: with its bytes
    absl::Status status;                          // kEnd: OK or an error
  };

  // The next step. While the stored timeline is being sent, the next batch
  // is read from the store when the previous one is spent, unless
  // `may_read_store` is false: then the answer is kWait (callers on the
  // hub's dispatch thread pass false, so that no watcher reads the store
  // there). After kEnd the cursor must not be used again.
  Step Next(bool may_read_store = true);

  // The status that ends the stream when its subscription was cut:
  // UNAVAILABLE when the hub closed or the watcher fell a whole buffer
  // behind, NOT_FOUND (Tracker::TaskNotFound) when the task was purged;
  // nullopt while it was not cut.
  absl::optional<absl::Status> Cut() const;

  // The UNAVAILABLE that ends a stream cut short because `why`, naming the
  // after_seq to resume from.
  absl::Status Interrupted(absl::string_view why) const;

  // The seq of the last event sent (after_seq before any).
  int64_t last_sent_seq() const { return last_sent_seq_; }

  // The task's last timeline seq when Open read it: the `known_seq` to
  // subscribe with (EventHub::Subscribe).
  int64_t known_seq() const { return known_seq_; }

 private:
  WatchCursor(const Tracker* tracker, std::string task_id, int64_t after_seq,
              int64_t known_seq)
      : tracker_(tracker),
        task_id_(std::move(task_id)),
        last_sent_seq_(after_seq),
        known_seq_(known_seq) {}

  // Reads the next batch of stored events after last_sent_seq_.
  absl::Status Refill();
  // Marks `event` sent and answers kSend.
  Step Send(std::shared_ptr<const PublishedEvent> event);

  const Tracker* tracker_;
  std::string task_id_;
  std::shared_ptr<EventHub::Subscription> live_;
  int64_t last_sent_seq_;
  int64_t known_seq_;
  bool replaying_ = true;    // the stored timeline is not all sent yet
  bool more_stored_ = true;  // a read is due (first, or a full batch before)
  bool sent_finish_ = false;
  bool task_finished_ = false;
  std::vector<v1::TaskEvent> stored_;
  size_t next_ = 0;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_WATCH_CURSOR_H_
