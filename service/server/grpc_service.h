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

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>

#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "grpcpp/support/byte_buffer.h"
#include "service/server/access.h"
#include "service/server/export_stream.h"
#include "service/server/grpc_metrics.h"
#include "service/server/work_pool.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/export_pacer.h"
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

  // A call whose request metadata (keys, values and 32 bytes per entry, as
  // HTTP/2 counts a header list) is larger is refused RESOURCE_EXHAUSTED
  // before authentication. The transport enforces the same limit once a
  // connection has acknowledged the server's settings; this check also
  // covers a client that never does.
  size_t max_metadata_bytes = 8 * 1024;

  // When set, the service's unary methods are counted into these metrics by
  // their handlers (GrpcMetrics::CountInHandler), and the streaming ones are
  // left to its interceptor. REQUIRES: outlives the service.
  GrpcMetrics* metrics = nullptr;
};

// The reactor of one unary call: it deletes itself when the call is done
// and, when its method is counted by its handler, counts the call started
// when it is made and handled, with its status and handling time, when it is
// finished. Its Finish hides ServerUnaryReactor's: finishing a call through
// a UnaryCall pointer always counts it. Finish is called once per call.
class UnaryCall;

// The TaskTracker service with every method raw (ByteBuffer in and out). On
// the wire these are the same methods with the same messages.
using RawTaskTrackerService = v1::TaskTracker::WithRawCallbackMethod_ValidateTask<
    v1::TaskTracker::WithRawCallbackMethod_SubmitTask<v1::TaskTracker::WithRawCallbackMethod_RecordEvent<
        v1::TaskTracker::WithRawCallbackMethod_GetTask<v1::TaskTracker::WithRawCallbackMethod_ListTasks<
            v1::TaskTracker::WithRawCallbackMethod_GetQueueStatus<v1::TaskTracker::WithRawCallbackMethod_WatchTask<
                v1::TaskTracker::WithRawCallbackMethod_AddNote<v1::TaskTracker::WithRawCallbackMethod_ListModels<
                    v1::TaskTracker::WithRawCallbackMethod_GetStats<
                        v1::TaskTracker::WithRawCallbackMethod_ListAudit<
                            v1::TaskTracker::WithRawCallbackMethod_BatchGetTasks<
                                v1::TaskTracker::WithRawCallbackMethod_ClassifyFailure<
                                    v1::TaskTracker::WithRawCallbackMethod_CreateBackup<
                                        v1::TaskTracker::WithRawCallbackMethod_ListBackups<
                                            v1::TaskTracker::WithRawCallbackMethod_PurgeTask<
                                                v1::TaskTracker::
                                                    WithRawCallbackMethod_ExportTasks<
                                                        v1::TaskTracker::
                                                            Service>>>>>>>>>>>>>>>>>;

// Every handler receives the request's bytes and parses them itself, after
// the call is admitted (authenticated, authorized, under the in-flight cap):
// bytes that do not parse as the method's request (malformed protobuf, a
// string field that is not UTF-8) are answered INVALID_ARGUMENT "the request
// does not parse as a tasktrail.v1.X", where gRPC's typed handlers would
// answer UNIMPLEMENTED with no message. Answers are serialized by the
// handler; GetTask's is composed from the stored bytes
// (Tracker::GetStoredTaskBytes), so no Task is parsed and serialized again.
class TaskTrackerService final : public RawTaskTrackerService {
 public:
  // `writes` prepares writes that may wait (see above); `export_reads` (a
  // pool of one thread) reads ExportTasks pages, as fast as
  // `export_pacer` allows, which every other admitted call tells that the
  // server is busy. REQUIRES: all collaborators outlive the service, and
  // the pools outlive the server's Shutdown (an export finishes its stream
  // from them).
  TaskTrackerService(Tracker* tracker, EventHub* hub, WorkPool* writes,
                     WorkPool* export_reads, ExportPacer* export_pacer,
                     EdgeOptions options);

