// ExportTasks streams: how an export's pages are read (on an export thread,
// paced, at SCHED_IDLE while the server is busy) and written (one task at a
// time, as the client reads).
#ifndef TASKTRAIL_SERVICE_SERVER_EXPORT_STREAM_H_
#define TASKTRAIL_SERVICE_SERVER_EXPORT_STREAM_H_

#include <functional>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"
#include "service/server/work_pool.h"
#include "service/tracker/export_pacer.h"
#include "service/tracker/tracker.h"

namespace tasktrail {

// The threads that read ExportTasks pages.
struct ExportPools {
  // One thread at normal priority: reads while the server is quiet.
  WorkPool* reads = nullptr;
  // One thread at SCHED_IDLE (WorkPool::Options::idle): reads while the
  // server is busy.
  WorkPool* idle_reads = nullptr;
};

// Runs `work` once: on `idle` (a pool at SCHED_IDLE) if it starts there
// within `patience`, otherwise on `normal`. The closure queued on the pool
// that does not run `work` holds the thread it runs on for up to `patience`
// (`normal`) or not at all (`idle`), and touches nothing but a shared flag.
//
// Thread safety: may be called from any thread.
void RunWhenIdleOrAfter(WorkPool* idle, WorkPool* normal,
                        absl::Duration patience,
                        absl::AnyInvocable<void() &&> work);

// Called with the ids of each page before any of its tasks is written.
using AuditExportPage =
    std::function<void(absl::Span<const absl::string_view>)>;

// A stream that sends the tasks of `cursor` and deletes itself when done.
// REQUIRES: every collaborator outlives the stream.
grpc::ServerWriteReactor<grpc::ByteBuffer>* NewExportStream(
    const Tracker* tracker, ExportPacer* pacer, ExportPools pools,
    WorkPool* writes, ExportCursor cursor, AuditExportPage audit);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_SERVER_EXPORT_STREAM_H_
