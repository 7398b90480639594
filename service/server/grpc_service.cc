#include "service/server/grpc_service.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "google/protobuf/arena.h"
#include "grpcpp/alarm.h"
#include "service/server/grpc_status.h"
#include "service/tracker/watch_cursor.h"
#include "store/task_store.h"

namespace tasktrail {
namespace {

// GetQueueStatus's request and answer live on one arena whose first block is
// on the handler's stack: what a QueueStatus with its request takes, with
// room to spare (a call that needs more gets further blocks from the heap).
constexpr size_t kQueueStatusArenaBytes = 2048;

// `message` serialized, as a typed method would send it.
template <typename Message>
grpc::ByteBuffer Serialized(const Message& message) {
  grpc::ByteBuffer bytes;
  bool own_buffer = false;
  // Serializing a valid message into memory cannot fail.
  grpc::SerializationTraits<Message>::Serialize(message, &bytes, &own_buffer)
      .IgnoreError();
  return bytes;
}

// Serializes `message` into `response` as the call's answer.
template <typename Message>
grpc::Status Reply(const Message& message, grpc::ByteBuffer* response) {
  grpc::ByteBuffer bytes = Serialized(message);
  response->Swap(&bytes);
  return grpc::Status::OK;
}

// Serializes a domain result into `response`, or converts its error.
template <typename T>
grpc::Status Respond(const absl::StatusOr<T>& result,
                     grpc::ByteBuffer* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  return Reply(*result, response);
}

// The id of the task a write answers with (and so returns the content of).
const std::string& ReturnedTaskId(const v1::SubmitTaskResponse& response) {
  return response.task().task_id();
}
const std::string& ReturnedTaskId(const v1::RecordEventResponse& response) {
  return response.task().task_id();
}
const std::string& ReturnedTaskId(const v1::Task& task) {
  return task.task_id();
}

// Parses a request that arrived as bytes, as a typed method would; false
// when it does not parse. A string field that is not UTF-8 makes libprotobuf
// log an error line (tasktraild rate-limits those).
template <typename Request>
bool ParseRequest(const grpc::ByteBuffer& bytes, Request* request) {
  grpc::ByteBuffer readable(bytes);  // shares the slices; Deserialize drains it
  return grpc::SerializationTraits<Request>::Deserialize(&readable, request)
      .ok();
}

// The answer to request bytes that do not parse as a Request.
template <typename Request>
grpc::Status NotParsed() {
  return grpc::Status(
      grpc::StatusCode::INVALID_ARGUMENT,
      absl::StrCat("the request does not parse as a ",
                   Request::descriptor()->full_name(),
                   " (malformed protobuf, or a string field that is not "
                   "valid UTF-8)"));
}

// A WatchTask stream: moves what its WatchCursor decides (what to send,
// when the stream ends) onto the wire. The cursor's hub subscription brings
// the live entries: its listener, on the hub's dispatch thread, starts the
// next write when none is outstanding (never reading the store there), and
// OnWriteDone starts the one after. A stream whose subscription is cut (a
// watcher that fell a whole buffer behind, or the server shutting down)
// finishes at once, even with a write outstanding that the client does not
// read.
//
// Thread safety: the hub's listener, gRPC's callbacks and Pump may run on
// different threads; all state is guarded by mutex_. Finish is called once.
class WatchReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  WatchReactor(EventHub* hub, absl::string_view task_id, WatchCursor cursor,
               absl::Duration max_lifetime)
      : hub_(hub), cursor_(std::move(cursor)) {
    int64_t known_seq;
    {
      absl::MutexLock lock(&mutex_);
      known_seq = cursor_.known_seq();
    }
    std::shared_ptr<EventHub::Subscription> subscription = hub_->Subscribe(
        task_id, [this] { Pump(/*may_read_store=*/false); }, known_seq);
    {
      absl::MutexLock lock(&mutex_);
      subscription_ = subscription;
      cursor_.Follow(std::move(subscription));
    }
    // The stream ends UNAVAILABLE after its maximum lifetime; the client
    // resumes with after_seq. The alarm's callback runs exactly once (also
    // when cancelled), so it holds one of the two references.
    lifetime_.Set(
        std::chrono::system_clock::now() +
            std::chrono::microseconds(absl::ToInt64Microseconds(max_lifetime)),
        [this, max_lifetime](bool expired) {
          if (expired) {
            absl::Status interrupted;
            {
              absl::MutexLock lock(&mutex_);
              interrupted = cursor_.Interrupted(
                  absl::StrCat("the stream reached its maximum lifetime of ",
                               absl::FormatDuration(max_lifetime)));
            }
            FinishOnce(ToGrpcStatus(interrupted));
          }
          Release();
        });
    {
      // From here on the listener may pump too (and finish the stream).
      absl::MutexLock lock(&mutex_);
      subscribed_ = true;
    }
    Pump(/*may_read_store=*/true);
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
    Pump(/*may_read_store=*/true);
  }

