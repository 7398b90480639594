// TaskTrackerService: the gRPC edge of tasktrail (callback API). Each handler
// only translates between gRPC and the Tracker; writes (which wait for an
// fsync) run on a WorkPool so that gRPC threads never block on the disk.
//
// Thread safety: safe for concurrent calls, as gRPC requires.
#ifndef TASKTRAIL_SERVICE_GRPC_SERVICE_H_
#define TASKTRAIL_SERVICE_GRPC_SERVICE_H_

#include "service/event_hub.h"
#include "service/tracker.h"
#include "service/work_pool.h"
#include "tasktrail/v1/tracker.grpc.pb.h"

namespace tasktrail {

class TaskTrackerService final : public v1::TaskTracker::CallbackService {
 public:
  // REQUIRES: all collaborators outlive the service.
  TaskTrackerService(Tracker* tracker, EventHub* hub, WorkPool* writes);

  grpc::ServerUnaryReactor* SubmitTask(
      grpc::CallbackServerContext* context,
      const v1::SubmitTaskRequest* request,
      v1::SubmitTaskResponse* response) override;
  grpc::ServerUnaryReactor* RecordEvent(
      grpc::CallbackServerContext* context,
      const v1::RecordEventRequest* request,
      v1::RecordEventResponse* response) override;
  grpc::ServerUnaryReactor* GetTask(grpc::CallbackServerContext* context,
                                    const v1::GetTaskRequest* request,
                                    v1::Task* response) override;
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
  grpc::ServerWriteReactor<v1::TaskEvent>* WatchTask(
      grpc::CallbackServerContext* context,
      const v1::WatchTaskRequest* request) override;

 private:
  Tracker* const tracker_;
  EventHub* const hub_;
  WorkPool* const writes_;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_GRPC_SERVICE_H_
