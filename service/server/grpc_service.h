// TaskTrackerService: the gRPC edge of tasktrail (callback API). Each handler
// only translates between gRPC and the Tracker. Reads run on gRPC's thread.
// A write is prepared on gRPC's thread when the locks it needs are free, and
// otherwise on a WorkPool (preparing it there may wait for another write to
// the same task or account to become durable); either way it is answered
// from the store's commit thread once durable. No gRPC thread waits for a
// lease or for an fsync; like reads, preparing a write reads the store (the
// disk on a cache miss) and takes short mutexes.
//
// Thread safety: safe for concurrent calls, as gRPC requires.
#ifndef TASKTRAIL_SERVICE_SERVER_GRPC_SERVICE_H_
#define TASKTRAIL_SERVICE_SERVER_GRPC_SERVICE_H_

#include <atomic>
#include <memory>

#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "grpcpp/support/message_allocator.h"
#include "service/server/access.h"
#include "service/server/work_pool.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/tracker.h"
#include "tasktrail/v1/tracker.grpc.pb.h"

namespace tasktrail {

struct EdgeOptions {
  // Bearer-token access control; nullptr turns it off (every caller may do
  // everything; tasktraild allows that on loopback only).
  std::shared_ptr<const AccessTable> access;

  // Calls admitted at once; more are refused with RESOURCE_EXHAUSTED at once
  // instead of queueing without bound.
  int max_in_flight = 1024;

  // A WatchTask stream ends UNAVAILABLE after this long; the client resumes
  // with after_seq. Bounds streams of clients that set no deadline.
  absl::Duration watch_max_lifetime = absl::Hours(1);
};

// GetTask is served raw (ByteBuffer in and out): its answer is the stored
// bytes as they are (Tracker::GetStoredTaskBytes), so no Task is parsed and
// serialized again. On the wire it is the same method with the same
// messages.
class TaskTrackerService final
    : public v1::TaskTracker::WithRawCallbackMethod_GetTask<
          v1::TaskTracker::CallbackService> {
 public:
  // REQUIRES: all collaborators outlive the service.
  TaskTrackerService(Tracker* tracker, EventHub* hub, WorkPool* writes,
                     EdgeOptions options);

  grpc::ServerUnaryReactor* SubmitTask(
      grpc::CallbackServerContext* context,
      const v1::SubmitTaskRequest* request,
      v1::SubmitTaskResponse* response) override;
  grpc::ServerUnaryReactor* RecordEvent(
      grpc::CallbackServerContext* context,
      const v1::RecordEventRequest* request,
      v1::RecordEventResponse* response) override;
  // `request` is a serialized v1::GetTaskRequest, `response` receives a
  // serialized v1::Task. INVALID_ARGUMENT when the request does not parse.
  grpc::ServerUnaryReactor* GetTask(grpc::CallbackServerContext* context,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListTasks(grpc::CallbackServerContext* context,
                                      const v1::ListTasksRequest* request,
                                      v1::ListTasksResponse* response) override;
  grpc::ServerUnaryReactor* AddNote(grpc::CallbackServerContext* context,
                                    const v1::AddNoteRequest* request,
                                    v1::Task* response) override;
  grpc::ServerUnaryReactor* ValidateTask(
      grpc::CallbackServerContext* context,
      const v1::ValidateTaskRequest* request,
      v1::ValidateTaskResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* context,
      const v1::ListModelsRequest* request,
      v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetQueueStatus(
      grpc::CallbackServerContext* context,
      const v1::GetQueueStatusRequest* request,
      v1::QueueStatus* response) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const v1::GetStatsRequest* request,
                                     v1::Stats* response) override;
  grpc::ServerUnaryReactor* ListAudit(grpc::CallbackServerContext* context,
                                      const v1::ListAuditRequest* request,
                                      v1::ListAuditResponse* response) override;
  grpc::ServerWriteReactor<v1::TaskEvent>* WatchTask(
      grpc::CallbackServerContext* context,
      const v1::WatchTaskRequest* request) override;

 private:
  // Authenticates and authorizes the call and admits it under the in-flight
  // cap (the caller must then decrement in_flight_ when done).
  absl::StatusOr<Caller> Admit(grpc::CallbackServerContext* context, Rpc rpc);

  // Admit(), finishing `reactor` with the refusal when the call is refused.
  absl::optional<Caller> AdmitOrFinish(grpc::CallbackServerContext* context,
                                       Rpc rpc,
                                       grpc::ServerUnaryReactor* reactor);

  // Records a support or admin read of a task in the audit log.
  void AuditRead(const Caller& caller, absl::string_view task_id, Rpc rpc);

  // Admits the call, runs `work(caller)` and finishes the call with the
  // status it returns.
  template <typename Work>
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* context, Rpc rpc,
                                  Work work);

  // Admits the call and runs `start(caller, LockWait::kNever, done)` on
  // this thread; when that gives `done` back (a lock is busy), runs
  // `start(caller, LockWait::kWait, done)` on the write pool. The call is
  // finished when `done` is given the answer (a Completion<Response> that
  // fills `response`).
  template <typename Response, typename Start>
  grpc::ServerUnaryReactor* ServeWrite(grpc::CallbackServerContext* context,
                                       Rpc rpc, Response* response,
                                       Start start);

  Tracker* const tracker_;
  EventHub* const hub_;
  WorkPool* const writes_;
  const EdgeOptions options_;
  // GetQueueStatus's request and response live on one arena per call.
  const std::unique_ptr<
      grpc::MessageAllocator<v1::GetQueueStatusRequest, v1::QueueStatus>>
      queue_status_allocator_;
  std::atomic<int> in_flight_{0};
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_SERVER_GRPC_SERVICE_H_