  void OnCancel() override { FinishOnce(grpc::Status::CANCELLED); }

  void OnDone() override {
    std::shared_ptr<EventHub::Subscription> subscription;
    {
      absl::MutexLock lock(&mutex_);
      subscription = std::move(subscription_);
    }
    hub_->Unsubscribe(subscription);  // the listener is not running after
    lifetime_.Cancel();
    Release();
  }

 private:
  // Sends the next event, or finishes the stream when nothing remains or
  // its subscription was cut. gRPC is called outside mutex_, so that a
  // reaction run inline cannot deadlock.
  void Pump(bool may_read_store) {
    bool write = false;
    absl::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mutex_);
      if (!subscribed_ || finished_) return;
      if (writing_) {
        if (absl::optional<absl::Status> cut = cursor_.Cut()) {
          finish = ToGrpcStatus(*cut);
        }
      } else {
        WatchCursor::Step step = cursor_.Next(may_read_store);
        switch (step.action) {
          case WatchCursor::Action::kSend: {
            grpc::Slice slice(step.event->bytes.data(),
                              step.event->bytes.size());
            current_bytes_ = grpc::ByteBuffer(&slice, 1);
            write = true;
            writing_ = true;
            break;
          }
          case WatchCursor::Action::kEnd:
            finish = ToGrpcStatus(step.status);
            break;
          case WatchCursor::Action::kWait:
            break;
        }
      }
      if (finish.has_value()) finished_ = true;
    }
    // A stream that ends UNAVAILABLE (cut for falling behind, the server
    // shutting down) asks its client to resume with after_seq; that is not
    // a failure.
    if (finish.has_value() &&
        finish->error_code() != grpc::StatusCode::UNAVAILABLE) {
      LogServerError(Rpc::kWatchTask, *finish);
    }
    if (write) StartWrite(&current_bytes_);
    if (finish.has_value()) Finish(*finish);
  }

  // Deletes this once both OnDone and the alarm's callback have run.
  void Release() {
    if (references_.fetch_sub(1) == 1) delete this;
  }

  void FinishOnce(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mutex_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(status);
  }

  EventHub* const hub_;
  grpc::Alarm lifetime_;
  std::atomic<int> references_{2};

  absl::Mutex mutex_;
  std::shared_ptr<EventHub::Subscription> subscription_ ABSL_GUARDED_BY(mutex_);
  bool subscribed_ ABSL_GUARDED_BY(mutex_) = false;
  bool writing_ ABSL_GUARDED_BY(mutex_) = false;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  WatchCursor cursor_ ABSL_GUARDED_BY(mutex_);
  // The event being written, serialized; kept until its write is done.
  grpc::ByteBuffer current_bytes_ ABSL_GUARDED_BY(mutex_);
};

