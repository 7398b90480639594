// What the commands of the tasktrail CLI share (commands.cc and
// bulk_commands.cc): printing answers and errors, the connection to
// tasktraild with its per-call settings, and the request fields every
// listing sets (creation time ranges, --older-than spans, paging through
// ListTasks).
//
// Thread safety: none; call from the main thread.
#ifndef TASKTRAIL_CLI_COMMAND_SUPPORT_H_
#define TASKTRAIL_CLI_COMMAND_SUPPORT_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "tasktrail/v1/tracker.grpc.pb.h"

namespace tasktrail::cli {

using Stub = v1::TaskTracker::Stub;

// Writes `text` to stdout and flushes it.
void Print(const std::string& text);

// Prints "tasktrail: LINE" to stderr, with control characters made visible
// (the line may quote the server or the user).
void PrintError(const std::string& line);

// Prints `message` as proto3 JSON (pretty or one line). Returns kExitOk, or
// kExitOther after saying why when it cannot be printed as JSON.
int PrintJson(const google::protobuf::Message& message, bool pretty);

// Prints `message` as JSON with --json, else `format(copy)` of a copy whose
// strings have their control characters made visible. Returns the exit
// status of printing (kExitOk, or kExitOther for JSON that cannot be made).
template <typename Message, typename Format>
int PrintAnswer(const GlobalOptions& global, const Message& message,
                Format format) {
  if (global.json) return PrintJson(message, /*pretty=*/true);
  Message safe = message;
  EscapeControlCharactersIn(&safe);
  Print(format(safe));
  return kExitOk;
}

// The format options of --utc, with the time of the call as now.
FormatOptions MakeFormatOptions(const GlobalOptions& global);

// One connection to tasktraild and the per-call settings.
class Client {
 public:
  explicit Client(const GlobalOptions& global) : global_(global) {}

  // Creates the channel, with `arguments`. Returns false (after printing
  // why) when the TLS files cannot be read.
  bool Connect(const grpc::ChannelArguments& arguments = {});

  // Adds the token and, for unary calls, the deadline.
  void Prepare(grpc::ClientContext* ctx, bool unary) const;

  // Makes one unary call with a fresh context.
  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                 const Request&, Response*),
                    const Request& request, Response* response) {
    grpc::ClientContext ctx;
    Prepare(&ctx, /*unary=*/true);
    return (stub_.get()->*method)(&ctx, request, response);
  }

  // Prints `status` (and its field violations) to stderr; returns the exit
  // status for it.
  int Fail(const grpc::Status& status) const;

  Stub& stub() { return *stub_; }
  const GlobalOptions& global() const { return global_; }

 private:
  const GlobalOptions& global_;
  std::unique_ptr<Stub> stub_;
};

// Sets `*field` to `time`, for a Timestamp field of a request.
void SetTimestamp(absl::Time time, google::protobuf::Timestamp* field);

// Sets `*field` to `span`, for a Duration field of a request.
void SetDuration(absl::Duration span, google::protobuf::Duration* field);

// Sets the create_time_after and create_time_before of `request` (a
// ListTasksRequest or an ExportTasksRequest) from --since and --until
// (ParseTimeOrAgo), leaving each unset when its flag is empty. Returns
// kExitOk, or kExitUsage after saying why.
template <typename Request>
int SetCreateTimeRange(const std::string& since_text,
                       const std::string& until_text, Request* request) {
  const absl::Time now = absl::Now();
  absl::Time since = absl::InfinitePast();
  absl::Time until = absl::InfiniteFuture();
  for (const auto& [flag, text, time] :
       {std::make_tuple("--since", &since_text, &since),
        std::make_tuple("--until", &until_text, &until)}) {
    if (text->empty()) continue;
    absl::StatusOr<absl::Time> parsed = ParseTimeOrAgo(*text, now);
    if (!parsed.ok()) {
      PrintError(absl::StrCat(flag, ": ", parsed.status().message()));
      return kExitUsage;
    }
    *time = *parsed;
  }
  if (since >= until) {
    PrintError("--since must be before --until");
    return kExitUsage;
  }
  if (!since_text.empty()) {
    SetTimestamp(since, request->mutable_create_time_after());
  }
  if (!until_text.empty()) {
    SetTimestamp(until, request->mutable_create_time_before());
  }
  return kExitOk;
}

// Sets `*field` to the span of an --older-than option; an empty option
// leaves it unset. kExitUsage (after saying why) when it is not a span.
int SetOlderThan(const std::string& older_than,
                 google::protobuf::Duration* field);

// How far ListPages reads.
struct PageBounds {
  // Tasks wanted; 0: every one.
  int want = 0;
  // Stop once the server has visited this many tasks; 0: no bound.
  int64_t scan_bound = 0;
};

// The one paging loop of list, stuck, charges and owed: connects, then
// calls ListTasks from `request` (its page_token included) on, page after
// page, appending the tasks and queue statuses to `all`, until it has
// `bounds.want` tasks, the last page, or the server has visited
// `bounds.scan_bound` tasks: then `*stopped_at_work_bound` is set (when not
// null). `all` ends with the next_page_token to go on from (empty at the
// end) and the sum of scanned_count. Returns kExitOk, or the exit status
// after saying why (TLS files that cannot be read, a failed call).
int ListTaskPages(const GlobalOptions& global, v1::ListTasksRequest request,
                  PageBounds bounds, v1::ListTasksResponse* all,
                  bool* stopped_at_work_bound = nullptr);

}  // namespace tasktrail::cli

#endif  // TASKTRAIL_CLI_COMMAND_SUPPORT_H_