  // Each `request` is the serialized request of the method (for example a
  // v1::SubmitTaskRequest) and `response` receives the serialized answer.
  grpc::ServerUnaryReactor* SubmitTask(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RecordEvent(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetTask(grpc::CallbackServerContext* context,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListTasks(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* AddNote(grpc::CallbackServerContext* context,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ValidateTask(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetQueueStatus(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListAudit(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* BatchGetTasks(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ClassifyFailure(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* CreateBackup(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListBackups(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  // Writes serialized v1::Task messages (ExportReactor in the .cc).
  grpc::ServerWriteReactor<grpc::ByteBuffer>* ExportTasks(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* PurgeTask(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  // Writes serialized v1::TaskEvent messages.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchTask(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;

 private:
  // Refuses request metadata over max_metadata_bytes, authenticates and
  // authorizes the call and admits it under the in-flight cap (the caller
  // must then decrement in_flight_ when done).
  absl::StatusOr<Caller> Admit(grpc::CallbackServerContext* context, Rpc rpc);

  // Admit(), finishing `reactor` with the refusal when the call is refused.
  absl::optional<Caller> AdmitOrFinish(grpc::CallbackServerContext* context,
                                       Rpc rpc, UnaryCall* reactor);

  // The reactor of a new call of the unary method `rpc`.
  UnaryCall* NewUnaryCall(Rpc rpc);

  // True when what `caller` is answered is audited: access control is on
  // and the role is not backend (the gateway's own reads are its business).
  bool Audited(const Caller& caller) const;

  // Records in the audit log, in one write, that `caller` was answered with
  // the content of each of `task_ids` through `rpc`, when Audited(caller).
  // Every RPC that returns task content (a task, its events or its queue
  // status) to a support or admin principal calls it before answering.
  void AuditRead(const Caller& caller,
                 absl::Span<const absl::string_view> task_ids, Rpc rpc);

  // AuditRead of the ids of `tasks`, each once however often it appears.
  void AuditReadTasks(const Caller& caller,
                      const google::protobuf::RepeatedPtrField<v1::Task>& tasks,
                      Rpc rpc);

  // Admits the call, runs `work(caller)` and finishes the call with the
  // status it returns.
  template <typename Work>
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* context, Rpc rpc,
                                  Work work);

  // Serve() for a request that is parsed first: admits the call, parses
  // `bytes` as a Request (INVALID_ARGUMENT when they do not parse), then runs
  // `work(caller, request)`.
  template <typename Request, typename Work>
  grpc::ServerUnaryReactor* ServeParsed(grpc::CallbackServerContext* context,
                                        Rpc rpc, const grpc::ByteBuffer* bytes,
                                        Work work);

  // Admits the call, parses `bytes` as a Request (INVALID_ARGUMENT when they
  // do not parse) and runs `start(request, caller, LockWait::kNever, done)`
  // on this thread; when that gives `done` back (a lock is busy), runs
  // `start(request, caller, LockWait::kWait, done)` on the write pool. The
  // call is finished when `done` is given the answer (a Completion<Response>
  // that serializes it into `response`, having audited the task it returns);
  // the request lives until then.
  template <typename Request, typename Response, typename Start>
  grpc::ServerUnaryReactor* ServeWrite(grpc::CallbackServerContext* context,
                                       Rpc rpc, const grpc::ByteBuffer* bytes,
                                       grpc::ByteBuffer* response, Start start);

  Tracker* const tracker_;
  EventHub* const hub_;
  WorkPool* const writes_;
  WorkPool* const export_reads_;
  ExportPacer* const export_pacer_;
  const EdgeOptions options_;
  // The series of each unary method its handler counts; nullptr for every
  // method without options_.metrics, and for the streaming ones.
  std::array<GrpcMetrics::MethodSeries*, kRpcCount> counted_{};
  std::atomic<int> in_flight_{0};
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_SERVER_GRPC_SERVICE_H_