// Allocates each call's request and response on one protobuf arena whose
// first block is part of the holder. The holder is one heap allocation (by
// default gRPC places the messages on the call's own arena without one);
// in exchange the submessages and string objects of both messages, each a
// heap allocation by default, come from the block (a string's characters
// past 15 bytes still come from the heap). The handler must build its
// answer in the response it is given (a message moved in from the heap
// would be copied). Thread safety: AllocateMessages may be called
// concurrently; each holder belongs to one call.
template <typename Request, typename Response>
class ArenaMessageAllocator final
    : public grpc::MessageAllocator<Request, Response> {
 public:
  grpc::MessageHolder<Request, Response>* AllocateMessages() override {
    return new Holder();
  }

 private:
  // What a QueueStatus with its request takes, with room to spare; a call
  // that needs more gets further blocks from the heap.
  static constexpr size_t kFirstBlockBytes = 2048;

  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    Holder() : arena_(FirstBlock(first_block_)) {
      this->set_request(
          google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(
          google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override { delete this; }

   private:
    static google::protobuf::ArenaOptions FirstBlock(char* block) {
      google::protobuf::ArenaOptions options;
      options.initial_block = block;
      options.initial_block_size = kFirstBlockBytes;
      return options;
    }

    alignas(16) char first_block_[kFirstBlockBytes];
    google::protobuf::Arena arena_;  // after the block it starts with
  };
};

// A stream that fails at once (unknown task, bad request, refused caller).
class FailedStream final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit FailedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

class UnaryCall final : public grpc::ServerUnaryReactor {
 public:
  // `metrics` and `series` are both set or both nullptr (not counted).
  UnaryCall(GrpcMetrics* metrics, GrpcMetrics::MethodSeries* series)
      : metrics_(metrics), series_(series) {
    if (series_ != nullptr) {
      start_ = std::chrono::steady_clock::now();
      GrpcMetrics::CountStarted(series_);
    }
  }

  void Finish(grpc::Status status) {
    if (series_ != nullptr) {
      metrics_->CountHandled(series_, status.error_code(),
                             std::chrono::duration<double>(
                                 std::chrono::steady_clock::now() - start_)
                                 .count());
    }
    grpc::ServerUnaryReactor::Finish(std::move(status));
  }

  void OnDone() override { delete this; }

 private:
  GrpcMetrics* const metrics_;
  GrpcMetrics::MethodSeries* const series_;
  std::chrono::steady_clock::time_point start_;
};

TaskTrackerService::TaskTrackerService(Tracker* tracker, EventHub* hub,
                                       WorkPool* writes, WorkPool* export_reads,
                                       ExportPacer* export_pacer,
                                       EdgeOptions options)
    : tracker_(tracker),
      hub_(hub),
      writes_(writes),
      export_reads_(export_reads),
      export_pacer_(export_pacer),
      options_(std::move(options)) {
  if (options_.metrics == nullptr) return;
  for (int i = 0; i < kRpcCount; ++i) {
    const Rpc rpc = static_cast<Rpc>(i);
    if (rpc == Rpc::kWatchTask || rpc == Rpc::kExportTasks) continue;
    counted_[i] = options_.metrics->CountInHandler(absl::StrCat(
        "/", v1::TaskTracker::service_full_name(), "/", RpcName(rpc)));
  }
}

UnaryCall* TaskTrackerService::NewUnaryCall(Rpc rpc) {
  GrpcMetrics::MethodSeries* series = counted_[static_cast<int>(rpc)];
  return new UnaryCall(series == nullptr ? nullptr : options_.metrics, series);
}

absl::StatusOr<Caller> TaskTrackerService::Admit(
    grpc::CallbackServerContext* context, Rpc rpc) {
  const auto& metadata = context->client_metadata();
  size_t metadata_bytes = 0;
  for (const auto& [key, value] : metadata) {
    metadata_bytes += key.size() + value.size() + 32;
  }
  if (metadata_bytes > options_.max_metadata_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the request metadata is ", metadata_bytes, " bytes; at most ",
        options_.max_metadata_bytes, " are accepted"));
  }
  Caller caller;
  if (options_.access != nullptr) {
    absl::string_view authorization;
    auto it = metadata.find("authorization");
    if (it != metadata.end()) {
      authorization = absl::string_view(it->second.data(), it->second.size());
    }
    absl::StatusOr<Caller> authenticated =
        options_.access->Authenticate(authorization);
    if (!authenticated.ok()) return authenticated.status();
    caller = *std::move(authenticated);
    absl::Status allowed = Authorize(caller, rpc);
    if (!allowed.ok()) return allowed;
  }
  if (rpc != Rpc::kExportTasks) export_pacer_->ForegroundCall();
  if (in_flight_.fetch_add(1) >= options_.max_in_flight) {
    in_flight_.fetch_sub(1);
    return absl::ResourceExhaustedError(
        absl::StrCat("tasktraild is overloaded (", options_.max_in_flight,
                     " calls in flight); retry with backoff"));
  }
  return caller;
}

