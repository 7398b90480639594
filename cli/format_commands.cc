// The answers of the commands other than `get`: queue status, task lists,
// validation, audit, models and stats (format.h, "Other commands").
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "cli/format.h"
#include "cli/format_internal.h"

namespace tasktrail::cli {
namespace {

using format_internal::AddField;
using format_internal::AddPart;
using format_internal::EnumWord;
using format_internal::IsSet;
using format_internal::kSep;
using format_internal::LowerWords;
using format_internal::Table;
using ::tasktrail::v1::Task;

// "a 3 · b 1" from a proto map, sorted by key; empty for an empty map.
std::string CountsLine(const google::protobuf::Map<std::string, int64_t>& m) {
  std::map<std::string, int64_t> sorted(m.begin(), m.end());
  std::vector<std::string> parts;
  for (const auto& [key, count] : sorted) {
    parts.push_back(absl::StrCat(key, " ", count));
  }
  return absl::StrJoin(parts, kSep);
}

std::string StatCount(const v1::ModelStats& m, absl::string_view state) {
  int64_t total = 0;
  for (const auto& [key, count] : m.tasks_by_state()) {
    std::string word = absl::AsciiStrToUpper(key);
    if (absl::StripPrefix(word, "TASK_STATE_") == state) total += count;
  }
  return absl::StrCat(total);
}

// The column a row's route or group is shown in, when the rows are grouped
// so; empty for rows by model.
std::string ScopeColumn(const v1::Stats& stats) {
  for (const v1::ModelStats& m : stats.models()) {
    if (!m.route().empty()) return "ROUTE";
    if (!m.group().empty()) return "GROUP";
  }
  return "";
}

// "MODEL", "MODEL route R" or "MODEL group G": what a row counts.
std::string RowName(const v1::ModelStats& m) {
  if (!m.route().empty()) return absl::StrCat(m.model(), " route ", m.route());
  if (!m.group().empty()) return absl::StrCat(m.model(), " group ", m.group());
  return m.model();
}

// One row per model (or route or group of a model): totals, outcomes,
// duplicates, queue waits, run times and end-to-end times.
std::string StatsTable(const v1::Stats& stats) {
  if (stats.models_size() == 0) return "no tasks in the window\n";
  const std::string scope = ScopeColumn(stats);
  std::vector<std::string> header = {"MODEL"};
  if (!scope.empty()) header.push_back(scope);
  for (const char* column :
       {"SUBMITTED", "SUCCEEDED", "FAILED", "CANCELED", "DUP BLOCKED",
        "WAIT P50", "WAIT P90", "RUN P50", "RUN P90", "E2E P50", "E2E P90"}) {
    header.push_back(column);
  }
  Table table(header);
  const auto span = [](const google::protobuf::Duration& d) {
    return FormatSpan(ToAbslDuration(d));
  };
  for (const v1::ModelStats& m : stats.models()) {
    std::vector<std::string> row = {m.model()};
    if (!scope.empty()) row.push_back(scope == "ROUTE" ? m.route() : m.group());
    for (std::string cell :
         {StatCount(m, "SUBMITTED"), StatCount(m, "SUCCEEDED"),
          StatCount(m, "FAILED"), StatCount(m, "CANCELED"),
          absl::StrCat(m.duplicates_blocked()), span(m.queue_wait_p50()),
          span(m.queue_wait_p90()), span(m.run_time_p50()),
          span(m.run_time_p90()), span(m.end_to_end_p50()),
          span(m.end_to_end_p90())}) {
      row.push_back(std::move(cell));
    }
    table.Add(row);
  }
  return table.Render();
}

// Per model: counts by state, failure category and origin, rejections, late
// upstream results, and the most frequent unclassified failure messages.
std::string StatsBreakdown(const v1::Stats& stats) {
  std::string out;
  for (const v1::ModelStats& m : stats.models()) {
    std::string block;
    AddField(&block, "  entered", CountsLine(m.tasks_by_state()));
    AddField(&block, "  failures", CountsLine(m.failures_by_category()));
    AddField(&block, "  origins", CountsLine(m.failures_by_origin()));
    AddField(&block, "  rejected", CountsLine(m.rejections_by_reason()));
    // Results the provider reported after the task failed or was canceled
    // here: "SUCCEEDED" ones are jobs it may bill for.
    AddField(&block, "  late results", CountsLine(m.late_results()));
    if (m.unclassified_size() > 0) {
      // Failures no rule recognised, most frequent first: the next rules.
      block.append("  unclassified\n");
      for (const v1::UnclassifiedMessage& line : m.unclassified()) {
        absl::StrAppend(&block, "    ", line.count(), " × ", line.message(),
                        "\n");
      }
    }
    if (!block.empty()) absl::StrAppend(&out, "\n", RowName(m), "\n", block);
  }
  return out;
}

}  // namespace

// ---- Other commands --------------------------------------------------------

std::string FormatQueueStatus(const v1::QueueStatus& s,
                              const FormatOptions& opts) {
  std::string out;
  AddField(&out, "task", s.task_id());
  std::string verdict =
      LowerWords(EnumWord(v1::QueueVerdict_Name(s.verdict()), "QUEUE_VERDICT_",
                          "VERDICT", s.verdict()));
  AddField(&out, "state", absl::StrCat(StateName(s.state()), kSep, verdict));
  std::string wait = FormatSpan(ToAbslDuration(s.time_in_queue()));
  if (s.typical_wait_samples() > 0) {
    absl::StrAppend(&wait, " (typical for this model: p50 ",
                    FormatSpan(ToAbslDuration(s.typical_wait_p50())), kSep,
                    "p90 ", FormatSpan(ToAbslDuration(s.typical_wait_p90())),
                    ", ", s.typical_wait_samples(), " tasks)");
  } else {
    absl::StrAppend(&wait, " (no typical wait known for this model yet)");
  }
  AddField(&out, "in queue", wait);
  std::vector<std::string> up;
  AddPart(&up, "status", s.upstream_status());
  if (s.queue_position() > 0) {
    up.push_back(absl::StrCat("position ", s.queue_position()));
  }
  AddField(&out, "upstream", absl::StrJoin(up, kSep));
  if (s.has_last_poll_time()) {
    AddField(&out, "last poll",
             FormatTimeWithAge(ToAbslTime(s.last_poll_time()), opts));
  }
  AddField(&out, "eta",
           s.has_upstream_eta()
               ? absl::StrCat(FormatSpan(ToAbslDuration(s.upstream_eta())),
                              " (given by the upstream)")
               : "none given by the upstream");
  AddField(&out, "resubmit", s.resubmit_advised() ? "advised" : "not advised");
  AddField(&out, "advice", s.advice());
  return out;
}

std::string FormatTaskList(const v1::ListTasksResponse& response,
                           const FormatOptions& opts,
                           bool stopped_at_work_bound) {
  std::string out;
  if (response.tasks_size() == 0) {
    if (!stopped_at_work_bound) out = "no tasks\n";
  } else {
    Table table(
        {"TASK ID", "CREATED", "ACCOUNT", "MODEL", "STATE", "UPSTREAM ID"});
    for (const Task& t : response.tasks()) {
      table.Add({t.task_id(),
                 FormatTimeWithAge(ToAbslTime(t.create_time()), opts),
                 t.account_id(), t.model(), StateName(t.state()),
                 t.upstream_task_id().empty() ? "-" : t.upstream_task_id()});
    }
    out = table.Render();
  }
  if (!response.next_page_token().empty()) {
    absl::StrAppend(&out, "next page: --page-token ",
                    response.next_page_token(), "\n");
  }
  if (stopped_at_work_bound) {
    absl::StrAppend(&out, "scanned ", response.scanned_count(),
                    " tasks; more may exist (--all to go on)\n");
  }
  return out;
}

namespace {

// The verdicts in the order `stuck` totals them: the most urgent first.
constexpr v1::QueueVerdict kVerdictsByUrgency[] = {
    v1::QUEUE_VERDICT_POLLING_STALLED,
    v1::QUEUE_VERDICT_QUEUED_LONGER_THAN_USUAL,
    v1::QUEUE_VERDICT_WAITING_FOR_UPSTREAM,
    v1::QUEUE_VERDICT_QUEUED_NORMAL,
    v1::QUEUE_VERDICT_RUNNING,
    v1::QUEUE_VERDICT_FINISHED,
    v1::QUEUE_VERDICT_UNSPECIFIED,
};

std::string VerdictWord(v1::QueueVerdict verdict) {
  return EnumWord(v1::QueueVerdict_Name(verdict), "QUEUE_VERDICT_", "VERDICT",
                  verdict);
}

// Since when an unfinished task has waited: its last upstream event, or its
// creation while SUBMITTED.
absl::Time WaitingSince(const Task& t) {
  const absl::Time last_upstream = ToAbslTime(t.last_upstream_event_time());
  if (t.state() != v1::TASK_STATE_SUBMITTED && IsSet(last_upstream)) {
    return last_upstream;
  }
  return ToAbslTime(t.create_time());
}

}  // namespace

std::string FormatStuck(const v1::ListTasksResponse& matching, int limit,
                        const FormatOptions& opts) {
  if (matching.tasks_size() == 0) return "no stuck tasks\n";
  Table table({"TASK ID", "MODEL", "ACCOUNT", "STATE", "VERDICT", "WAITING"});
  std::map<int, int64_t> totals;
  for (int i = 0; i < matching.tasks_size(); ++i) {
    const Task& t = matching.tasks(i);
    const v1::QueueVerdict verdict = i < matching.queue_statuses_size()
                                         ? matching.queue_statuses(i).verdict()
                                         : v1::QUEUE_VERDICT_UNSPECIFIED;
    ++totals[verdict];
    if (i >= limit) continue;
    const absl::Time since = WaitingSince(t);
    table.Add({t.task_id(), t.model(), t.account_id(), StateName(t.state()),
               VerdictWord(verdict),
               IsSet(since) ? FormatSpan(opts.now - since) : "-"});
  }
  std::string out = table.Render();
  if (matching.tasks_size() > limit) {
    absl::StrAppend(&out, "… and ", matching.tasks_size() - limit,
                    " more (--limit)\n");
  }
  std::vector<std::string> parts;
  for (v1::QueueVerdict verdict : kVerdictsByUrgency) {
    const auto total = totals.find(verdict);
    if (total == totals.end()) continue;
    parts.push_back(absl::StrCat(total->second, " ", VerdictWord(verdict)));
    totals.erase(total);
  }
  for (const auto& [verdict, count] : totals) {  // verdicts this build lacks
    parts.push_back(absl::StrCat(
        count, " ", VerdictWord(static_cast<v1::QueueVerdict>(verdict))));
  }
  absl::StrAppend(&out, absl::StrJoin(parts, kSep), "\n");
  return out;
}

std::string FormatValidation(const v1::ValidateTaskResponse& response,
                             absl::string_view model) {
  if (response.violations_size() == 0) {
    return absl::StrCat("valid for ", model, "\n");
  }
  std::string out;
  for (const v1::FieldViolation& v : response.violations()) {
    absl::StrAppend(&out, v.field(), ": ", v.description());
    if (!v.reason().empty()) absl::StrAppend(&out, " (", v.reason(), ")");
    out.append("\n");
  }
  return out;
}

namespace {

std::string RangeText(const v1::IntRange& range) {
  if (range.min() == range.max()) return absl::StrCat(range.min());
  return absl::StrCat(range.min(), "-", range.max());
}

// What a model accepts, one cell per aspect.
std::vector<std::string> ModelRow(const v1::ModelSpec& m) {
  std::vector<std::string> resolutions;
  for (const v1::ResolutionSpec& r : m.resolutions()) {
    resolutions.push_back(r.name());
  }
  std::string durations = "-";
  if (m.durations_size() > 0) {
    durations = absl::StrCat(absl::StrJoin(m.durations(), "/"), " s");
  } else if (m.duration_range().max() > 0) {
    durations = absl::StrCat(RangeText(m.duration_range()), " s");
  }
  const v1::ReferenceImageSpec& refs = m.reference_images();
  std::string images = "-";
  if (refs.max_count() > 0) {
    images = absl::StrCat(refs.required() ? "required" : "optional", ", ≤",
                          refs.max_count());
    if (refs.max_bytes() > 0) {
      absl::StrAppend(&images, ", ≤", refs.max_bytes() / (1024 * 1024), " MB");
    }
  }
  std::vector<std::string> extras;
  if (m.audio_supported()) extras.push_back("audio");
  if (m.image_count().max() > 0) {
    extras.push_back(absl::StrCat("n=", RangeText(m.image_count())));
  }
  if (m.seed_range().max() > 0) extras.push_back("seed");
  if (m.groups_size() > 0) {
    extras.push_back(absl::StrCat("groups ", absl::StrJoin(m.groups(), "/")));
  }
  auto or_dash = [](const std::string& text) {
    return text.empty() ? std::string("-") : text;
  };
  return {m.name(),
          KindName(m.kind()),
          or_dash(absl::StrJoin(m.aspect_ratios(), " ")),
          or_dash(absl::StrJoin(resolutions, " ")),
          durations,
          images,
          or_dash(absl::StrJoin(extras, ", "))};
}

}  // namespace

std::string FormatAudit(const v1::ListAuditResponse& response,
                        const FormatOptions& opts) {
  if (response.entries_size() == 0) return "no support or admin reads\n";
  Table table({"TIME", "PRINCIPAL", "ROLE", "RPC", "REASON"});
  for (const v1::AuditEntry& entry : response.entries()) {
    table.Add({FormatTimeWithAge(ToAbslTime(entry.time()), opts),
               entry.principal(), entry.role().empty() ? "-" : entry.role(),
               entry.rpc(), entry.reason().empty() ? "-" : entry.reason()});
  }
  return table.Render();
}

std::string FormatBackups(const std::vector<v1::Backup>& backups,
                          const FormatOptions& opts) {
  if (backups.empty()) return "no backups\n";
  Table table({"ID", "TAKEN", "TASKS", "SIZE"});
  for (const v1::Backup& backup : backups) {
    table.Add({absl::StrCat(backup.backup_id()),
               FormatTimeWithAge(ToAbslTime(backup.create_time()), opts),
               absl::StrCat(backup.task_count()),
               absl::StrCat(backup.size_bytes(), " bytes")});
  }
  return table.Render();
}

std::string FormatModels(const v1::ListModelsResponse& response) {
  if (response.models_size() == 0) return "no models\n";
  Table table({"NAME", "KIND", "RATIOS", "RESOLUTIONS", "DURATION",
               "REF IMAGES", "OTHER"});
  for (const v1::ModelSpec& m : response.models()) table.Add(ModelRow(m));
  std::string out = table.Render();
  if (!response.catalog_version().empty()) {
    absl::StrAppend(&out, "catalog version ", response.catalog_version(), "\n");
  }
  return out;
}

std::string FormatStats(const v1::Stats& stats, const FormatOptions& opts) {
  std::string out =
      absl::StrCat("window ", FormatSpan(ToAbslDuration(stats.window())));
  if (stats.has_compute_time()) {
    absl::StrAppend(&out, kSep, "computed ",
                    FormatTimeWithAge(ToAbslTime(stats.compute_time()), opts));
  }
  absl::StrAppend(&out, "\n\n", StatsTable(stats), StatsBreakdown(stats));
  if (stats.incidents_size() == 0) return absl::StrCat(out, "\nno incidents\n");
  out.append("\nincidents\n");
  for (const std::string& incident : stats.incidents()) {
    absl::StrAppend(&out, "  - ", incident, "\n");
  }
  return out;
}

}  // namespace tasktrail::cli
