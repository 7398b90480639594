// ExportTasks streams: how an export's pages are read (on the export
// thread, paced) and written (one task at a time, as the client reads).
#ifndef TASKTRAIL_SERVICE_SERVER_EXPORT_STREAM_H_
#define TASKTRAIL_SERVICE_SERVER_EXPORT_STREAM_H_

#include <functional>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"
#include "service/server/work_pool.h"
#include "service/tracker/export_pacer.h"
#include "service/tracker/tracker.h"

namespace tasktrail {

// Called with the ids of each page before any of its tasks is written.
using AuditExportPage =
    std::function<void(absl::Span<const absl::string_view>)>;

// A stream that sends the tasks of `cursor` and deletes itself when done:
// pages read on `reads` (one thread), as fast as `pacer` allows, and handed
// to `writes`. REQUIRES: every collaborator outlives the stream.
grpc::ServerWriteReactor<grpc::ByteBuffer>* NewExportStream(
    const Tracker* tracker, ExportPacer* pacer, WorkPool* reads,
    WorkPool* writes, ExportCursor cursor, AuditExportPage audit);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_SERVER_EXPORT_STREAM_H_