absl::optional<Caller> TaskTrackerService::AdmitOrFinish(
    grpc::CallbackServerContext* context, Rpc rpc, UnaryCall* reactor) {
  absl::StatusOr<Caller> caller = Admit(context, rpc);
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return absl::nullopt;
  }
  return *std::move(caller);
}

bool TaskTrackerService::Audited(const Caller& caller) const {
  return options_.access != nullptr && caller.role != Role::kBackend;
}

void TaskTrackerService::AuditRead(const Caller& caller,
                                   absl::Span<const absl::string_view> task_ids,
                                   Rpc rpc) {
  if (!Audited(caller)) return;
  // A lost audit record must not fail the read it describes.
  tracker_
      ->RecordAudit(task_ids, caller.name, RoleName(caller.role), RpcName(rpc))
      .IgnoreError();
}

void TaskTrackerService::AuditReadTasks(
    const Caller& caller,
    const google::protobuf::RepeatedPtrField<v1::Task>& tasks, Rpc rpc) {
  if (!Audited(caller)) return;
  absl::flat_hash_set<absl::string_view> seen;
  std::vector<absl::string_view> returned;
  returned.reserve(tasks.size());
  for (const v1::Task& task : tasks) {
    if (seen.insert(task.task_id()).second) returned.push_back(task.task_id());
  }
  AuditRead(caller, returned, rpc);
}

template <typename Work>
grpc::ServerUnaryReactor* TaskTrackerService::Serve(
    grpc::CallbackServerContext* context, Rpc rpc, Work work) {
  UnaryCall* reactor = NewUnaryCall(rpc);
  absl::optional<Caller> caller = AdmitOrFinish(context, rpc, reactor);
  if (!caller.has_value()) return reactor;
  const grpc::Status status = work(*caller);
  LogServerError(rpc, status);
  in_flight_.fetch_sub(1);
  reactor->Finish(status);
  return reactor;
}

template <typename Request, typename Work>
grpc::ServerUnaryReactor* TaskTrackerService::ServeParsed(
    grpc::CallbackServerContext* context, Rpc rpc,
    const grpc::ByteBuffer* bytes, Work work) {
  return Serve(context, rpc, [bytes, &work](const Caller& caller) {
    Request request;
    if (!ParseRequest(*bytes, &request)) return NotParsed<Request>();
    return work(caller, request);
  });
}

