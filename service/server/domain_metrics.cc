#include "service/server/domain_metrics.h"

#include <map>
#include <utility>

#include "absl/strings/strip.h"
#include "service/rules/lifecycle.h"

namespace tasktrail {
namespace {

// Queue waits run from seconds to hours.
const prometheus::Histogram::BucketBoundaries& QueueWaitBuckets() {
  static const auto* const buckets =
      new prometheus::Histogram::BucketBoundaries{
          1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200};
  return *buckets;
}

constexpr v1::TaskState kUnfinishedStates[] = {
    v1::TASK_STATE_SUBMITTED, v1::TASK_STATE_QUEUED, v1::TASK_STATE_RUNNING};

prometheus::ClientMetric GaugeMetric(prometheus::ClientMetric::Label model,
                                     absl::string_view state, double value) {
  prometheus::ClientMetric metric;
  metric.label.push_back(std::move(model));
  if (!state.empty()) metric.label.push_back({"state", std::string(state)});
  metric.gauge.value = value;
  return metric;
}

}  // namespace

ModelLabels::ModelLabels(const CatalogHolder* catalog) : catalog_(catalog) {
  for (const v1::ModelSpec& spec : catalog_->Get()->document().models()) {
    if (initial_set_.insert(spec.name()).second)
      initial_.push_back(spec.name());
  }
  initial_.emplace_back(kUnknownModel);
  initial_set_.emplace(kUnknownModel);
}

bool ModelLabels::Known(absl::string_view model) const {
  return initial_set_.contains(model) ||
         catalog_->Get()->Find(model) != nullptr;
}

std::string ModelLabels::Label(absl::string_view model) const {
  return std::string(Known(model) ? model : kUnknownModel);
}

DomainMetrics::DomainMetrics(prometheus::Registry& registry,
                             const CatalogHolder* catalog,
                             absl::Duration stale_after)
    : labels_(catalog),
      unfinished_(stale_after),
      submitted_(prometheus::BuildCounter()
                     .Name("tasktrail_tasks_submitted_total")
                     .Help("New tasks recorded (blocked duplicates and "
                           "rejected submissions not included).")
                     .Register(registry)),
      transitions_(prometheus::BuildCounter()
                       .Name("tasktrail_task_transitions_total")
                       .Help("Tasks that entered a state (a new task enters "
                             "SUBMITTED).")
                       .Register(registry)),
      failures_(prometheus::BuildCounter()
                    .Name("tasktrail_task_failures_total")
                    .Help("Tasks that failed, by failure category and origin.")
                    .Register(registry)),
      duplicates_(prometheus::BuildCounter()
                      .Name("tasktrail_duplicates_blocked_total")
                      .Help("Submissions answered with the task they "
                            "duplicate, by dedup reason.")
                      .Register(registry)),
      rejections_(prometheus::BuildCounter()
                      .Name("tasktrail_validation_rejections_total")
                      .Help("Submissions refused by catalog validation, once "
                            "per distinct violation reason.")
                      .Register(registry)),
      refunds_(prometheus::BuildCounter()
                   .Name("tasktrail_refunds_total")
                   .Help("Tasks whose charge was refunded.")
                   .Register(registry)),
      queue_wait_(prometheus::BuildHistogram()
                      .Name("tasktrail_queue_wait_seconds")
                      .Help("Time from QUEUED to leaving the queue (started "
                            "or finished), in seconds.")
                      .Register(registry)) {
  for (const std::string& label : labels_.initial()) {
    initial_.emplace(label, MakeSeries(label));
  }
}

DomainMetrics::ModelSeries DomainMetrics::MakeSeries(const std::string& label) {
  ModelSeries series;
  series.submitted = &submitted_.Add({{"model", label}});
  series.refunds = &refunds_.Add({{"model", label}});
  series.queue_wait = &queue_wait_.Add({{"model", label}}, QueueWaitBuckets());
  for (int state = v1::TASK_STATE_SUBMITTED; state <= v1::TASK_STATE_CANCELED;
       ++state) {
    series.entered[state] = &transitions_.Add(
        {{"model", label},
         {"state", std::string(StateName(static_cast<v1::TaskState>(state)))}});
  }
  return series;
}

const DomainMetrics::ModelSeries& DomainMetrics::Series(
    absl::string_view model) {
  auto found = initial_.find(model);
  if (found != initial_.end()) return found->second;
  if (!labels_.Known(model)) return initial_.find(kUnknownModel)->second;
  absl::MutexLock lock(&mutex_);
  std::unique_ptr<ModelSeries>& series = added_[std::string(model)];
  if (series == nullptr) {
    series = std::make_unique<ModelSeries>(MakeSeries(std::string(model)));
  }
  return *series;
}

void DomainMetrics::OnSubmitted(absl::string_view model) {
  Series(model).submitted->Increment();
}

void DomainMetrics::OnStateEntered(absl::string_view model,
                                   v1::TaskState state) {
  const ModelSeries& series = Series(model);
  if (state > v1::TASK_STATE_UNSPECIFIED &&
      state < static_cast<int>(series.entered.size())) {
    series.entered[state]->Increment();
  }
}

void DomainMetrics::OnFailed(absl::string_view model,
                             v1::FailureCategory category,
                             v1::FailureOrigin origin) {
  failures_
      .Add(
          {{"model", labels_.Label(model)},
           {"category",
            std::string(absl::StripPrefix(v1::FailureCategory_Name(category),
                                          "FAILURE_CATEGORY_"))},
           {"origin", std::string(absl::StripPrefix(
                          v1::FailureOrigin_Name(origin), "FAILURE_ORIGIN_"))}})
      .Increment();
}

void DomainMetrics::OnDuplicateBlocked(absl::string_view model,
                                       v1::DedupReason reason) {
  duplicates_
      .Add({{"model", labels_.Label(model)},
            {"reason", std::string(absl::StripPrefix(
                           v1::DedupReason_Name(reason), "DEDUP_REASON_"))}})
      .Increment();
}

void DomainMetrics::OnRejected(absl::string_view model,
                               absl::Span<const std::string> reasons) {
  const std::string label = labels_.Label(model);
  for (const std::string& reason : reasons) {
    rejections_.Add({{"model", label}, {"reason", reason}}).Increment();
  }
}

void DomainMetrics::OnRefunded(absl::string_view model) {
  Series(model).refunds->Increment();
}

void DomainMetrics::OnTaskWritten(absl::string_view task_id,
                                  absl::string_view model, v1::TaskState state,
                                  absl::Time last_upstream_event) {
  unfinished_.Update(task_id, model, state, last_upstream_event);
}

void DomainMetrics::OnLeftQueue(absl::string_view model, absl::Duration wait) {
  Series(model).queue_wait->Observe(absl::ToDoubleSeconds(wait));
}

UnfinishedCollector::UnfinishedCollector(const UnfinishedTally* tally,
                                         const ModelLabels* labels,
                                         const Clock* clock)
    : tally_(tally), labels_(labels), clock_(clock) {}

std::vector<prometheus::MetricFamily> UnfinishedCollector::Collect() const {
  const UnfinishedCounts counts = tally_->Count(clock_->Now());
  // By label, then state; every initial model at zero first.
  std::map<std::string, std::map<v1::TaskState, int64_t>> unfinished;
  std::map<std::string, int64_t> stalled;
  for (const std::string& label : labels_->initial()) {
    for (v1::TaskState state : kUnfinishedStates) unfinished[label][state] = 0;
    stalled[label] = 0;
  }
  for (const auto& [key, count] : counts.by_model_state) {
    const std::string label = labels_->Label(key.first);
    for (v1::TaskState state : kUnfinishedStates) unfinished[label][state];
    unfinished[label][key.second] += count;
  }
  for (const auto& [model, count] : counts.stalled_by_model) {
    stalled[labels_->Label(model)] += count;
  }

  prometheus::MetricFamily unfinished_family;
  unfinished_family.name = "tasktrail_tasks_unfinished";
  unfinished_family.help =
      "Tasks in SUBMITTED, QUEUED or RUNNING now (read from the store).";
  unfinished_family.type = prometheus::MetricType::Gauge;
  for (const auto& [label, states] : unfinished) {
    for (const auto& [state, count] : states) {
      unfinished_family.metric.push_back(GaugeMetric(
          {"model", label}, StateName(state), static_cast<double>(count)));
    }
  }
  prometheus::MetricFamily stalled_family;
  stalled_family.name = "tasktrail_tasks_stalled";
  stalled_family.help =
      "Tasks POLLING_STALLED now: queued or running with no upstream event "
      "for longer than --stale-after (the gateway's poller has stopped).";
  stalled_family.type = prometheus::MetricType::Gauge;
  for (const auto& [label, count] : stalled) {
    stalled_family.metric.push_back(
        GaugeMetric({"model", label}, "", static_cast<double>(count)));
  }
  std::vector<prometheus::MetricFamily> families;
  families.push_back(std::move(unfinished_family));
  families.push_back(std::move(stalled_family));
  return families;
}

}  // namespace tasktrail
