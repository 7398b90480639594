#include "service/grpc_service.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/optional.h"
#include "service/grpc_status.h"
#include "service/lifecycle.h"

namespace tasktrail {
namespace {

// Events read from the store per refill of a watch stream's buffer.
constexpr int kWatchBatch = 64;

// Completes a unary call with the status `work` returns.
template <typename Work>
grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    Work work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(work());
  return reactor;
}

// Runs `work` on `pool` and completes the call with its status there.
template <typename Work>
grpc::ServerUnaryReactor* FinishOnPool(grpc::CallbackServerContext* context,
                                       WorkPool* pool, Work work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  pool->Schedule(
      [reactor, work = std::move(work)]() mutable { reactor->Finish(work()); });
  return reactor;
}

// Copies a domain result into `response`, or converts its error.
template <typename T, typename Response>
grpc::Status Respond(absl::StatusOr<T> result, Response* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(result).value();
  return grpc::Status::OK;
}

// A WatchTask stream: the stored timeline after `after_seq`, then live events,
// until the event that finished the task has been sent (or, for a task that
// was already finished, until the stored timeline has been sent).
//
// Thread safety: the hub's listener, gRPC's callbacks and Pump may run on
// different threads; all state is guarded by mutex_. Finish is called once.
class WatchReactor final : public grpc::ServerWriteReactor<v1::TaskEvent> {
 public:
  WatchReactor(Tracker* tracker, EventHub* hub, std::string task_id,
               int64_t after_seq)
      : tracker_(tracker),
        hub_(hub),
        task_id_(std::move(task_id)),
        last_sent_seq_(after_seq) {
    const uint64_t handle = hub_->Subscribe(task_id_, [this](bool closing) {
      {
        absl::MutexLock lock(&mutex_);
        if (closing) closing_ = true;
        refill_ = true;
      }
      Pump();
    });
    {
      absl::MutexLock lock(&mutex_);
      handle_ = handle;
      subscribed_ = true;
    }
    Pump();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED,
                              "the client stopped reading"));
      return;
    }
    {
      absl::MutexLock lock(&mutex_);
      writing_ = false;
    }
    Pump();
  }

  void OnCancel() override { FinishOnce(grpc::Status::CANCELLED); }

  void OnDone() override {
    hub_->Unsubscribe(handle_);
    delete this;
  }

 private:
  // Sends the next event, or finishes the stream when nothing remains. gRPC
  // is called outside mutex_, so that a reaction run inline cannot deadlock.
  void Pump() {
    bool write = false;
    absl::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mutex_);
      if (!subscribed_ || writing_ || finished_) return;
      if (closing_) {
        finish = grpc::Status(
            grpc::StatusCode::UNAVAILABLE,
            absl::StrCat("tasktraild is shutting down; resume WatchTask with "
                         "after_seq=",
                         last_sent_seq_));
      } else {
        if (next_ >= buffer_.size() && (refill_ || !primed_)) {
          absl::Status read = RefillLocked();
          if (!read.ok()) finish = ToGrpcStatus(read);
        }
        if (finish.has_value()) {
          // The read failed; the stream ends with its error.
        } else if (next_ < buffer_.size()) {
          current_ = std::move(buffer_[next_++]);
          last_sent_seq_ = current_.seq();
          if (IsFinishingEvent(current_.type())) sent_finish_ = true;
          writing_ = true;
          write = true;
        } else if (sent_finish_ || task_finished_) {
          finish = grpc::Status::OK;
        }
      }
      if (finish.has_value()) finished_ = true;
    }
    if (write) StartWrite(&current_);
    if (finish.has_value()) Finish(*finish);
  }

  // Reads the next batch of stored events after last_sent_seq_.
  absl::Status RefillLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    refill_ = false;
    primed_ = true;
    // Read the snapshot first: if it is finished now, every event up to the
    // finishing one is already in the store and is read below.
    absl::StatusOr<v1::Task> task = tracker_->GetSnapshot(task_id_);
    if (!task.ok()) return task.status();
    absl::StatusOr<std::vector<v1::TaskEvent>> events =
        tracker_->ReadEvents(task_id_, last_sent_seq_, kWatchBatch);
    if (!events.ok()) return events.status();
    task_finished_ = IsFinished(task->state());
    buffer_ = std::move(events).value();
    next_ = 0;
    // A full batch may have more behind it.
    if (static_cast<int>(buffer_.size()) == kWatchBatch) refill_ = true;
    return absl::OkStatus();
  }

  void FinishOnce(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mutex_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(status);
  }

  Tracker* const tracker_;
  EventHub* const hub_;
  const std::string task_id_;

  absl::Mutex mutex_;
  uint64_t handle_ = 0;  // written once, before any Finish
  bool subscribed_ ABSL_GUARDED_BY(mutex_) = false;
  bool primed_ ABSL_GUARDED_BY(mutex_) = false;
  bool refill_ ABSL_GUARDED_BY(mutex_) = false;
  bool closing_ ABSL_GUARDED_BY(mutex_) = false;
  bool writing_ ABSL_GUARDED_BY(mutex_) = false;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  bool sent_finish_ ABSL_GUARDED_BY(mutex_) = false;
  bool task_finished_ ABSL_GUARDED_BY(mutex_) = false;
  int64_t last_sent_seq_ ABSL_GUARDED_BY(mutex_);
  std::vector<v1::TaskEvent> buffer_ ABSL_GUARDED_BY(mutex_);
  size_t next_ ABSL_GUARDED_BY(mutex_) = 0;
  v1::TaskEvent current_ ABSL_GUARDED_BY(mutex_);
};

