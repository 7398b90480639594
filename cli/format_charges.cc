// `charges`: an account's tasks with what each was charged, adjusted,
// refunded and the net, and the totals (format.h, FormatCharges), or one
// JSON object per task for a ledger reconciliation (FormatChargeRowJson).
// `owed`: the list to refund with its total (FormatOwed, FormatOwedRowJson).
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "cli/format.h"
#include "cli/format_internal.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace tasktrail::cli {
namespace {

using format_internal::Table;
using ::tasktrail::v1::Task;

int64_t Refunded(const Task& task) {
  return task.refunded() ? task.refunded_units() : 0;
}

std::string Signed(int64_t units) {
  return units > 0 ? absl::StrCat("+", units) : absl::StrCat(units);
}

// The origin's name without its prefix; "" when unset.
std::string OriginName(const Task& task) {
  if (task.failure().origin() == v1::FAILURE_ORIGIN_UNSPECIFIED) return "";
  return std::string(absl::StripPrefix(
      v1::FailureOrigin_Name(task.failure().origin()), "FAILURE_ORIGIN_"));
}

std::string LateOutcomeName(const Task& task) {
  if (task.late_outcome() == v1::TASK_STATE_UNSPECIFIED) return "";
  return StateName(task.late_outcome());
}

// RFC 3339 in UTC with fractional seconds.
std::string Rfc3339Utc(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", time, absl::UTCTimeZone());
}

// What an owed task owes back: its charge after adjustments.
int64_t OwedUnits(const Task& task) {
  return task.charge_units() + task.adjusted_units();
}

absl::StatusOr<std::string> JsonLine(const google::protobuf::Struct& row) {
  std::string line;
  const auto status = google::protobuf::util::MessageToJsonString(row, &line);
  if (!status.ok()) {
    return absl::InternalError(std::string(status.message()));
  }
  return line;
}

}  // namespace

std::string FormatOwed(const google::protobuf::RepeatedPtrField<Task>& tasks,
                       const FormatOptions& opts) {
  if (tasks.empty()) return "nothing owed\n";
  Table table(
      {"TASK", "MODEL", "ACCOUNT", "STATE", "ORIGIN", "OWED", "FINISHED"});
  int64_t total = 0;
  for (const Task& task : tasks) {
    total += OwedUnits(task);
    const std::string origin = OriginName(task);
    table.Add({task.task_id(), task.model(), task.account_id(),
               StateName(task.state()),
               origin.empty() ? "-" : absl::AsciiStrToLower(origin),
               absl::StrCat(OwedUnits(task)),
               FormatRelative(ToAbslTime(task.finish_time()), opts.now)});
  }
  return absl::StrCat(table.Render(), "\n", tasks.size(),
                      tasks.size() == 1 ? " task" : " tasks", " owed · ", total,
                      " units\n");
}

absl::StatusOr<std::string> FormatOwedRowJson(const Task& task,
                                              absl::Time now) {
  google::protobuf::Struct row;
  auto& fields = *row.mutable_fields();
  fields["task_id"].set_string_value(task.task_id());
  fields["model"].set_string_value(task.model());
  fields["account_id"].set_string_value(task.account_id());
  fields["state"].set_string_value(StateName(task.state()));
  fields["failure_origin"].set_string_value(OriginName(task));
  fields["owed_units"].set_number_value(static_cast<double>(OwedUnits(task)));
  const absl::Time finished = ToAbslTime(task.finish_time());
  fields["finish_time"].set_string_value(Rfc3339Utc(finished));
  fields["finished_seconds_ago"].set_number_value(
      static_cast<double>(absl::ToInt64Seconds(now - finished)));
  return JsonLine(row);
}

std::string FormatCharges(
    const google::protobuf::RepeatedPtrField<Task>& tasks) {
  if (tasks.empty()) return "no tasks of the account in the range\n";
  Table table({"TASK", "MODEL", "STATE", "CHARGED", "ADJUSTED", "REFUNDED",
               "NET", "ORIGIN", "NOTE"});
  int64_t charged = 0, adjusted = 0, refunded = 0, net = 0;
  for (const Task& task : tasks) {
    charged += task.charge_units();
    adjusted += task.adjusted_units();
    refunded += Refunded(task);
    net += task.net_units();
    std::string note;
    if (task.late_outcome() != v1::TASK_STATE_UNSPECIFIED) {
      note = absl::StrCat("late: provider ",
                          task.late_outcome() == v1::TASK_STATE_SUCCEEDED
                              ? "completed"
                              : "failed");
    }
    const std::string origin = OriginName(task);
    table.Add({task.task_id(), task.model(), StateName(task.state()),
               absl::StrCat(task.charge_units()),
               task.adjusted_units() == 0 ? "0" : Signed(task.adjusted_units()),
               absl::StrCat(Refunded(task)), absl::StrCat(task.net_units()),
               origin.empty() ? "-" : absl::AsciiStrToLower(origin),
               note.empty() ? "-" : note});
  }
  return absl::StrCat(table.Render(), "\n", tasks.size(),
                      tasks.size() == 1 ? " task" : " tasks", " · charged ",
                      charged, " · adjusted ",
                      adjusted == 0 ? "0" : Signed(adjusted), " · refunded ",
                      refunded, " · net ", net, "\n");
}

absl::StatusOr<std::string> FormatChargeRowJson(const Task& task) {
  google::protobuf::Struct row;
  auto& fields = *row.mutable_fields();
  fields["task_id"].set_string_value(task.task_id());
  fields["model"].set_string_value(task.model());
  fields["state"].set_string_value(StateName(task.state()));
  fields["create_time"].set_string_value(
      Rfc3339Utc(ToAbslTime(task.create_time())));
  fields["charged"].set_number_value(static_cast<double>(task.charge_units()));
  fields["adjusted"].set_number_value(
      static_cast<double>(task.adjusted_units()));
  fields["refunded"].set_number_value(static_cast<double>(Refunded(task)));
  fields["net"].set_number_value(static_cast<double>(task.net_units()));
  fields["failure_origin"].set_string_value(OriginName(task));
  fields["late_outcome"].set_string_value(LateOutcomeName(task));
  return JsonLine(row);
}

}  // namespace tasktrail::cli
