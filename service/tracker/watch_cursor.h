// WatchCursor: what a WatchTask stream sends next, as plain C++ (the gRPC
// reactor only moves its answers onto the wire). A stream sends the stored
// timeline after `after_seq`, then live events, and ends:
//   - OK once the event that finished the task has been sent, or, for a
//     task that was already finished, once the stored timeline has been sent;
//   - with the error of a failed read;
//   - UNAVAILABLE when it is cut short (the server shuts down, the stream
//     reached its maximum lifetime): Interrupted() names the after_seq to
//     resume with.
// Stored events are read in batches of kBatch; a full batch may have more
// behind it, and a Wake() (a new event was recorded) asks for another read.
//
// Thread safety: none; the owner serialises every call (the reactor holds
// its mutex).
#ifndef TASKTRAIL_SERVICE_TRACKER_WATCH_CURSOR_H_
#define TASKTRAIL_SERVICE_TRACKER_WATCH_CURSOR_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/tracker/tracker.h"
#include "tasktrail/v1/task.pb.h"

namespace tasktrail {

class WatchCursor {
 public:
  // Events read from the store per refill of the buffer.
  static constexpr int kBatch = 64;

  // A cursor on `task_id` after `after_seq`, once the request is checked:
  // errors as Tracker::GetSnapshot's (INVALID_ARGUMENT for a malformed id,
  // NOT_FOUND when unknown), then INVALID_ARGUMENT for a negative after_seq.
  // Nothing is read for the stream yet.
  // REQUIRES: `tracker` outlives the cursor.
  static absl::StatusOr<WatchCursor> Open(const Tracker* tracker,
                                          absl::string_view task_id,
                                          int64_t after_seq);

  // What to do next.
  enum class Action {
    kSend,  // send event(); it counts as sent
    kWait,  // nothing to send now: call Next again after a Wake()
    kEnd,   // end the stream with status()
  };
  struct Step {
    Action action = Action::kWait;
    const v1::TaskEvent* event = nullptr;  // kSend: valid until the next call
    absl::Status status;                   // kEnd: OK or the read's error
  };

  // The next step: reads the next batch first when the buffer is spent and
  // a read is due (the first call, a Wake(), or a full previous batch).
  // After kEnd the cursor must not be used again.
  Step Next();

  // A new event may have been recorded: the next Next() reads again.
  void Wake() { refill_ = true; }

  // The UNAVAILABLE that ends a stream cut short because `why`, naming the
  // after_seq to resume from.
  absl::Status Interrupted(absl::string_view why) const;

  // The seq of the last event sent (after_seq before any).
  int64_t last_sent_seq() const { return last_sent_seq_; }

 private:
  WatchCursor(const Tracker* tracker, std::string task_id, int64_t after_seq)
      : tracker_(tracker),
        task_id_(std::move(task_id)),
        last_sent_seq_(after_seq) {}

  // Reads the next batch of stored events after last_sent_seq_.
  absl::Status Refill();

  const Tracker* tracker_;
  std::string task_id_;
  int64_t last_sent_seq_;
  bool primed_ = false;
  bool refill_ = false;
  bool sent_finish_ = false;
  bool task_finished_ = false;
  std::vector<v1::TaskEvent> buffer_;
  size_t next_ = 0;
  v1::TaskEvent current_;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_WATCH_CURSOR_H_
