#include "store/rocksdb/index_entries.h"

namespace tasktrail::store {
namespace {

int64_t UnixMicros(const google::protobuf::Timestamp& time) {
  return time.seconds() * 1000000 + time.nanos() / 1000;
}

// The retention index value of `task`: a finished task by its finish time
// (its last change when a snapshot lacks one), any other by its last change.
std::string RetentionValue(const v1::Task& task) {
  if (IsUnfinishedState(task.state())) {
    return RetentionIndexValue(RetentionClass::kUnfinished,
                               UnixMicros(task.update_time()));
  }
  return RetentionIndexValue(
      RetentionClass::kFinished,
      UnixMicros(task.has_finish_time() ? task.finish_time()
                                        : task.update_time()));
}

}  // namespace

absl::optional<std::string> IndexValue(IndexKind kind, const v1::Task& task) {
  const std::string state(1, static_cast<char>(task.state()));
  const auto unless_empty =
      [](const std::string& value) -> absl::optional<std::string> {
    if (value.empty()) return absl::nullopt;
    return value;
  };
  switch (kind) {
    case IndexKind::kAccount:
      return unless_empty(task.account_id());
    case IndexKind::kState:
      return state;
    case IndexKind::kModel:
      return unless_empty(task.model());
    case IndexKind::kUpstream:
      return unless_empty(task.upstream_task_id());
    case IndexKind::kRequest:
      return unless_empty(task.request_id());
    case IndexKind::kUnfinished:
      if (!IsUnfinishedState(task.state())) return absl::nullopt;
      return std::string();
    case IndexKind::kAccountState:
      return PairIndexValue(task.account_id(), state);
    case IndexKind::kModelState:
      return PairIndexValue(task.model(), state);
    case IndexKind::kRetention:
      return RetentionValue(task);
    case IndexKind::kOwed:
      if (!IsOwedTask(task)) return absl::nullopt;
      return std::string();
    case IndexKind::kRoute:
      return unless_empty(task.route());
  }
  return absl::nullopt;
}

}  // namespace tasktrail::store
