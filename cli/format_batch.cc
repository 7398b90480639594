// The answers about several tasks at once: `get ID ID...` summary rows, and
// the list of tasks an ambiguous upstream id names (format.h, "Several
// tasks").
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/format.h"
#include "cli/format_internal.h"

namespace tasktrail::cli {
namespace {

using format_internal::EnumWord;
using format_internal::IsSet;
using format_internal::LowerWords;
using format_internal::OneLine;
using format_internal::Table;
using ::tasktrail::v1::Task;

// The widest a cause may be in a summary row.
constexpr size_t kCauseMax = 60;

std::string Created(const Task& task, const FormatOptions& opts) {
  const absl::Time created = ToAbslTime(task.create_time());
  return IsSet(created) ? FormatTimeWithAge(created, opts) : "-";
}

// The verdict of an unfinished task, the cause of a failed or canceled one.
std::string Outcome(const Task& task, const QueueVerdicts& verdicts) {
  if (task.has_failure()) {
    const v1::Failure& failure = task.failure();
    if (!failure.cause().empty()) return OneLine(failure.cause(), kCauseMax);
    return LowerWords(EnumWord(v1::FailureCategory_Name(failure.category()),
                               "FAILURE_CATEGORY_", "CATEGORY",
                               failure.category()));
  }
  auto it = verdicts.find(task.task_id());
  if (it == verdicts.end()) return "-";
  return LowerWords(EnumWord(v1::QueueVerdict_Name(it->second),
                             "QUEUE_VERDICT_", "VERDICT", it->second));
}

}  // namespace

// ---- Several tasks ---------------------------------------------------------

std::string FormatTaskSummaries(const v1::BatchGetTasksResponse& response,
                                const QueueVerdicts& verdicts,
                                const FormatOptions& opts) {
  std::string out;
  if (response.tasks_size() > 0) {
    Table table(
        {"TASK ID", "MODEL", "STATE", "CREATED", "VERDICT / CAUSE", "CHARGE"});
    for (const Task& task : response.tasks()) {
      table.Add({task.task_id(), task.model(), StateName(task.state()),
                 Created(task, opts), Outcome(task, verdicts),
                 FormatChargeLine(task, opts)});
    }
    out = table.Render();
  }
  // Ids that may name a purged task say so on a line each, with the
  // server's sentence (how long tasks are kept); the others share one line.
  // A server that does not fill `missing` gets the one line for all.
  std::vector<std::string> unknown;
  std::vector<std::string> maybe_purged;
  for (int i = 0; i < response.missing_ids_size(); ++i) {
    const std::string& id = response.missing_ids(i);
    if (i < response.missing_size() && response.missing(i).id() == id &&
        response.missing(i).maybe_purged()) {
      maybe_purged.push_back(
          absl::StrCat(OneLine(response.missing(i).message(), 200),
                       " (it may have been purged)"));
    } else {
      unknown.push_back(id);
    }
  }
  if (!unknown.empty()) {
    absl::StrAppend(&out, "not found: ", absl::StrJoin(unknown, ", "), "\n");
  }
  for (const std::string& line : maybe_purged)
    absl::StrAppend(&out, line, "\n");
  return out;
}

std::string FormatAmbiguousId(
    absl::string_view id,
    const google::protobuf::RepeatedPtrField<v1::Task>& tasks,
    const FormatOptions& opts) {
  std::string out = absl::StrCat("upstream id ", id, " matches ", tasks.size(),
                                 " tasks; pass one of their task ids:\n");
  Table table({"TASK ID", "MODEL", "STATE", "CREATED"});
  for (const Task& task : tasks) {
    table.Add({task.task_id(), task.model(), StateName(task.state()),
               Created(task, opts)});
  }
  absl::StrAppend(&out, table.Render());
  return out;
}

}  // namespace tasktrail::cli
