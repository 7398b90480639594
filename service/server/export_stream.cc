#include "service/server/export_stream.h"

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/support/slice.h"
#include "service/server/grpc_status.h"
#include "store/task_store.h"

namespace tasktrail {
namespace {

// How much of an export is read ahead of the client: at most this many
// tasks, and no more once they take this many bytes (one task may take
// more: its whole timeline). While the server is busy (ExportPacer::Busy)
// pages are smaller, so that the paced export comes in small bursts of
// reads and writes rather than a whole page at once.
constexpr int kExportPageTasks = 128;
constexpr int kBusyExportPageTasks = 16;
constexpr int64_t kExportPageBytes = int64_t{1} << 20;

// An ExportTasks stream. Its pages are read on the export thread (`reads`,
// one thread shared by every export), each once the pacer allows it and
// inside a store::BulkReadScope (no block cache fill); the page is then
// handed to the write pool (`writes`), which records it in the audit log
// (`audit`) and writes its first task; each further task is written once the
// previous write is done, and the next page is requested when the page's
// last task has been written. A write is done only once the transport has
// taken it, which HTTP/2 flow control holds back while the client does not
// read: a slow client slows the export down, and the server holds at most
// one page per stream. No gRPC thread reads the store for an export, and no
// export reads more than one page at a time from a store's connection pool.
//
// Thread safety: exactly one step runs at a time: ReadPage on the export
// thread, then Deliver on the write pool, then OnWriteDone for each task,
// the last of which requests the next page; the step that finds the stream
// over calls Finish, once. OnCancel, which may run concurrently, only sets
// `cancelled_`, which the next step reads, and an outstanding write then
// completes not ok.
class ExportReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  // REQUIRES: every collaborator outlives the stream.
  ExportReactor(const Tracker* tracker, ExportPacer* pacer, WorkPool* reads,
                WorkPool* writes, ExportCursor cursor, AuditExportPage audit)
      : tracker_(tracker),
        pacer_(pacer),
        reads_(reads),
        writes_(writes),
        cursor_(std::move(cursor)),
        audit_(std::move(audit)) {
    RequestPage();
  }

  void OnWriteDone(bool ok) override {
    if (!ok || cancelled_.load()) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                          "the client stopped reading"));
      return;
    }
    if (next_ < page_.size()) {
      WriteNext();
    } else if (cursor_.done) {
      Finish(grpc::Status::OK);
    } else {
      RequestPage();
    }
  }

  void OnCancel() override { cancelled_.store(true); }

  void OnDone() override { delete this; }

 private:
  void RequestPage() {
    reads_->Schedule([this] { ReadPage(); });
  }

  // On the export thread: waits for the pacer, reads the next page into
  // page_ (read_ says how that went) and hands it to Deliver.
  void ReadPage() {
    if (!cancelled_.load()) {
      const absl::Duration wait = pacer_->WaitBeforeRead();
      if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
    }
    if (cancelled_.load()) {
      read_ = absl::CancelledError("the client cancelled the export");
    } else {
      store::BulkReadScope bulk;
      read_ = tracker_->NextExportPage(
          &cursor_, pacer_->Busy() ? kBusyExportPageTasks : kExportPageTasks,
          kExportPageBytes, &page_);
      if (read_.ok()) pacer_->Charge(static_cast<int64_t>(page_.size()));
    }
    writes_->Schedule([this] { Deliver(); });
  }

  // On the write pool: finishes the stream at its end or on an error;
  // otherwise audits the page and writes its first task.
  void Deliver() {
    if (cancelled_.load()) {
      Finish(grpc::Status::CANCELLED);
      return;
    }
    if (!read_.ok()) {
      const grpc::Status status = ToGrpcStatus(read_);
      LogServerError(Rpc::kExportTasks, status);
      Finish(status);
      return;
    }
    next_ = 0;
    if (page_.empty()) {
      // Every task of the page was purged between the index and its read.
      if (cursor_.done) {
        Finish(grpc::Status::OK);
      } else {
        RequestPage();
      }
      return;
    }
    std::vector<absl::string_view> ids;
    ids.reserve(page_.size());
    for (const ExportedTask& task : page_) ids.push_back(task.task_id);
    audit_(ids);
    WriteNext();
  }

  // Writes page_[next_]. REQUIRES: next_ < page_.size().
  void WriteNext() {
    std::string& bytes = page_[next_++].bytes;
    grpc::Slice slice(bytes.data(), bytes.size());
    current_ = grpc::ByteBuffer(&slice, 1);
    std::string().swap(bytes);  // sent: its memory is not needed
    StartWrite(&current_);
  }

  const Tracker* const tracker_;
  ExportPacer* const pacer_;
  WorkPool* const reads_;
  WorkPool* const writes_;
  ExportCursor cursor_;
  const AuditExportPage audit_;
  std::atomic<bool> cancelled_{false};
  absl::Status read_;  // how the last ReadPage went
  std::vector<ExportedTask> page_;
  size_t next_ = 0;  // the next task of page_ to write
  // The task being written; kept until its write is done.
  grpc::ByteBuffer current_;
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* NewExportStream(
    const Tracker* tracker, ExportPacer* pacer, WorkPool* reads,
    WorkPool* writes, ExportCursor cursor, AuditExportPage audit) {
  return new ExportReactor(tracker, pacer, reads, writes, std::move(cursor),
                           std::move(audit));
}

}  // namespace tasktrail
