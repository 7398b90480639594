// DomainMetrics: what the Tracker did, as Prometheus series (it is the
// Tracker's TrackerObserver), and the unfinished and stalled tasks of the
// store, kept in an UnfinishedTally and read when scraped
// (UnfinishedCollector).
//
//   tasktrail_tasks_submitted_total{model}
//   tasktrail_task_transitions_total{model,state}
//   tasktrail_task_failures_total{model,category,origin}
//   tasktrail_duplicates_blocked_total{model,reason}
//   tasktrail_validation_rejections_total{model,reason}
//   tasktrail_refunds_total{model}
//   tasktrail_queue_wait_seconds{model}          histogram
//   tasktrail_tasks_unfinished{model,state}      gauge, read at scrape time
//   tasktrail_tasks_stalled{model}               gauge, read at scrape time
//
// `model` is a name of the catalog (the one in force at start, or one a
// reload added) or "(unknown)": any other name, which a client chose, is
// counted under "(unknown)", so that the number of series stays bounded.
// States, categories, origins and reasons are the enum names without their
// prefix (QUEUED, UPSTREAM_UNAVAILABLE, PROVIDER, SAME_CONTENT) or, for
// rejections, the violation reason (RATIO_UNSUPPORTED).
//
// Thread safety: thread-safe. The series of every catalog model are made at
// construction, so counting a submission or a transition does one hash
// lookup of the model name and atomic increments.
#ifndef TASKTRAIL_SERVICE_SERVER_DOMAIN_METRICS_H_
#define TASKTRAIL_SERVICE_SERVER_DOMAIN_METRICS_H_

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "service/rules/catalog.h"
#include "service/tracker/tracker.h"
#include "service/tracker/tracker_observer.h"
#include "service/tracker/unfinished_tally.h"

namespace tasktrail {

// Maps model names to the label they are counted under: a name of the
// catalog in force (or of the one at construction) is itself; any other is
// kUnknownModel.
//
// Thread safety: thread-safe.
class ModelLabels {
 public:
  // REQUIRES: `catalog` outlives this.
  explicit ModelLabels(const CatalogHolder* catalog);

  // The names of the catalog at construction, and kUnknownModel.
  const std::vector<std::string>& initial() const { return initial_; }

  // True when `model` is counted under its own name.
  bool Known(absl::string_view model) const;

  // `model` when Known, else kUnknownModel.
  std::string Label(absl::string_view model) const;

 private:
  const CatalogHolder* const catalog_;
  std::vector<std::string> initial_;
  absl::flat_hash_set<std::string> initial_set_;
};

class DomainMetrics final : public TrackerObserver {
 public:
  // Adds the families to `registry`, with the series of every model of the
  // catalog in force. REQUIRES: `catalog` outlives this.
  // `stale_after` is the Tracker's (TrackerOptions::stale_after).
  DomainMetrics(prometheus::Registry& registry, const CatalogHolder* catalog,
                absl::Duration stale_after);

  void OnSubmitted(absl::string_view model) override;
  void OnStateEntered(absl::string_view model, v1::TaskState state) override;
  void OnFailed(absl::string_view model, v1::FailureCategory category,
                v1::FailureOrigin origin) override;
  void OnDuplicateBlocked(absl::string_view model,
                          v1::DedupReason reason) override;
  void OnRejected(absl::string_view model,
                  absl::Span<const std::string> reasons) override;
  void OnRefunded(absl::string_view model) override;
  void OnTaskWritten(absl::string_view task_id, absl::string_view model,
                     v1::TaskState state,
                     absl::Time last_upstream_event) override;
  void OnLeftQueue(absl::string_view model, absl::Duration wait) override;

  const ModelLabels& labels() const { return labels_; }

  // The unfinished tasks, which the gauges read; load it (Load) before
  // serving.
  UnfinishedTally& unfinished() { return unfinished_; }

 private:
  // The series of one model label that the hot paths use.
  struct ModelSeries {
    prometheus::Counter* submitted = nullptr;
    prometheus::Counter* refunds = nullptr;
    prometheus::Histogram* queue_wait = nullptr;
    // tasktrail_task_transitions_total by TaskState number.
    std::array<prometheus::Counter*, 7> entered{};
  };

  ModelSeries MakeSeries(const std::string& label);

  // The series of `model`'s label.
  const ModelSeries& Series(absl::string_view model);

  ModelLabels labels_;
  UnfinishedTally unfinished_;
  prometheus::Family<prometheus::Counter>& submitted_;
  prometheus::Family<prometheus::Counter>& transitions_;
  prometheus::Family<prometheus::Counter>& failures_;
  prometheus::Family<prometheus::Counter>& duplicates_;
  prometheus::Family<prometheus::Counter>& rejections_;
  prometheus::Family<prometheus::Counter>& refunds_;
  prometheus::Family<prometheus::Histogram>& queue_wait_;
  // The catalog's models at construction and kUnknownModel; read-only.
  absl::flat_hash_map<std::string, ModelSeries> initial_;
  absl::Mutex mutex_;
  // Models a catalog reload added.
  absl::flat_hash_map<std::string, std::unique_ptr<ModelSeries>> added_
      ABSL_GUARDED_BY(mutex_);
};

// tasktrail_tasks_unfinished{model,state} and tasktrail_tasks_stalled{model},
// read from an UnfinishedTally at each scrape (right after a restart, as it
// is loaded from the store). Every model of ModelLabels::initial() has its
// series, zero when it has no such task. A scrape costs O(models x states +
// stalled tasks), whatever the number of unfinished tasks.
//
// Thread safety: thread-safe (Collect may run on several scrapes at once).
class UnfinishedCollector final : public prometheus::Collectable {
 public:
  // REQUIRES: `tally`, `labels` and `clock` outlive this.
  UnfinishedCollector(const UnfinishedTally* tally, const ModelLabels* labels,
                      const Clock* clock);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const UnfinishedTally* const tally_;
  const ModelLabels* const labels_;
  const Clock* const clock_;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_SERVER_DOMAIN_METRICS_H_
