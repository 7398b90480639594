#include "cli/commands.h"

#include <grpcpp/grpcpp.h>
#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/command_support.h"
#include "cli/format.h"
#include "tasktrail/v1/tracker.grpc.pb.h"

namespace tasktrail::cli {
namespace {

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

int RunList(const GlobalOptions& global, const ListArgs& args) {
  v1::ListTasksRequest request;
  if (const int set = SetCreateTimeRange(args.since, args.until, &request);
      set != kExitOk) {
    return set;
  }
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
  if (const int listed =
          ListTaskPages(global, request, {want, args.all ? 0 : kListScanBound},
                        &response, &stopped_at_work_bound);
      listed != kExitOk) {
    return listed;
  }
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
  request.set_unfinished(true);
  request.set_oldest_first(true);
  request.set_include_queue_status(true);
  request.set_model(args.model);
  request.set_account_id(args.account);
  v1::ListTasksResponse matching;
  if (const int listed =
          ListTaskPages(global, request, PageBounds{}, &matching);
      listed != kExitOk) {
    return listed;
  }
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
  SetDuration(window, request.mutable_window());
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