template <typename Request, typename Response, typename Start>
grpc::ServerUnaryReactor* TaskTrackerService::ServeWrite(
    grpc::CallbackServerContext* context, Rpc rpc,
    const grpc::ByteBuffer* bytes, grpc::ByteBuffer* response, Start start) {
  UnaryCall* reactor = NewUnaryCall(rpc);
  absl::optional<Caller> caller = AdmitOrFinish(context, rpc, reactor);
  if (!caller.has_value()) return reactor;
  // Shared by `start` and `done`: the request outlives whichever ends last.
  auto request = std::make_shared<Request>();
  if (!ParseRequest(*bytes, request.get())) {
    in_flight_.fetch_sub(1);
    reactor->Finish(NotParsed<Request>());
    return reactor;
  }
  // Who is audited as having been returned the task, if anyone.
  absl::optional<Caller> reader;
  if (Audited(*caller)) reader = *caller;
  Completion<Response> done =
      [this, reactor, response, request, rpc,
       reader = std::move(reader)](absl::StatusOr<Response> result) {
        // On the commit thread, this is an unsynced write of one entry.
        if (result.ok() && reader.has_value()) {
          AuditRead(*reader, {ReturnedTaskId(*result)}, rpc);
        }
        const grpc::Status status = Respond(result, response);
        LogServerError(rpc, status);
        in_flight_.fetch_sub(1);
        reactor->Finish(status);
      };
  done = start(*request, *caller, LockWait::kNever, std::move(done));
  if (done == nullptr) return reactor;
  writes_->Schedule([request, caller = *std::move(caller),
                     start = std::move(start),
                     done = std::move(done)]() mutable {
    // A write that may wait is never given back; if it were, the call must
    // still be answered.
    done = start(*request, caller, LockWait::kWait, std::move(done));
    if (done != nullptr) {
      std::move(done)(absl::InternalError("a write was not taken"));
    }
  });
  return reactor;
}

grpc::ServerUnaryReactor* TaskTrackerService::SubmitTask(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeWrite<v1::SubmitTaskRequest, v1::SubmitTaskResponse>(
      context, Rpc::kSubmitTask, request, response,
      [this](const v1::SubmitTaskRequest& request, const Caller& caller,
             LockWait wait, Completion<v1::SubmitTaskResponse> done) {
        return tracker_->SubmitTask(request, caller.name, wait,
                                    std::move(done));
      });
}

grpc::ServerUnaryReactor* TaskTrackerService::RecordEvent(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeWrite<v1::RecordEventRequest, v1::RecordEventResponse>(
      context, Rpc::kRecordEvent, request, response,
      [this](const v1::RecordEventRequest& request, const Caller& caller,
             LockWait wait, Completion<v1::RecordEventResponse> done) {
        return tracker_->RecordEvent(request, caller.name, wait,
                                     std::move(done));
      });
}

grpc::ServerUnaryReactor* TaskTrackerService::AddNote(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeWrite<v1::AddNoteRequest, v1::Task>(
      context, Rpc::kAddNote, request, response,
      [this](const v1::AddNoteRequest& request, const Caller& caller,
             LockWait wait, Completion<v1::Task> done) {
        return tracker_->AddNote(request, caller.name, wait, std::move(done));
      });
}

