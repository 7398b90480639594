#include "service/tracker/watch_cursor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "service/rules/errors.h"
#include "service/rules/lifecycle.h"

namespace tasktrail {

absl::StatusOr<WatchCursor> WatchCursor::Open(const Tracker* tracker,
                                              absl::string_view task_id,
                                              int64_t after_seq) {
  absl::StatusOr<v1::Task> task = tracker->GetSnapshot(task_id);
  if (!task.ok()) return task.status();
  if (after_seq < 0) {
    return InvalidField("after_seq", "FIELD_OUT_OF_RANGE",
                        "after_seq must not be negative");
  }
  return WatchCursor(tracker, std::string(task_id), after_seq);
}

WatchCursor::Step WatchCursor::Next() {
  Step step;
  if (next_ >= buffer_.size() && (refill_ || !primed_)) {
    absl::Status read = Refill();
    if (!read.ok()) {
      step.action = Action::kEnd;
      step.status = std::move(read);
      return step;
    }
  }
  if (next_ < buffer_.size()) {
    current_ = std::move(buffer_[next_++]);
    last_sent_seq_ = current_.seq();
    if (IsFinishingEvent(current_.type())) sent_finish_ = true;
    step.action = Action::kSend;
    step.event = &current_;
  } else if (sent_finish_ || task_finished_) {
    step.action = Action::kEnd;
  }
  return step;
}

absl::Status WatchCursor::Interrupted(absl::string_view why) const {
  return absl::UnavailableError(
      absl::StrCat(why, "; resume WatchTask with after_seq=", last_sent_seq_));
}

absl::Status WatchCursor::Refill() {
  refill_ = false;
  primed_ = true;
  // Read the snapshot first: if it is finished now, every event up to the
  // finishing one is already in the store and is read below.
  absl::StatusOr<v1::Task> task = tracker_->GetSnapshot(task_id_);
  if (!task.ok()) return task.status();
  absl::StatusOr<std::vector<v1::TaskEvent>> events =
      tracker_->ReadEvents(task_id_, last_sent_seq_, kBatch);
  if (!events.ok()) return events.status();
  task_finished_ = IsFinished(task->state());
  buffer_ = std::move(events).value();
  next_ = 0;
  // A full batch may have more behind it.
  if (static_cast<int>(buffer_.size()) == kBatch) refill_ = true;
  return absl::OkStatus();
}

}  // namespace tasktrail