// A stream that fails at once (unknown task, bad request).
class FailedWatch final : public grpc::ServerWriteReactor<v1::TaskEvent> {
 public:
  explicit FailedWatch(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

TaskTrackerService::TaskTrackerService(Tracker* tracker, EventHub* hub,
                                       WorkPool* writes)
    : tracker_(tracker), hub_(hub), writes_(writes) {}

grpc::ServerUnaryReactor* TaskTrackerService::SubmitTask(
    grpc::CallbackServerContext* context, const v1::SubmitTaskRequest* request,
    v1::SubmitTaskResponse* response) {
  return FinishOnPool(context, writes_, [this, request, response] {
    return Respond(tracker_->SubmitTask(*request, ""), response);
  });
}

grpc::ServerUnaryReactor* TaskTrackerService::RecordEvent(
    grpc::CallbackServerContext* context, const v1::RecordEventRequest* request,
    v1::RecordEventResponse* response) {
  return FinishOnPool(context, writes_, [this, request, response] {
    return Respond(tracker_->RecordEvent(*request, ""), response);
  });
}

grpc::ServerUnaryReactor* TaskTrackerService::AddNote(
    grpc::CallbackServerContext* context, const v1::AddNoteRequest* request,
    v1::Task* response) {
  return FinishOnPool(context, writes_, [this, request, response] {
    return Respond(tracker_->AddNote(*request, ""), response);
  });
}

grpc::ServerUnaryReactor* TaskTrackerService::GetTask(
    grpc::CallbackServerContext* context, const v1::GetTaskRequest* request,
    v1::Task* response) {
  return FinishNow(context, [this, request, response] {
    return Respond(tracker_->GetTask(*request), response);
  });
}

grpc::ServerUnaryReactor* TaskTrackerService::ListTasks(
    grpc::CallbackServerContext* context, const v1::ListTasksRequest* request,
    v1::ListTasksResponse* response) {
  return FinishNow(context, [this, request, response] {
    return Respond(tracker_->ListTasks(*request), response);
  });
}

grpc::ServerUnaryReactor* TaskTrackerService::ValidateTask(
    grpc::CallbackServerContext* context,
    const v1::ValidateTaskRequest* request,
    v1::ValidateTaskResponse* response) {
  return FinishNow(context, [this, request, response] {
    return Respond(tracker_->ValidateTask(*request), response);
  });
}

grpc::ServerUnaryReactor* TaskTrackerService::ListModels(
    grpc::CallbackServerContext* context, const v1::ListModelsRequest* request,
    v1::ListModelsResponse* response) {
  return FinishNow(context, [this, request, response] {
    *response = tracker_->ListModels(*request);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* TaskTrackerService::GetQueueStatus(
    grpc::CallbackServerContext* context,
    const v1::GetQueueStatusRequest* request, v1::QueueStatus* response) {
  return FinishNow(context, [this, request, response] {
    return Respond(tracker_->GetQueueStatus(*request), response);
  });
}

grpc::ServerUnaryReactor* TaskTrackerService::GetStats(
    grpc::CallbackServerContext* context, const v1::GetStatsRequest* request,
    v1::Stats* response) {
  return FinishNow(context, [this, request, response] {
    return Respond(tracker_->GetStats(*request), response);
  });
}

grpc::ServerWriteReactor<v1::TaskEvent>* TaskTrackerService::WatchTask(
    grpc::CallbackServerContext* context, const v1::WatchTaskRequest* request) {
  absl::StatusOr<v1::Task> task = tracker_->GetSnapshot(request->task_id());
  if (!task.ok()) return new FailedWatch(ToGrpcStatus(task.status()));
  if (request->after_seq() < 0) {
    return new FailedWatch(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                        "after_seq must not be negative"));
  }
  return new WatchReactor(tracker_, hub_, request->task_id(),
                          request->after_seq());
}

}  // namespace tasktrail
