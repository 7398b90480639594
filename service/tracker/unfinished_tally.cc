#include "service/tracker/unfinished_tally.h"

#include "service/rules/time_util.h"
#include "store/task_store.h"

namespace tasktrail {
namespace {

bool UpstreamSide(v1::TaskState state) {
  return state == v1::TASK_STATE_QUEUED || state == v1::TASK_STATE_RUNNING;
}

}  // namespace

absl::Status UnfinishedTally::Load(const Tracker& tracker) {
  return tracker.VisitUnfinished([this](const v1::Task& task) {
    Update(task.task_id(), task.model(), task.state(),
           FromProtoTime(task.last_upstream_event_time()));
  });
}

int UnfinishedTally::ModelIndex(absl::string_view model) {
  auto [found, added] =
      model_index_.try_emplace(model, static_cast<int>(models_.size()));
  if (added) models_.emplace_back(model);
  return found->second;
}

void UnfinishedTally::Remove(const std::string* task_id, const Entry& entry) {
  int64_t& count = counts_[{entry.model, entry.state}];
  if (--count == 0) counts_.erase({entry.model, entry.state});
  if (UpstreamSide(entry.state)) {
    upstream_side_.erase({entry.last_upstream_event, task_id});
  }
}

void UnfinishedTally::Update(absl::string_view task_id, absl::string_view model,
                             v1::TaskState state,
                             absl::Time last_upstream_event) {
  absl::MutexLock lock(&mutex_);
  auto found = tasks_.find(task_id);
  if (found != tasks_.end()) {
    Remove(&found->first, found->second);
    if (!store::IsUnfinishedState(state)) {
      tasks_.erase(found);
      return;
    }
  } else {
    if (!store::IsUnfinishedState(state)) return;
    found = tasks_.try_emplace(std::string(task_id)).first;
  }
  Entry& entry = found->second;
  entry.model = ModelIndex(model);
  entry.state = state;
  entry.last_upstream_event = last_upstream_event;
  ++counts_[{entry.model, entry.state}];
  if (UpstreamSide(state)) {
    upstream_side_.emplace(last_upstream_event, &found->first);
  }
}

UnfinishedCounts UnfinishedTally::Count(absl::Time now) const {
  UnfinishedCounts counts;
  absl::MutexLock lock(&mutex_);
  for (const auto& [key, count] : counts_) {
    counts.by_model_state[{models_[key.first], key.second}] = count;
  }
  // Stalled: now - last upstream event > stale_after (IsPollingStalled).
  const absl::Time threshold = now - stale_after_;
  for (const auto& [last_upstream, task_id] : upstream_side_) {
    if (last_upstream >= threshold) break;
    ++counts.stalled_by_model[models_[tasks_.find(*task_id)->second.model]];
  }
  return counts;
}

}  // namespace tasktrail
