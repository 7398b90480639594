// The commands that read many tasks for the books: `charges` (an account's
// charges, adjustments and refunds), `owed` (the list to refund) and
// `export` (every task as NDJSON, streamed).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/command_support.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/json_line.h"

namespace tasktrail::cli {
namespace {

// Lists every task of `request` oldest first, with no work bound (for an
// index that holds exactly the tasks wanted), and prints them: with --json
// one line of JSON per task (`json_row` makes it: NDJSON), else `text` of
// the tasks with their control characters made visible. Returns the exit
// status: kExitOther when a row cannot be made.
int ListAndPrintRows(
    const GlobalOptions& global, v1::ListTasksRequest request,
    const std::function<absl::StatusOr<std::string>(const v1::Task&)>& json_row,
    const std::function<std::string(
        const google::protobuf::RepeatedPtrField<v1::Task>&)>& text) {
  request.set_oldest_first(true);
  v1::ListTasksResponse tasks;
  if (const int listed = ListTaskPages(global, request, PageBounds{}, &tasks);
      listed != kExitOk) {
    return listed;
  }
  if (!global.json) {
    EscapeControlCharactersIn(&tasks);
    Print(text(tasks.tasks()));
    return kExitOk;
  }
  for (const v1::Task& task : tasks.tasks()) {
    absl::StatusOr<std::string> line = json_row(task);
    if (!line.ok()) {
      PrintError(absl::StrCat("cannot print the answer as JSON: ",
                              line.status().message()));
      return kExitOther;
    }
    Print(absl::StrCat(*line, "\n"));
  }
  return kExitOk;
}

}  // namespace

int RunCharges(const GlobalOptions& global, const ChargesArgs& args) {
  v1::ListTasksRequest request;
  if (const int set = SetCreateTimeRange(args.since, args.until, &request);
      set != kExitOk) {
    return set;
  }
  request.set_account_id(args.account);
  // The account index holds exactly the account's tasks in creation order.
  return ListAndPrintRows(global, request, FormatChargeRowJson, FormatCharges);
}

int RunOwed(const GlobalOptions& global, const OwedArgs& args) {
  v1::ListTasksRequest request;
  request.set_owed(true);
  if (const int set = SetOlderThan(args.older_than, request.mutable_owed_for());
      set != kExitOk) {
    return set;
  }
  request.set_model(args.model);
  // The owed index holds exactly the owed tasks.
  const FormatOptions options = MakeFormatOptions(global);
  return ListAndPrintRows(
      global, request,
      [&options](const v1::Task& task) {
        return FormatOwedRowJson(task, options.now);
      },
      [&options](const google::protobuf::RepeatedPtrField<v1::Task>& tasks) {
        return FormatOwed(tasks, options);
      });
}

namespace {

// Shows how far an export is, on one line of stderr rewritten in place, at
// most every half second; only when stderr is a terminal.
class ExportProgress {
 public:
  ExportProgress() : shown_(isatty(STDERR_FILENO) == 1) {}

  void Exported(int64_t count, const v1::Task& task) {
    if (!shown_) return;
    const absl::Time now = absl::Now();
    if (now - last_shown_ < absl::Milliseconds(500)) return;
    last_shown_ = now;
    std::fprintf(
        stderr, "\rexported %lld tasks, up to %s (created %s)",
        static_cast<long long>(count), task.task_id().c_str(),
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                         absl::FromUnixSeconds(task.create_time().seconds()),
                         absl::UTCTimeZone())
            .c_str());
  }

  // Ends the line, if one was shown.
  void Done(int64_t count) {
    if (!shown_) return;
    std::fprintf(stderr, "\rexported %lld tasks%30s\n",
                 static_cast<long long>(count), "");
  }

 private:
  const bool shown_;
  absl::Time last_shown_ = absl::InfinitePast();
};

// Tasks received before they are handed to the printer at once.
constexpr size_t kExportBatchTasks = 256;

// Writes exported tasks to stdout as NDJSON on its own thread, through a
// large buffer, with the progress line; a batch is printed while the next
// one is received. Print and Close are called from one thread.
class ExportPrinter {
 public:
  struct Outcome {
    int64_t count = 0;         // tasks written
    std::string last_task_id;  // of the last task written
    std::string failure;       // why printing stopped early; empty: it did not
  };

  ExportPrinter() : thread_([this] { Run(); }) {}
  ~ExportPrinter() { Close(); }

  // Hands the first `count` tasks of `*batch` to the printer and gives back
  // the batch printed before (the same size, to be refilled). False once
  // printing has failed: stop receiving and Close.
  bool Print(std::vector<v1::Task>* batch, size_t count) {
    absl::MutexLock lock(&mutex_);
    mutex_.Await(absl::Condition(
        +[](ExportPrinter* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mutex_) {
          return !p->pending_ || p->stopped_;
        },
        this));
    if (stopped_) return false;
    batch->swap(pending_batch_);
    batch->resize(std::max(pending_batch_.size(), kExportBatchTasks));
    pending_count_ = count;
    pending_ = true;
    return true;
  }