grpc::ServerUnaryReactor* TaskTrackerService::GetTask(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeParsed<v1::GetTaskRequest>(
      context, Rpc::kGetTask, request,
      [this, response](const Caller& caller,
                       const v1::GetTaskRequest& request) {
        absl::StatusOr<std::string> task =
            tracker_->GetStoredTaskBytes(request);
        if (!task.ok()) return ToGrpcStatus(task.status());
        AuditRead(caller, {request.task_id()}, Rpc::kGetTask);
        grpc::Slice slice(*task);
        *response = grpc::ByteBuffer(&slice, 1);
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* TaskTrackerService::ListTasks(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeParsed<v1::ListTasksRequest>(
      context, Rpc::kListTasks, request,
      [this, response](const Caller& caller,
                       const v1::ListTasksRequest& request) {
        absl::StatusOr<v1::ListTasksResponse> listed =
            tracker_->ListTasks(request);
        if (listed.ok())
          AuditReadTasks(caller, listed->tasks(), Rpc::kListTasks);
        return Respond(listed, response);
      });
}

grpc::ServerUnaryReactor* TaskTrackerService::ValidateTask(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeParsed<v1::ValidateTaskRequest>(
      context, Rpc::kValidateTask, request,
      [this, response](const Caller&, const v1::ValidateTaskRequest& request) {
        return Respond(tracker_->ValidateTask(request), response);
      });
}

grpc::ServerUnaryReactor* TaskTrackerService::ListModels(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeParsed<v1::ListModelsRequest>(
      context, Rpc::kListModels, request,
      [this, response](const Caller&, const v1::ListModelsRequest& request) {
        return Respond(tracker_->ListModels(request), response);
      });
}

grpc::ServerUnaryReactor* TaskTrackerService::GetQueueStatus(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response) {
  return Serve(
      context, Rpc::kGetQueueStatus,
      [this, request_bytes, response](const Caller& caller) {
        alignas(16) char first_block[kQueueStatusArenaBytes];
        google::protobuf::ArenaOptions options;
        options.initial_block = first_block;
        options.initial_block_size = sizeof(first_block);
        google::protobuf::Arena arena(options);
        auto* request =
            google::protobuf::Arena::CreateMessage<v1::GetQueueStatusRequest>(
                &arena);
        if (!ParseRequest(*request_bytes, request)) {
          return NotParsed<v1::GetQueueStatusRequest>();
        }
        auto* status =
            google::protobuf::Arena::CreateMessage<v1::QueueStatus>(&arena);
        const absl::Status judged = tracker_->GetQueueStatus(*request, status);
        if (!judged.ok()) return ToGrpcStatus(judged);
        AuditRead(caller, {request->task_id()}, Rpc::kGetQueueStatus);
        return Reply(*status, response);
      });
}

grpc::ServerUnaryReactor* TaskTrackerService::GetStats(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeParsed<v1::GetStatsRequest>(
      context, Rpc::kGetStats, request,
      [this, response](const Caller&, const v1::GetStatsRequest& request) {
        return Respond(tracker_->GetStats(request), response);
      });
}

grpc::ServerUnaryReactor* TaskTrackerService::ListAudit(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeParsed<v1::ListAuditRequest>(
      context, Rpc::kListAudit, request,
      [this, response](const Caller&, const v1::ListAuditRequest& request) {
        return Respond(tracker_->ListAudit(request), response);
      });
}

grpc::ServerUnaryReactor* TaskTrackerService::BatchGetTasks(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeParsed<v1::BatchGetTasksRequest>(
      context, Rpc::kBatchGetTasks, request,
      [this, response](const Caller& caller,
                       const v1::BatchGetTasksRequest& request) {
        absl::StatusOr<v1::BatchGetTasksResponse> found =
            tracker_->BatchGetTasks(request);
        if (found.ok()) {
          AuditReadTasks(caller, found->tasks(), Rpc::kBatchGetTasks);
        }
        return Respond(found, response);
      });
}

grpc::ServerUnaryReactor* TaskTrackerService::ClassifyFailure(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeParsed<v1::ClassifyFailureRequest>(
      context, Rpc::kClassifyFailure, request,
      [this, response](const Caller&,
                       const v1::ClassifyFailureRequest& request) {
        return Respond(tracker_->ClassifyFailure(request), response);
      });
}

// A backup copies the store's files, which may take a while: it runs on the
// write pool, never on a gRPC thread.
grpc::ServerUnaryReactor* TaskTrackerService::CreateBackup(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  UnaryCall* reactor = NewUnaryCall(Rpc::kCreateBackup);
  if (!AdmitOrFinish(context, Rpc::kCreateBackup, reactor).has_value()) {
    return reactor;
  }
  v1::CreateBackupRequest parsed;
  if (!ParseRequest(*request, &parsed)) {
    in_flight_.fetch_sub(1);
    reactor->Finish(NotParsed<v1::CreateBackupRequest>());
    return reactor;
  }
  writes_->Schedule([this, reactor, response] {
    const grpc::Status status = Respond(tracker_->CreateBackup(), response);
    in_flight_.fetch_sub(1);
    reactor->Finish(status);
  });
  return reactor;
}

grpc::ServerUnaryReactor* TaskTrackerService::ListBackups(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeParsed<v1::ListBackupsRequest>(
      context, Rpc::kListBackups, request,
      [this, response](const Caller&, const v1::ListBackupsRequest&) {
        return Respond(tracker_->ListBackups(), response);
      });
}

// A purge waits for the task's locks and its durable writes: it runs on the
// write pool, never on a gRPC thread.
grpc::ServerUnaryReactor* TaskTrackerService::PurgeTask(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  UnaryCall* reactor = NewUnaryCall(Rpc::kPurgeTask);
  absl::optional<Caller> caller =
      AdmitOrFinish(context, Rpc::kPurgeTask, reactor);
  if (!caller.has_value()) return reactor;
  v1::PurgeTaskRequest parsed;
  if (!ParseRequest(*request, &parsed)) {
    in_flight_.fetch_sub(1);
    reactor->Finish(NotParsed<v1::PurgeTaskRequest>());
    return reactor;
  }
  writes_->Schedule([this, reactor, response, parsed = std::move(parsed),
                     principal = caller->name] {
    const grpc::Status status =
        Respond(tracker_->PurgeTask(parsed, principal), response);
    in_flight_.fetch_sub(1);
    reactor->Finish(status);
  });
  return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* TaskTrackerService::WatchTask(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* bytes) {
  absl::StatusOr<Caller> caller = Admit(context, Rpc::kWatchTask);
  if (!caller.ok()) return new FailedStream(ToGrpcStatus(caller.status()));
  // A stream is not counted as in flight for its whole life: its cost is a
  // subscription, bounded by the stream lifetime cap.
  in_flight_.fetch_sub(1);
  v1::WatchTaskRequest request;
  if (!ParseRequest(*bytes, &request)) {
    return new FailedStream(NotParsed<v1::WatchTaskRequest>());
  }
  absl::StatusOr<WatchCursor> cursor =
      WatchCursor::Open(tracker_, request.task_id(), request.after_seq());
  if (!cursor.ok()) {
    const grpc::Status status = ToGrpcStatus(cursor.status());
    LogServerError(Rpc::kWatchTask, status);
    return new FailedStream(status);
  }
  AuditRead(*caller, {request.task_id()}, Rpc::kWatchTask);
  return new WatchReactor(hub_, request.task_id(), *std::move(cursor),
                          options_.watch_max_lifetime);
}

// Export audit: each task exported is recorded in its own audit log, so that
// `tasktrail audit ID` shows who exported it, the same way every other read
// of task content is shown. The entries of a page (up to kExportPageTasks)
// go in one unsynced write, as RecordAudit writes those of ListTasks and
// BatchGetTasks: no fsync per page, and a lost entry (power failure) never
// fails the export. Its price is space: a million exported tasks add a
// million entries (about 100 bytes each with their keys) to the audit
// family. A single entry per call (in a separate export log)
// would be cheaper but would leave `audit ID` unable to answer whether a
// task left through an export without replaying every export's range.
// Measured in docs/PERFORMANCE.md ("Export"): with them, `tasktrail export`
// ran at 0.82 of its rate without access control, within that machine's
// noise and below the CLI's own JSON ceiling.
grpc::ServerWriteReactor<grpc::ByteBuffer>* TaskTrackerService::ExportTasks(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* bytes) {
  absl::StatusOr<Caller> caller = Admit(context, Rpc::kExportTasks);
  if (!caller.ok()) return new FailedStream(ToGrpcStatus(caller.status()));
  // As a WatchTask stream, an export is not counted as in flight for its
  // whole life: its cost is one page held in memory.
  in_flight_.fetch_sub(1);
  v1::ExportTasksRequest request;
  if (!ParseRequest(*bytes, &request)) {
    return new FailedStream(NotParsed<v1::ExportTasksRequest>());
  }
  absl::StatusOr<ExportCursor> cursor = tracker_->StartExport(request);
  if (!cursor.ok()) return new FailedStream(ToGrpcStatus(cursor.status()));
  return NewExportStream(tracker_, export_pacer_, export_reads_, writes_,
                         *std::move(cursor),
                         [this, caller = *std::move(caller)](
                             absl::Span<const absl::string_view> task_ids) {
                           AuditRead(caller, task_ids, Rpc::kExportTasks);
                         });
}

}  // namespace tasktrail
