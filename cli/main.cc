// tasktrail: the support CLI of tasktraild.
//
// main parses the command line with CLI11 (global options are accepted
// before or after the command), then runs one command from cli/commands.h.
// Exit statuses follow ExitCode in cli/format.h (docs/CLI.md): 2 for a usage
// error, 0 for --help.
#include <cstdio>
#include <exception>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "cli/format.h"

namespace tasktrail::cli {
namespace {

constexpr char kDefaultServer[] = "127.0.0.1:50051";

void AddGlobalOptions(CLI::App& app, GlobalOptions* g) {
  app.add_option("--server", g->server, "tasktraild address HOST:PORT")
      ->envname("TASKTRAIL_SERVER")
      ->default_str(kDefaultServer);
  app.add_option("--token", g->token,
                 "bearer token sent as `authorization: Bearer T`")
      ->envname("TASKTRAIL_TOKEN");
  CLI::Option* ca =
      app.add_option("--tls-ca", g->tls_ca, "CA certificate PEM: use TLS")
          ->check(CLI::ExistingFile);
  CLI::Option* cert =
      app.add_option("--tls-cert", g->tls_cert, "client certificate PEM")
          ->check(CLI::ExistingFile)
          ->needs(ca);
  CLI::Option* key =
      app.add_option("--tls-key", g->tls_key, "client private key PEM")
          ->check(CLI::ExistingFile)
          ->needs(ca);
  cert->needs(key);
  key->needs(cert);
  app.add_flag("--utc", g->utc, "show times in UTC");
  app.add_flag("--json", g->json, "print the response as proto3 JSON");
  app.add_option("--timeout", g->timeout_seconds,
                 "deadline of each call in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

// The --account, --since and --until options of the commands that read the
// tasks created in a time range (list, charges, export). `since_default` and
// `until_default`, when given, say what an empty --since or --until means;
// a non-empty `*since` is shown as the default.
struct CreationRangeOptions {
  std::string* account = nullptr;
  std::string* since = nullptr;
  std::string* until = nullptr;
  bool account_required = false;
  const char* since_default = nullptr;
  const char* until_default = nullptr;
};

void AddCreationRangeOptions(CLI::App* cmd,
                             const CreationRangeOptions& options) {
  CLI::Option* account = cmd->add_option(
      "--account", *options.account,
      options.account_required ? "the account" : "only this account");
  if (options.account_required) account->required();
  std::string since_help =
      "only tasks created at or after: an RFC 3339 time with its offset, or "
      "a span back from now (90s, 15m, 2h, 7d)";
  std::string until_help =
      "only tasks created before: an RFC 3339 time or a span back from now";
  if (options.since_default != nullptr) {
    since_help += std::string("; default: ") + options.since_default;
  }
  if (options.until_default != nullptr) {
    until_help += std::string("; default: ") + options.until_default;
  }
  CLI::Option* since = cmd->add_option("--since", *options.since, since_help);
  if (!options.since->empty()) since->capture_default_str();
  cmd->add_option("--until", *options.until, until_help);
}

CLI::App* AddGet(CLI::App& app, GetArgs* a) {
  CLI::App* cmd = app.add_subcommand(
      "get",
      "show a task (by task id or upstream id); several ids: one row each");
  cmd->add_option("ID", a->ids, "task ids or upstream task ids (1 to 100)")
      ->required();
  cmd->add_flag("--events,!--no-events", a->events,
                "show the timeline (default) or not");
  return cmd;
}

CLI::App* AddQueued(CLI::App& app, QueuedArgs* a) {
  CLI::App* cmd = app.add_subcommand(
      "queued", "is the task still queued, and is that normal?");
  cmd->add_option("ID", a->id, "task id or upstream task id")->required();
  return cmd;
}

CLI::App* AddList(CLI::App& app, ListArgs* a) {
  CLI::App* cmd = app.add_subcommand("list", "list tasks, newest first");
  AddCreationRangeOptions(cmd, {&a->account, &a->since, &a->until});
  cmd->add_option("--state", a->state, "only this state")
      ->check(CLI::IsMember({"submitted", "queued", "running", "succeeded",
                             "failed", "canceled"}));
  cmd->add_option("--model", a->model, "only this model");
  cmd->add_option("--upstream-id", a->upstream_id, "only this upstream id");
  cmd->add_option("--request-id", a->request_id, "only this request_id");
  cmd->add_option("--route", a->route,
                  "only tasks on this upstream route (channel, key alias or "
                  "region the gateway named when it queued them)");
  cmd->add_option("--limit", a->limit, "at most N tasks")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--page-token", a->page_token, "continue a previous listing");
  cmd->add_flag("--unfinished", a->unfinished,
                "only submitted, queued or running tasks");
  cmd->add_flag("--oldest-first", a->oldest_first, "oldest tasks first");
  cmd->add_flag("--all", a->all,
                "keep paging past 100,000 scanned tasks until --limit rows "
                "or the end");
  return cmd;
}

CLI::App* AddStuck(CLI::App& app, StuckArgs* a) {
  CLI::App* cmd = app.add_subcommand(
      "stuck",
      "unfinished tasks oldest first, with their queue verdicts and totals");
  cmd->add_option("--older-than", a->older_than,
                  "only tasks with no upstream event for this long (90s, "
                  "15m, 2h, 7d; submitted ones: since creation); default: "
                  "every unfinished task");
  cmd->add_option("--model", a->model, "only this model");
  cmd->add_option("--account", a->account, "only this account");
  cmd->add_option("--limit", a->limit,
                  "at most N rows (the totals and --json cover every match)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  return cmd;
}

CLI::App* AddWatch(CLI::App& app, WatchArgs* a) {
  CLI::App* cmd =
      app.add_subcommand("watch", "print a task's events as they happen");
  cmd->add_option("ID", a->id, "task id or upstream task id")->required();
  cmd->add_option("--after-seq", a->after_seq, "skip events up to seq N")
      ->check(CLI::NonNegativeNumber);
  return cmd;
}

CLI::App* AddValidate(CLI::App& app, ValidateArgs* a) {
  CLI::App* cmd = app.add_subcommand(
      "validate", "check parameters against the model catalog");
  cmd->add_option("--model", a->model, "model name")->required();
  cmd->add_option("--group", a->group, "caller's group");
  cmd->add_option("--prompt", a->prompt, "prompt");
  cmd->add_option("--negative-prompt", a->negative_prompt, "negative prompt");
  cmd->add_option("--ratio", a->ratio, "aspect ratio, such as 16:9");
  cmd->add_option("--resolution", a->resolution, "720p, 1080p or WxH");
  cmd->add_option("--duration", a->duration_seconds, "whole seconds");
  cmd->add_option("--ref-image", a->ref_images,
                  "reference image URI,MIME,BYTES,WxH (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--callback-url", a->callback_url, "callback URL");
  cmd->add_flag("--audio", a->audio, "generate audio");
  cmd->add_option("--image-count", a->image_count, "how many images");
  CLI::Option* seed = cmd->add_option("--seed", a->seed, "random seed");
  cmd->callback([a, seed] { a->has_seed = seed->count() > 0; });
  return cmd;
}

CLI::App* AddModels(CLI::App& app, ModelsArgs* a) {
  CLI::App* cmd = app.add_subcommand("models", "list the model catalog");
  cmd->add_option("--kind", a->kind, "only image or video models")
      ->check(CLI::IsMember({"image", "video"}));
  return cmd;
}

CLI::App* AddNote(CLI::App& app, NoteArgs* a) {
  CLI::App* cmd = app.add_subcommand("note", "add a support note to a task");
  cmd->add_option("ID", a->id, "task id or upstream task id")->required();
  cmd->add_option("TEXT", a->text, "the note (quote it)")->required();
  cmd->add_option("--final-cause", a->final_cause,
                  "the final cause in plain words");
  cmd->add_option("--author", a->author, "author (default: $USER)");
  return cmd;
}

CLI::App* AddStats(CLI::App& app, StatsArgs* a) {
  CLI::App* cmd =
      app.add_subcommand("stats",
                         "counts, failures, queue waits and the most frequent "
                         "unclassified failure messages");
  cmd->add_option("--window", a->window, "how far back, such as 15m or 2h")
      ->capture_default_str();
  cmd->add_option("--model", a->model, "only this model");
  cmd->add_option("--by", a->by,
                  "one row per model, per upstream route of a model (is it "
                  "the provider or one route?), or per group of a model")
      ->check(CLI::IsMember({"model", "route", "group"}))
      ->capture_default_str();
  return cmd;
}

CLI::App* AddClassify(CLI::App& app, ClassifyArgs* a) {
  CLI::App* cmd = app.add_subcommand(
      "classify",
      "what the failure rules make of an upstream error, and which rule "
      "decided");
  cmd->add_option("--model", a->model,
                  "model of the task (its catalog vendor scopes the rules)")
      ->required();
  cmd->add_option("--http", a->http_status,
                  "HTTP status the upstream answered with (100-599)");
  cmd->add_option("--code", a->error_code, "upstream error code");
  cmd->add_option("--message", a->message, "upstream error message (quote it)");
  return cmd;
}

CLI::App* AddAudit(CLI::App& app, AuditArgs* a) {
  CLI::App* cmd = app.add_subcommand(
      "audit", "who read a task through support or admin credentials");
  cmd->add_option("ID", a->id, "task id or upstream task id")->required();
  cmd->add_option("--limit", a->limit, "at most N entries, newest first")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  return cmd;
}

CLI::App* AddBackup(CLI::App& app, BackupArgs* a) {
  CLI::App* cmd = app.add_subcommand(
      "backup",
      "take a backup of the store now (admin; tasktraild needs "
      "--backup-dir)");
  cmd->add_flag("--list", a->list, "list the kept backups, newest first");
  return cmd;
}

CLI::App* AddCharges(CLI::App& app, ChargesArgs* a) {
  CLI::App* cmd = app.add_subcommand(
      "charges",
      "an account's tasks with what each was charged, adjusted, refunded and "
      "the net, and the totals (--json: one JSON object per line)");
  AddCreationRangeOptions(cmd, {&a->account, &a->since, &a->until,
                                /*account_required=*/true});
  return cmd;
}

CLI::App* AddOwed(CLI::App& app, OwedArgs* a) {
  CLI::App* cmd = app.add_subcommand(
      "owed",
      "the list to refund: tasks failed on the provider's or the gateway's "
      "side or canceled, charged and not refunded, oldest first, and the "
      "total owed (--json: one JSON object per line)");
  cmd->add_option("--older-than", a->older_than,
                  "only tasks finished at least this long ago (90s, 10m, 2h, "
                  "7d); default: every owed task");
  cmd->add_option("--model", a->model, "only this model");
  return cmd;
}

CLI::App* AddExport(CLI::App& app, ExportArgs* a) {
  CLI::App* cmd = app.add_subcommand(
      "export",
      "write tasks as NDJSON, oldest first: one proto3-JSON task per line "
      "(admin)");
  AddCreationRangeOptions(cmd, {&a->account, &a->since, &a->until,
                                /*account_required=*/false,
                                /*since_default=*/"from the first task",
                                /*until_default=*/"up to now"});
  cmd->add_flag("--events,!--no-events", a->events,
                "include each task's whole timeline (default: yes)");
  cmd->add_option("--after", a->after,
                  "resume a broken export after this task id (the one it "
                  "named)");
  return cmd;
}

CLI::App* AddPurge(CLI::App& app, PurgeArgs* a) {
  CLI::App* cmd = app.add_subcommand(
      "purge",
      "delete a task now, whatever its state (admin; an erasure request): "
      "its timeline, notes and audit log go, one audit entry records the "
      "purge");
  cmd->add_option("ID", a->id, "task id")->required();
  cmd->add_option("--reason", a->reason,
                  "why (kept in the audit entry of the purge)")
      ->required();
  return cmd;
}

int Main(int argc, char** argv) {
  CLI::App app{"tasktrail: look up image and video generation tasks",
               "tasktrail"};
  app.fallthrough();
  app.require_subcommand(1);
  app.footer(
      "Global options may also follow the command, e.g. `tasktrail get ID "
      "--json`.");
  GlobalOptions global;
  AddGlobalOptions(app, &global);
  GetArgs get;
  QueuedArgs queued;
  ListArgs list;
  WatchArgs watch;
  ValidateArgs validate;
  ModelsArgs models;
  NoteArgs note;
  StatsArgs stats;
  AuditArgs audit;
  StuckArgs stuck;
  ClassifyArgs classify;
  BackupArgs backup;
  ChargesArgs charges;
  OwedArgs owed;
  ExportArgs export_args;
  PurgeArgs purge;
  CLI::App* get_cmd = AddGet(app, &get);
  CLI::App* queued_cmd = AddQueued(app, &queued);
  CLI::App* list_cmd = AddList(app, &list);
  CLI::App* watch_cmd = AddWatch(app, &watch);
  CLI::App* validate_cmd = AddValidate(app, &validate);
  CLI::App* models_cmd = AddModels(app, &models);
  CLI::App* note_cmd = AddNote(app, &note);
  CLI::App* stats_cmd = AddStats(app, &stats);
  CLI::App* audit_cmd = AddAudit(app, &audit);
  CLI::App* stuck_cmd = AddStuck(app, &stuck);
  CLI::App* classify_cmd = AddClassify(app, &classify);
  CLI::App* backup_cmd = AddBackup(app, &backup);
  CLI::App* charges_cmd = AddCharges(app, &charges);
  CLI::App* owed_cmd = AddOwed(app, &owed);
  CLI::App* export_cmd = AddExport(app, &export_args);
  CLI::App* purge_cmd = AddPurge(app, &purge);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (global.server.empty()) global.server = kDefaultServer;
  if (get_cmd->parsed()) return RunGet(global, get);
  if (queued_cmd->parsed()) return RunQueued(global, queued);
  if (list_cmd->parsed()) return RunList(global, list);
  if (watch_cmd->parsed()) return RunWatch(global, watch);
  if (validate_cmd->parsed()) return RunValidate(global, validate);
  if (models_cmd->parsed()) return RunModels(global, models);
  if (note_cmd->parsed()) return RunNote(global, note);
  if (stats_cmd->parsed()) return RunStats(global, stats);
  if (audit_cmd->parsed()) return RunAudit(global, audit);
  if (stuck_cmd->parsed()) return RunStuck(global, stuck);
  if (classify_cmd->parsed()) return RunClassify(global, classify);
  if (backup_cmd->parsed()) return RunBackup(global, backup);
  if (charges_cmd->parsed()) return RunCharges(global, charges);
  if (owed_cmd->parsed()) return RunOwed(global, owed);
  if (export_cmd->parsed()) return RunExport(global, export_args);
  if (purge_cmd->parsed()) return RunPurge(global, purge);
  return kExitUsage;
}

}  // namespace
}  // namespace tasktrail::cli

int main(int argc, char** argv) {
  try {
    return tasktrail::cli::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tasktrail: unexpected error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "tasktrail: unexpected error\n");
  }
  return tasktrail::cli::kExitOther;
}
