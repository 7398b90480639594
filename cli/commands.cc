#include "cli/commands.h"

#include <grpcpp/grpcpp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/format.h"
#include "cli/json_line.h"
#include "tasktrail/v1/tracker.grpc.pb.h"

namespace tasktrail::cli {
namespace {

using Stub = v1::TaskTracker::Stub;

void Print(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

// Prints "tasktrail: LINE" to stderr, with control characters made visible
// (the line may quote the server or the user).
void PrintError(const std::string& line) {
  std::fprintf(stderr, "tasktrail: %s\n",
               EscapeControlCharacters(line).c_str());
}

// Prints `message` as proto3 JSON (pretty or one line). Returns kExitOk, or
// kExitOther after saying why when it cannot be printed as JSON.
int PrintJson(const google::protobuf::Message& message, bool pretty) {
  absl::StatusOr<std::string> json = ToJson(message, pretty);
  if (!json.ok()) {
    PrintError(absl::StrCat("cannot print the answer as JSON: ",
                            json.status().message()));
    return kExitOther;
  }
  Print(*json);
  return kExitOk;
}

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

// Returns the contents of `path`. Errors: InvalidArgument naming `flag`.
absl::StatusOr<std::string> ReadFile(const std::string& flag,
                                     const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", flag, " file ", path));
  }
  return buffer.str();
}

// TLS credentials when --tls-ca is given, else insecure ones.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeCredentials(
    const GlobalOptions& global) {
  if (global.tls_ca.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  absl::StatusOr<std::string> ca = ReadFile("--tls-ca", global.tls_ca);
  if (!ca.ok()) return ca.status();
  ssl.pem_root_certs = *std::move(ca);
  if (!global.tls_cert.empty()) {
    absl::StatusOr<std::string> cert = ReadFile("--tls-cert", global.tls_cert);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFile("--tls-key", global.tls_key);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

// One connection to tasktraild and the per-call settings.
class Client {
 public:
  explicit Client(const GlobalOptions& global) : global_(global) {}

  // Creates the channel, with `arguments`. Returns false (after printing
  // why) when the TLS files cannot be read.
  bool Connect(const grpc::ChannelArguments& arguments = {}) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
        MakeCredentials(global_);
    if (!creds.ok()) {
      PrintError(std::string(creds.status().message()));
      return false;
    }
    stub_ = v1::TaskTracker::NewStub(grpc::CreateCustomChannel(
        global_.server, *std::move(creds), arguments));
    return true;
  }

  // Adds the token and, for unary calls, the deadline.
  void Prepare(grpc::ClientContext* ctx, bool unary) const {
    if (!global_.token.empty()) {
      ctx->AddMetadata("authorization", "Bearer " + global_.token);
    }
    if (unary) {
      auto timeout =
          std::chrono::duration_cast<std::chrono::system_clock::duration>(
              std::chrono::duration<double>(global_.timeout_seconds));
      ctx->set_deadline(std::chrono::system_clock::now() + timeout);
    }
  }

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
  int Fail(const grpc::Status& status) const {
    PrintError(FormatRpcError(status.error_code(), status.error_message(),
                              global_.server));
    for (absl::string_view line :
         absl::StrSplit(FormatErrorDetails(status.error_details()), '\n',
                        absl::SkipEmpty())) {
      std::fprintf(stderr, "%s\n", EscapeControlCharacters(line).c_str());
    }
    return ExitCodeFor(status.error_code(), status.error_message());
  }

  Stub& stub() { return *stub_; }
  const GlobalOptions& global() const { return global_; }

 private:
  const GlobalOptions& global_;
  std::unique_ptr<Stub> stub_;
};

// $USER, else $LOGNAME, else the login name of the process's user; empty
// when none is known.
std::string CurrentUser() {
  for (const char* var : {"USER", "LOGNAME"}) {
    const char* value = std::getenv(var);
    if (value != nullptr && *value != '\0') return value;
  }
  const struct passwd* pw = getpwuid(getuid());
  return pw != nullptr && pw->pw_name != nullptr ? pw->pw_name : "";
}

FormatOptions MakeFormatOptions(const GlobalOptions& global) {
  FormatOptions opts;
  if (global.utc) opts.zone = absl::UTCTimeZone();
  opts.now = absl::Now();
  return opts;
}

// How a command goes on after looking up an id that is not a task id.
struct Resolution {
  // The one task the id names; empty unless exit_code is kExitOk.
  std::string task_id;
  // kExitOk, or the status to exit with, having said why on stderr.
  int exit_code = kExitOk;
};

// Looks `id` up as a task id, else as an upstream task id (BatchGetTasks).
// One task: its id. None: "task ID not found" and kExitNotFound. Several:
// lists them (FormatAmbiguousId) and kExitUsage, never choosing one. A
// failed call: its error and exit status. `not_found` is the server's
// NOT_FOUND message for `id` as a task id, if any: when it says more than
// "task ID not found" (that the task may have been purged), it is the one
// printed.
Resolution ResolveId(Client& client, const std::string& id,
                     absl::string_view not_found = "") {
  v1::BatchGetTasksRequest request;
  request.add_ids(id);
  v1::BatchGetTasksResponse found;
  grpc::Status status = client.Call(&Stub::BatchGetTasks, request, &found);
  if (!status.ok()) return {"", client.Fail(status)};
  if (found.tasks_size() == 0) {
    const std::string plain = absl::StrCat("task ", id, " not found");
    if (not_found.size() > plain.size() && absl::StartsWith(not_found, plain)) {
      PrintError(std::string(not_found));
    } else {
      PrintError(
          absl::StrCat(plain, " (neither a task id nor an upstream task id)"));
    }
    return {"", kExitNotFound};
  }
  if (found.tasks_size() > 1) {
    EscapeControlCharactersIn(&found);
    std::fprintf(stderr, "tasktrail: %s",
                 FormatAmbiguousId(EscapeControlCharacters(id), found.tasks(),
                                   MakeFormatOptions(client.global()))
                     .c_str());
    return {"", kExitUsage};
  }
  return {found.tasks(0).task_id(), kExitOk};
}

// Runs `call(task_id)` with `id`; when the server answers NOT_FOUND, `id`
// may be an upstream task id: resolved (ResolveId), `call` runs again with
// the task id it names. Returns the exit status of a failure (having said
// why), or kExitOk when `call` succeeded. `call` returns the call's status
// and must not print.
template <typename Call>
int CallResolvingId(Client& client, const std::string& id, Call call) {
  grpc::Status status = call(id);
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
    const Resolution resolved = ResolveId(client, id, status.error_message());
    if (resolved.exit_code != kExitOk) return resolved.exit_code;
    status = call(resolved.task_id);
  }
  if (!status.ok()) return client.Fail(status);
  return kExitOk;
}

// `get` of several ids: one summary row per task, with the queue verdict of
// each unfinished one, then the ids not found; one BatchGetTasks call.
int RunGetSeveral(Client& client, const GetArgs& args) {
  const GlobalOptions& global = client.global();
  v1::BatchGetTasksRequest request;
  for (const std::string& id : args.ids) request.add_ids(id);
  request.set_include_queue_status(true);
  v1::BatchGetTasksResponse response;
  grpc::Status status = client.Call(&Stub::BatchGetTasks, request, &response);
  if (!status.ok()) return client.Fail(status);
  const int found_status = response.tasks_size() == 0 ? kExitNotFound : kExitOk;
  if (global.json) {
    const int printed = PrintJson(response, /*pretty=*/true);
    return printed != kExitOk ? printed : found_status;
  }
  QueueVerdicts verdicts;
  for (const v1::QueueStatus& queue_status : response.queue_statuses()) {
    if (queue_status.state() == v1::TASK_STATE_SUBMITTED ||
        queue_status.state() == v1::TASK_STATE_QUEUED ||
        queue_status.state() == v1::TASK_STATE_RUNNING) {
      verdicts[queue_status.task_id()] = queue_status.verdict();
    }
  }
  const int printed =
      PrintAnswer(global, response, [&](const v1::BatchGetTasksResponse& safe) {
        return FormatTaskSummaries(safe, verdicts, MakeFormatOptions(global));
      });
  return printed != kExitOk ? printed : found_status;
}

}  // namespace

int RunGet(const GlobalOptions& global, const GetArgs& args) {
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  if (args.ids.size() > 1) return RunGetSeveral(client, args);
  v1::Task task;
  const int exit_code =
      CallResolvingId(client, args.ids.at(0), [&](const std::string& id) {
        v1::GetTaskRequest get;
        get.set_task_id(id);
        get.set_include_events(args.events);
        return client.Call(&Stub::GetTask, get, &task);
      });
  if (exit_code != kExitOk) return exit_code;
  return PrintAnswer(global, task, [&](const v1::Task& safe) {
    return FormatTask(safe, MakeFormatOptions(global));
  });
}

int RunQueued(const GlobalOptions& global, const QueuedArgs& args) {
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  v1::QueueStatus response;
  const int exit_code =
      CallResolvingId(client, args.id, [&](const std::string& id) {
        v1::GetQueueStatusRequest request;
        request.set_task_id(id);
        return client.Call(&Stub::GetQueueStatus, request, &response);
      });
  if (exit_code != kExitOk) return exit_code;
  return PrintAnswer(global, response, [&](const v1::QueueStatus& safe) {
    return FormatQueueStatus(safe, MakeFormatOptions(global));
  });
}

namespace {

// Sets `*field` to `time`, for a Timestamp field of a request.
void SetTimestamp(absl::Time time, google::protobuf::Timestamp* field) {
  const int64_t nanos = absl::ToUnixNanos(time);
  field->set_seconds(absl::ToUnixSeconds(time));
  field->set_nanos(static_cast<int32_t>(nanos - absl::ToUnixSeconds(time) *
                                                    int64_t{1000000000}));
}

void SetDuration(absl::Duration span, google::protobuf::Duration* field) {
  const int64_t nanos = absl::ToInt64Nanoseconds(span);
  field->set_seconds(nanos / 1000000000);
  field->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

// Calls ListTasks from `request` (its page_token included) on, page after
// page, appending the tasks and queue statuses to `all`, until it has `want`
// tasks (0: every one), the last page, or (when `scan_bound` > 0) the server
// has visited `scan_bound` tasks: then `*stopped_at_work_bound` is set.
// `all` ends with the next_page_token to go on from (empty at the end) and
// the sum of scanned_count.
grpc::Status ListPages(Client& client, v1::ListTasksRequest request, int want,
                       int64_t scan_bound, v1::ListTasksResponse* all,
                       bool* stopped_at_work_bound) {
  constexpr int kMaxPageSize = 1000;
  *stopped_at_work_bound = false;
  int64_t scanned = 0;
  while (true) {
    request.set_page_size(want > 0
                              ? std::min(want - all->tasks_size(), kMaxPageSize)
                              : kMaxPageSize);
    v1::ListTasksResponse page;
    grpc::Status status = client.Call(&Stub::ListTasks, request, &page);
    if (!status.ok()) return status;
    scanned += page.scanned_count();
    for (v1::Task& task : *page.mutable_tasks()) {
      *all->add_tasks() = std::move(task);
    }
    for (v1::QueueStatus& queue : *page.mutable_queue_statuses()) {
      *all->add_queue_statuses() = std::move(queue);
    }
    all->set_next_page_token(page.next_page_token());
    all->set_scanned_count(scanned);
    if (page.next_page_token().empty() ||
        (want > 0 && all->tasks_size() >= want)) {
      return grpc::Status::OK;
    }
    if (scan_bound > 0 && scanned >= scan_bound) {
      *stopped_at_work_bound = true;
      return grpc::Status::OK;
    }
    request.set_page_token(page.next_page_token());
  }
}

}  // namespace

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

namespace {

// Sets `*field` to the span of an --older-than option; an empty option
// leaves it unset. kExitUsage (after saying why) when it is not a span.
int SetOlderThan(const std::string& older_than,
                 google::protobuf::Duration* field) {
  if (older_than.empty()) return kExitOk;
  absl::StatusOr<absl::Duration> span = ParseSpan(older_than);
  if (!span.ok()) {
    PrintError(absl::StrCat("--older-than: ", span.status().message()));
    return kExitUsage;
  }
  SetDuration(*span, field);
  return kExitOk;
}

// Reads every page of `request` oldest first, with no work bound: for an
// index that holds exactly the tasks wanted.
grpc::Status ListEveryPageOldestFirst(Client& client,
                                      v1::ListTasksRequest request,
                                      v1::ListTasksResponse* tasks) {
  request.set_oldest_first(true);
  bool stopped_at_work_bound = false;
  return ListPages(client, request, /*want=*/0,
                   /*scan_bound=*/0, tasks, &stopped_at_work_bound);
}

// Prints one line of JSON per task (`row` makes it): NDJSON. Exits
// kExitOther when a row cannot be made.
int PrintJsonLines(
    const v1::ListTasksResponse& tasks,
    const std::function<absl::StatusOr<std::string>(const v1::Task&)>& row) {
  for (const v1::Task& task : tasks.tasks()) {
    absl::StatusOr<std::string> line = row(task);
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

int RunList(const GlobalOptions& global, const ListArgs& args) {
  v1::ListTasksRequest request;
  if (const int set = SetCreateTimeRange(args.since, args.until, &request);
      set != kExitOk) {
    return set;
  }
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  request.set_account_id(args.account);
  if (!args.state.empty()) request.set_state(ParseStateName(args.state));
  request.set_model(args.model);
  request.set_upstream_task_id(args.upstream_id);
  request.set_request_id(args.request_id);
  request.set_route(args.route);
  request.set_unfinished(args.unfinished);
  request.set_oldest_first(args.oldest_first);
  request.set_page_token(args.page_token);
  // The server's default page size when --limit is not given.
  const int want = args.limit > 0 ? args.limit : 50;
  v1::ListTasksResponse response;
  bool stopped_at_work_bound = false;
  grpc::Status status =
      ListPages(client, request, want, args.all ? 0 : kListScanBound, &response,
                &stopped_at_work_bound);
  if (!status.ok()) return client.Fail(status);
  return PrintAnswer(global, response, [&](const v1::ListTasksResponse& safe) {
    return FormatTaskList(safe, MakeFormatOptions(global),
                          stopped_at_work_bound);
  });
}

int RunStuck(const GlobalOptions& global, const StuckArgs& args) {
  v1::ListTasksRequest request;
  if (const int set =
          SetOlderThan(args.older_than, request.mutable_stale_for());
      set != kExitOk) {
    return set;
  }
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  request.set_unfinished(true);
  request.set_oldest_first(true);
  request.set_include_queue_status(true);
  request.set_model(args.model);
  request.set_account_id(args.account);
  v1::ListTasksResponse matching;
  bool stopped_at_work_bound = false;
  grpc::Status status =
      ListPages(client, request, /*want=*/0,
                /*scan_bound=*/0, &matching, &stopped_at_work_bound);
  if (!status.ok()) return client.Fail(status);
  return PrintAnswer(global, matching, [&](const v1::ListTasksResponse& safe) {
    return FormatStuck(safe, args.limit, MakeFormatOptions(global));
  });
}

int RunWatch(const GlobalOptions& global, const WatchArgs& args) {
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  int64_t after = args.after_seq;
  std::string task_id = args.id;
  bool resolved = false;
  while (true) {
    grpc::ClientContext ctx;
    client.Prepare(&ctx, /*unary=*/false);
    v1::WatchTaskRequest request;
    request.set_task_id(task_id);
    request.set_after_seq(after);
    absl::Time start = absl::Now();
    bool progressed = false;
    auto reader = client.stub().WatchTask(&ctx, request);
    v1::TaskEvent event;
    while (reader->Read(&event)) {
      progressed = true;
      if (event.seq() > after) after = event.seq();
      if (global.json) {
        if (PrintJson(event, /*pretty=*/false) != kExitOk) return kExitOther;
      } else {
        v1::TaskEvent safe = event;
        EscapeControlCharactersIn(&safe);
        Print(FormatEventLine(safe, MakeFormatOptions(global)));
      }
    }
    grpc::Status status = reader->Finish();
    if (status.ok()) return kExitOk;
    if (status.error_code() == grpc::StatusCode::NOT_FOUND && !progressed &&
        !resolved) {
      // Perhaps an upstream task id: follow the one task it names.
      const Resolution resolution = ResolveId(client, args.id);
      if (resolution.exit_code != kExitOk) return resolution.exit_code;
      task_id = resolution.task_id;
      resolved = true;
      continue;
    }
    bool was_working = progressed || absl::Now() - start >= absl::Seconds(2);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || !was_working) {
      return client.Fail(status);
    }
    PrintError(absl::StrCat("stream ended (", status.error_message(),
                            "); resuming after seq ", after));
  }
}

namespace {

// The ValidateTask request for `args`. Errors: InvalidArgument for a
// malformed --ref-image.
absl::StatusOr<v1::ValidateTaskRequest> MakeValidateRequest(
    const ValidateArgs& args) {
  v1::ValidateTaskRequest request;
  request.set_model(args.model);
  request.set_group(args.group);
  v1::TaskParams* params = request.mutable_params();
  params->set_prompt(args.prompt);
  params->set_negative_prompt(args.negative_prompt);
  params->set_aspect_ratio(args.ratio);
  params->set_resolution(args.resolution);
  params->set_duration_seconds(args.duration_seconds);
  params->set_callback_url(args.callback_url);
  params->set_generate_audio(args.audio);
  params->set_image_count(args.image_count);
  if (args.has_seed) params->set_seed(args.seed);
  for (const std::string& spec : args.ref_images) {
    absl::StatusOr<v1::ReferenceImage> image = ParseReferenceImage(spec);
    if (!image.ok()) return image.status();
    *params->add_reference_images() = *std::move(image);
  }
  return request;
}

}  // namespace

int RunValidate(const GlobalOptions& global, const ValidateArgs& args) {
  absl::StatusOr<v1::ValidateTaskRequest> request = MakeValidateRequest(args);
  if (!request.ok()) {
    PrintError(std::string(request.status().message()));
    return kExitUsage;
  }
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  v1::ValidateTaskResponse response;
  grpc::Status status = client.Call(&Stub::ValidateTask, *request, &response);
  if (!status.ok()) return client.Fail(status);
  const int printed =
      PrintAnswer(global, response, [&](const v1::ValidateTaskResponse& safe) {
        return FormatValidation(safe, EscapeControlCharacters(args.model));
      });
  if (printed != kExitOk) return printed;
  return response.violations_size() == 0 ? kExitOk : kExitRefused;
}

int RunModels(const GlobalOptions& global, const ModelsArgs& args) {
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  v1::ListModelsRequest request;
  if (args.kind == "image") request.set_kind(v1::TASK_KIND_IMAGE);
  if (args.kind == "video") request.set_kind(v1::TASK_KIND_VIDEO);
  v1::ListModelsResponse response;
  grpc::Status status = client.Call(&Stub::ListModels, request, &response);
  if (!status.ok()) return client.Fail(status);
  return PrintAnswer(global, response, [](const v1::ListModelsResponse& safe) {
    return FormatModels(safe);
  });
}

int RunNote(const GlobalOptions& global, const NoteArgs& args) {
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  v1::AddNoteRequest request;
  request.set_text(args.text);
  request.set_final_cause(args.final_cause);
  request.set_author(args.author.empty() ? CurrentUser() : args.author);
  v1::Task task;
  const int exit_code =
      CallResolvingId(client, args.id, [&](const std::string& id) {
        request.set_task_id(id);
        return client.Call(&Stub::AddNote, request, &task);
      });
  if (exit_code != kExitOk) return exit_code;
  return PrintAnswer(global, task, [&](const v1::Task& safe) {
    if (safe.notes_size() == 0) {
      return absl::StrCat("note added to ", safe.task_id(), "\n");
    }
    return absl::StrCat("added to ", safe.task_id(), ": ",
                        FormatNote(safe.notes(safe.notes_size() - 1),
                                   MakeFormatOptions(global)),
                        "\n");
  });
}

int RunAudit(const GlobalOptions& global, const AuditArgs& args) {
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  // The pages, newest first, until --limit entries or the end.
  v1::ListAuditResponse all;
  const int exit_code =
      CallResolvingId(client, args.id, [&](const std::string& id) {
        all.Clear();
        v1::ListAuditRequest request;
        request.set_task_id(id);
        while (true) {
          request.set_page_size(args.limit - all.entries_size());
          v1::ListAuditResponse page;
          grpc::Status status = client.Call(&Stub::ListAudit, request, &page);
          if (!status.ok()) return status;
          for (v1::AuditEntry& entry : *page.mutable_entries()) {
            *all.add_entries() = std::move(entry);
          }
          all.set_next_page_token(page.next_page_token());
          if (page.next_page_token().empty() ||
              all.entries_size() >= args.limit) {
            return grpc::Status::OK;
          }
          request.set_page_token(page.next_page_token());
        }
      });
  if (exit_code != kExitOk) return exit_code;
  return PrintAnswer(global, all, [&](const v1::ListAuditResponse& safe) {
    std::string out = FormatAudit(safe, MakeFormatOptions(global));
    if (!safe.next_page_token().empty()) {
      absl::StrAppend(&out, "newest ", safe.entries_size(),
                      " shown; older ones exist (raise --limit)\n");
    }
    return out;
  });
}

int RunClassify(const GlobalOptions& global, const ClassifyArgs& args) {
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  v1::ClassifyFailureRequest request;
  request.set_model(args.model);
  request.set_http_status(args.http_status);
  request.set_error_code(args.error_code);
  request.set_message(args.message);
  v1::Failure failure;
  grpc::Status status = client.Call(&Stub::ClassifyFailure, request, &failure);
  if (!status.ok()) return client.Fail(status);
  return PrintAnswer(global, failure, [&](const v1::Failure& safe) {
    return FormatClassification(safe, EscapeControlCharacters(args.model));
  });
}

int RunStats(const GlobalOptions& global, const StatsArgs& args) {
  absl::Duration window;
  if (!absl::ParseDuration(args.window, &window) ||
      window <= absl::ZeroDuration()) {
    PrintError(absl::StrCat("--window \"", args.window,
                            "\" is not a span of time such as 90s, 15m, 24h"));
    return kExitUsage;
  }
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  v1::GetStatsRequest request;
  int64_t nanos = absl::ToInt64Nanoseconds(window);
  request.mutable_window()->set_seconds(nanos / 1000000000);
  request.mutable_window()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  request.set_model(args.model);
  request.set_group_by(args.by == "route"   ? v1::STATS_GROUP_BY_ROUTE
                       : args.by == "group" ? v1::STATS_GROUP_BY_GROUP
                                            : v1::STATS_GROUP_BY_MODEL);
  v1::Stats response;
  grpc::Status status = client.Call(&Stub::GetStats, request, &response);
  if (!status.ok()) return client.Fail(status);
  return PrintAnswer(global, response, [&](const v1::Stats& safe) {
    return FormatStats(safe, MakeFormatOptions(global));
  });
}

int RunCharges(const GlobalOptions& global, const ChargesArgs& args) {
  v1::ListTasksRequest request;
  if (const int set = SetCreateTimeRange(args.since, args.until, &request);
      set != kExitOk) {
    return set;
  }
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  request.set_account_id(args.account);
  // The account index holds exactly the account's tasks in creation order.
  v1::ListTasksResponse tasks;
  grpc::Status status = ListEveryPageOldestFirst(client, request, &tasks);
  if (!status.ok()) return client.Fail(status);
  if (global.json) return PrintJsonLines(tasks, FormatChargeRowJson);
  v1::ListTasksResponse safe = tasks;
  EscapeControlCharactersIn(&safe);
  Print(FormatCharges(safe.tasks()));
  return kExitOk;
}

int RunOwed(const GlobalOptions& global, const OwedArgs& args) {
  v1::ListTasksRequest request;
  request.set_owed(true);
  if (const int set = SetOlderThan(args.older_than, request.mutable_owed_for());
      set != kExitOk) {
    return set;
  }
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  request.set_model(args.model);
  // The owed index holds exactly the owed tasks.
  v1::ListTasksResponse tasks;
  grpc::Status status = ListEveryPageOldestFirst(client, request, &tasks);
  if (!status.ok()) return client.Fail(status);
  const FormatOptions options = MakeFormatOptions(global);
  if (global.json) {
    return PrintJsonLines(tasks, [&options](const v1::Task& task) {
      return FormatOwedRowJson(task, options.now);
    });
  }
  v1::ListTasksResponse safe = tasks;
  EscapeControlCharactersIn(&safe);
  Print(FormatOwed(safe.tasks(), options));
  return kExitOk;
}

int RunBackup(const GlobalOptions& global, const BackupArgs& args) {
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  v1::ListBackupsResponse backups;
  grpc::Status status;
  if (args.list) {
    status =
        client.Call(&Stub::ListBackups, v1::ListBackupsRequest(), &backups);
  } else {
    status = client.Call(&Stub::CreateBackup, v1::CreateBackupRequest(),
                         backups.add_backups());
  }
  if (!status.ok()) return client.Fail(status);
  if (!args.list) {
    return PrintAnswer(global, backups.backups(0), [&](const v1::Backup& safe) {
      return absl::StrCat("backup taken:\n",
                          FormatBackups({safe}, MakeFormatOptions(global)));
    });
  }
  return PrintAnswer(global, backups, [&](const v1::ListBackupsResponse& safe) {
    return FormatBackups({safe.backups().begin(), safe.backups().end()},
                         MakeFormatOptions(global));
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

int RunPurge(const GlobalOptions& global, const PurgeArgs& args) {
  Client client(global);
  if (!client.Connect()) return kExitUsage;
  v1::PurgeTaskRequest request;
  request.set_task_id(args.id);
  request.set_reason(args.reason);
  v1::PurgeTaskResponse response;
  grpc::Status status = client.Call(&Stub::PurgeTask, request, &response);
  if (!status.ok()) return client.Fail(status);
  return PrintAnswer(global, response, [&](const v1::PurgeTaskResponse& safe) {
    const v1::AuditEntry& entry = safe.audit_entry();
    return absl::StrCat("purged task ", entry.task_id(), " (",
                        entry.principal().empty() ? "-" : entry.principal(),
                        ", reason: ", entry.reason(), ")\n");
  });
}

}  // namespace tasktrail::cli