  // Prints what was handed over, flushes stdout, ends the progress line and
  // joins the thread. Idempotent.
  Outcome Close() {
    {
      absl::MutexLock lock(&mutex_);
      closing_ = true;
    }
    if (thread_.joinable()) thread_.join();
    return outcome_;
  }

 private:
  void Run() {
    ExportProgress progress;
    JsonLineWriter writer;
    std::vector<v1::Task> batch;
    std::string out;  // lines not yet written to stdout
    out.reserve(kFlushBytes + (kFlushBytes >> 2));
    int64_t buffered = 0;       // tasks in `out`
    std::string buffered_last;  // the id of the last of them
    while (true) {
      size_t count = 0;
      {
        absl::MutexLock lock(&mutex_);
        mutex_.Await(absl::Condition(
            +[](ExportPrinter* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mutex_) {
              return p->pending_ || p->closing_;
            },
            this));
        if (!pending_) break;
        batch.swap(pending_batch_);
        count = pending_count_;
        pending_ = false;
      }
      for (size_t i = 0; i < count && outcome_.failure.empty(); ++i) {
        const v1::Task& task = batch[i];
        if (absl::Status line = writer.AppendLine(task, &out); !line.ok()) {
          Flush(&out, &buffered, &buffered_last);  // the lines before it
          if (outcome_.failure.empty()) {
            outcome_.failure =
                absl::StrCat("cannot print task ", task.task_id(),
                             " as JSON: ", line.message());
          }
          break;
        }
        ++buffered;
        buffered_last = task.task_id();
        if (out.size() >= kFlushBytes) Flush(&out, &buffered, &buffered_last);
        progress.Exported(outcome_.count + buffered, task);
      }
      if (!outcome_.failure.empty()) {
        absl::MutexLock lock(&mutex_);
        stopped_ = true;
        break;
      }
    }
    if (outcome_.failure.empty()) Flush(&out, &buffered, &buffered_last);
    if (outcome_.failure.empty() && std::fflush(stdout) != 0) {
      outcome_.failure = "cannot write to stdout";
    }
    progress.Done(outcome_.count);
  }

  // Writes `out` (the lines of `*buffered` tasks, the last `*last`) to
  // stdout and counts them as written, or sets the failure when stdout
  // refuses them; clears all three.
  void Flush(std::string* out, int64_t* buffered, std::string* last) {
    if (std::fwrite(out->data(), 1, out->size(), stdout) == out->size()) {
      if (*buffered > 0) {
        outcome_.count += *buffered;
        outcome_.last_task_id = *last;
      }
    } else {
      outcome_.failure = "cannot write to stdout";
    }
    out->clear();
    *buffered = 0;
    last->clear();
  }

  static constexpr size_t kFlushBytes = size_t{1} << 20;

  absl::Mutex mutex_;
  std::vector<v1::Task> pending_batch_ ABSL_GUARDED_BY(mutex_);
  size_t pending_count_ ABSL_GUARDED_BY(mutex_) = 0;
  bool pending_ ABSL_GUARDED_BY(mutex_) = false;
  bool closing_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopped_ ABSL_GUARDED_BY(mutex_) = false;
  Outcome outcome_;  // the printer thread's until it is joined
  std::thread thread_;
};

}  // namespace

int RunExport(const GlobalOptions& global, const ExportArgs& args) {
  v1::ExportTasksRequest request;
  if (const int set = SetCreateTimeRange(args.since, args.until, &request);
      set != kExitOk) {
    return set;
  }
  request.set_account_id(args.account);
  request.set_include_events(args.events);
  request.set_after_task_id(args.after);
  // A task with a long timeline may take more than gRPC's default 4 MiB.
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(-1);
  Client client(global);
  if (!client.Connect(arguments)) return kExitUsage;
  grpc::ClientContext ctx;
  client.Prepare(&ctx, /*unary=*/false);
  auto reader = client.stub().ExportTasks(&ctx, request);
  // This thread receives and parses the tasks; the printer writes the
  // previous batch meanwhile.
  ExportPrinter printer;
  std::vector<v1::Task> batch(kExportBatchTasks);
  size_t filled = 0;
  bool printed = true;
  while (printed && reader->Read(&batch[filled])) {
    if (++filled == batch.size()) {
      printed = printer.Print(&batch, filled);
      filled = 0;
    }
  }
  if (printed && filled > 0) printed = printer.Print(&batch, filled);
  if (!printed) ctx.TryCancel();
  const grpc::Status status = reader->Finish();
  const ExportPrinter::Outcome outcome = printer.Close();
  if (outcome.failure.empty() && status.ok()) return kExitOk;
  // Says where the export stopped, so that it can be resumed.
  if (outcome.last_task_id.empty()) {
    PrintError("export stopped before its first task");
  } else {
    PrintError(absl::StrCat("export stopped after ", outcome.count,
                            " tasks; resume with --after ",
                            outcome.last_task_id));
  }
  if (!outcome.failure.empty()) {
    PrintError(outcome.failure);
    return kExitOther;
  }
  return client.Fail(status);
}

}  // namespace tasktrail::cli
