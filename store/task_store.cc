#include "store/task_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace tasktrail::store {

absl::StatusOr<v1::Task> TaskStore::GetTask(absl::string_view task_id) const {
  v1::Task task;
  absl::Status read = VisitTask(task_id, [&](absl::string_view bytes) {
    if (!task.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError(
          absl::StrCat("stored task ", task_id, " does not parse"));
    }
    return absl::OkStatus();
  });
  if (!read.ok()) return read;
  return task;
}

absl::StatusOr<std::string> TaskStore::Scan(
    const TaskScan& scan,
    const std::function<bool(const v1::Task&)>& visit) const {
  absl::Status parsed;
  absl::StatusOr<std::string> last = ScanStoredTasks(
      scan, [&](absl::string_view task_id, absl::string_view snapshot) {
        v1::Task task;
        if (!task.ParseFromArray(snapshot.data(),
                                 static_cast<int>(snapshot.size()))) {
          parsed = absl::DataLossError(
              absl::StrCat("stored task ", task_id, " does not parse"));
          return false;
        }
        return visit(task);
      });
  if (!parsed.ok()) return parsed;
  return last;
}

bool IsUnfinishedState(v1::TaskState state) {
  return state == v1::TASK_STATE_SUBMITTED || state == v1::TASK_STATE_QUEUED ||
         state == v1::TASK_STATE_RUNNING;
}

bool IsOwedTask(const v1::Task& task) {
  const bool platform_side =
      task.state() == v1::TASK_STATE_CANCELED ||
      (task.state() == v1::TASK_STATE_FAILED &&
       task.failure().origin() != v1::FAILURE_ORIGIN_CONFIGURATION &&
       task.failure().origin() != v1::FAILURE_ORIGIN_USER_CONTENT);
  return platform_side && !task.refunded() &&
         task.charge_units() + task.adjusted_units() > 0;
}

std::vector<TaskSampleKey> TaskSampleKeys(const v1::Task& task) {
  const auto micros = [](const google::protobuf::Timestamp& time) {
    return time.seconds() * 1000000 + time.nanos() / 1000;
  };
  std::vector<std::pair<StatsScope, const std::string*>> rows = {
      {StatsScope::kModel, nullptr}};
  if (!task.route().empty())
    rows.emplace_back(StatsScope::kRoute, &task.route());
  if (!task.group().empty())
    rows.emplace_back(StatsScope::kGroup, &task.group());
  std::vector<TaskSampleKey> keys;
  for (const auto& [scope, value] : rows) {
    const absl::string_view scope_value =
        value == nullptr ? absl::string_view() : absl::string_view(*value);
    if (task.has_queue_exit_time()) {
      keys.push_back({SampleSeries(SampleKind::kQueueWait, task.model(), scope,
                                   scope_value),
                      micros(task.queue_exit_time())});
    }
    if (task.has_finish_time()) {
      for (SampleKind kind : {SampleKind::kRunTime, SampleKind::kEndToEnd}) {
        keys.push_back({SampleSeries(kind, task.model(), scope, scope_value),
                        micros(task.finish_time())});
      }
    }
  }
  return keys;
}

namespace {
thread_local int bulk_read_depth = 0;
}  // namespace

BulkReadScope::BulkReadScope() { ++bulk_read_depth; }
BulkReadScope::~BulkReadScope() { --bulk_read_depth; }
bool BulkReadScope::Active() { return bulk_read_depth > 0; }

PreparedWrite::PreparedWrite(std::unique_ptr<Body> body, std::string what)
    : body_(std::move(body)), what_(std::move(what)) {}
PreparedWrite::PreparedWrite(PreparedWrite&&) noexcept = default;
PreparedWrite& PreparedWrite::operator=(PreparedWrite&&) noexcept = default;
PreparedWrite::~PreparedWrite() = default;

absl::Status TaskStore::CommitAndWait(PreparedWrite prepared) {
  absl::Notification committed;
  absl::Status result;
  Commit(std::move(prepared), [&](absl::Status status) {
    result = std::move(status);
    committed.Notify();
  });
  committed.WaitForNotification();
  return result;
}

absl::Status TaskStore::PurgeTask(absl::string_view task_id,
                                  absl::Span<const std::string> dedup_keys) {
  absl::StatusOr<PreparedWrite> prepared = PreparePurge(task_id, dedup_keys);
  if (!prepared.ok()) return prepared.status();
  return CommitAndWait(*std::move(prepared));
}

absl::Status TaskStore::Write(const TaskWrite& write) {
  absl::StatusOr<PreparedWrite> prepared = Prepare(write);
  if (!prepared.ok()) return prepared.status();
  return CommitAndWait(*std::move(prepared));
}

}  // namespace tasktrail::store
