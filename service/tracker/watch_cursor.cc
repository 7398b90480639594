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
  return WatchCursor(tracker, std::string(task_id), after_seq,
                     task->last_event_seq());
}

WatchCursor::Step WatchCursor::Next(bool may_read_store) {
  Step step;
  if (absl::optional<absl::Status> cut = Cut(); cut.has_value()) {
    step.action = Action::kEnd;
    step.status = *std::move(cut);
    return step;
  }
  if (replaying_) {
    if (next_ >= stored_.size() && more_stored_) {
      if (!may_read_store) return step;  // kWait
      absl::Status read = Refill();
      if (!read.ok()) {
        step.action = Action::kEnd;
        step.status = std::move(read);
        return step;
      }
    }
    if (next_ < stored_.size()) {
      auto event = std::make_shared<PublishedEvent>();
      event->event = std::move(stored_[next_++]);
      event->event.SerializeToString(&event->bytes);
      return Send(std::move(event));
    }
    // The last read was short: everything durable before it was sent, and
    // what became durable since is in the subscription.
    replaying_ = false;
    stored_.clear();
  }
  if (sent_finish_ || task_finished_) {
    step.action = Action::kEnd;
    return step;
  }
  if (live_ != nullptr) {
    while (std::shared_ptr<const PublishedEvent> event = live_->Pop()) {
      const int64_t seq = event->event.seq();
      if (seq <= last_sent_seq_) continue;
      if (seq > last_sent_seq_ + 1) {
        // The hub carries a task's seqs without gaps from the seq the
        // cursor subscribed with; a gap means entries were lost on the way.
        // The client resumes from the last one sent rather than miss them.
        step.action = Action::kEnd;
        step.status = Interrupted(absl::StrCat(
            "the live timeline went from seq ", last_sent_seq_, " to ", seq));
        return step;
      }
      return Send(std::move(event));
    }
  }
  return step;  // kWait
}

absl::optional<absl::Status> WatchCursor::Cut() const {
  if (live_ == nullptr) return absl::nullopt;
  switch (live_->cut()) {
    case EventHub::Subscription::Cut::kNone:
      return absl::nullopt;
    case EventHub::Subscription::Cut::kClosing:
      return Interrupted("tasktraild is shutting down");
    case EventHub::Subscription::Cut::kPurged:
      return tracker_->TaskNotFound(task_id_);
    case EventHub::Subscription::Cut::kOverflow:
      return Interrupted(absl::StrCat(
          "the watcher fell more than ", live_->capacity(),
          " events behind (it stopped reading, or reads too slowly)"));
  }
  return absl::nullopt;
}

absl::Status WatchCursor::Interrupted(absl::string_view why) const {
  return absl::UnavailableError(
      absl::StrCat(why, "; resume WatchTask with after_seq=", last_sent_seq_));
}

WatchCursor::Step WatchCursor::Send(
    std::shared_ptr<const PublishedEvent> event) {
  last_sent_seq_ = event->event.seq();
  if (IsFinishingEvent(event->event.type())) sent_finish_ = true;
  Step step;
  step.action = Action::kSend;
  step.event = std::move(event);
  return step;
}

absl::Status WatchCursor::Refill() {
  // Read the snapshot first: if it is finished now, every event up to the
  // finishing one is already in the store and is read below.
  absl::StatusOr<v1::Task> task = tracker_->GetSnapshot(task_id_);
  if (!task.ok()) return task.status();
  absl::StatusOr<std::vector<v1::TaskEvent>> events =
      tracker_->ReadEvents(task_id_, last_sent_seq_, kBatch);
  if (!events.ok()) return events.status();
  task_finished_ = IsFinished(task->state());
  stored_ = std::move(events).value();
  next_ = 0;
  // A full batch may have more behind it.
  more_stored_ = static_cast<int>(stored_.size()) == kBatch;
  return absl::OkStatus();
}

}  // namespace tasktrail
