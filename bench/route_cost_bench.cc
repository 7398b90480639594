// What a route and a group cost a task's writes: each transition of a task
// with a route (QueuedDetail.route) or a group (SubmitTaskRequest.group)
// also counts in the route's or group's stats row, and a task that leaves the
// queue or finishes also keeps its duration samples in the route's and
// group's series (service/tracker/tracker.cc: CountForTask,
// NewDurationSamples). Each iteration is one task's whole life through the
// Tracker, one call at a time: SubmitTask, then RecordEvent queued, started
// and completed (four writes), with neither, a route, a group, or both.
//
//   build/bench/route_cost_bench --benchmark_min_time=3
//
// Stores: RocksDB without fsync (the writes' CPU and the store's work, not
// the disk), RocksDB with fsync (what a gateway sees, one call in flight), and
// PostgreSQL on a throwaway cluster (synchronous_commit on; started once, a
// database per benchmark). items_per_second counts tasks.
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "service/rules/catalog.h"
#include "service/rules/clock.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/tracker.h"
#include "store/postgres/pg_task_store.h"
#include "store/rocksdb/rocksdb_task_store.h"
#include "tests/support/postgres_cluster.h"
#include "tests/support/temp_dir.h"

namespace tasktrail {
namespace {

enum StoreKind { kRocksDbNoSync = 0, kRocksDbSync = 1, kPostgres = 2 };

// A store of `kind` and a Tracker on it, in a fresh directory or database.
class Subject {
 public:
  // Returns the store's error when it cannot be opened.
  absl::Status Open(StoreKind kind) {
    absl::StatusOr<std::unique_ptr<store::TaskStore>> opened;
    if (kind == kPostgres) {
      absl::StatusOr<testing::TestDatabase> database =
          testing::PostgresCluster::FreshDatabase("route_cost");
      if (!database.ok()) return database.status();
      store::postgres::PgStoreOptions options;
      options.conninfo = database->conninfo;
      opened = store::postgres::PgTaskStore::Open(options);
    } else {
      store::StoreOptions options;
      options.path = dir_.File("db");
      options.sync_writes = kind == kRocksDbSync;
      opened = store::RocksDbTaskStore::Open(options);
    }
    if (!opened.ok()) return opened.status();
    store_ = *std::move(opened);
    tracker_ = std::make_unique<Tracker>(store_.get(), &catalog_,
                                         SystemClock::Get(), &hub_);
    return absl::OkStatus();
  }

  Tracker& tracker() { return *tracker_; }

 private:
  testing::TempDir dir_{"route-cost-bench"};
  CatalogHolder catalog_{Catalog::BuiltIn()};
  EventHub hub_;
  std::unique_ptr<store::TaskStore> store_;
  // Declared after the store: destroyed before it.
  std::unique_ptr<Tracker> tracker_;
};

// One task's life: submitted (in `group`), queued (on `route`), started,
// completed. Returns false when a call fails.
bool LiveOneTask(Tracker& tracker, int64_t n, const std::string& route,
                 const std::string& group) {
  v1::SubmitTaskRequest submit;
  submit.set_account_id(absl::StrCat("acct-", n % 100));
  submit.set_model("veo-3");
  submit.set_endpoint("/v1/videos");
  submit.set_group(group);
  submit.set_charge_units(40);
  submit.mutable_params()->set_prompt(
      absl::StrCat("a lighthouse at dusk, take ", n));
  absl::StatusOr<v1::SubmitTaskResponse> submitted =
      AwaitWrite(tracker, &Tracker::SubmitTask, submit, "");
  if (!submitted.ok()) return false;
  const std::string id = submitted->task().task_id();
  v1::RecordEventRequest events[3];
  events[0].mutable_queued()->set_upstream_task_id("up-" + id);
  events[0].mutable_queued()->set_route(route);
  events[1].mutable_started()->set_progress_percent(1);
  events[2].mutable_completed()->add_result_uris("https://cdn.example.com/" +
                                                 id + ".mp4");
  for (v1::RecordEventRequest& event : events) {
    event.set_task_id(id);
    if (!AwaitWrite(tracker, &Tracker::RecordEvent, event, "").ok()) {
      return false;
    }
  }
  return true;
}

// Args: store kind, route (0/1), group (0/1).
void BM_TaskLife(benchmark::State& state) {
  const auto kind = static_cast<StoreKind>(state.range(0));
  const std::string route = state.range(1) != 0 ? "kling-cn-key-7" : "";
  const std::string group = state.range(2) != 0 ? "vip" : "";
  Subject subject;
  const absl::Status opened = subject.Open(kind);
  if (!opened.ok()) {
    state.SkipWithError(std::string(opened.message()).c_str());
    return;
  }
  int64_t n = 0;
  for (auto _ : state) {
    if (!LiveOneTask(subject.tracker(), ++n, route, group)) {
      state.SkipWithError("a write failed");
      return;
    }
  }
  state.SetItemsProcessed(n);
  state.SetLabel(absl::StrCat(kind == kPostgres      ? "postgres"
                              : kind == kRocksDbSync ? "rocksdb-sync"
                                                     : "rocksdb-nosync",
                              route.empty() ? "" : " route",
                              group.empty() ? "" : " group"));
}
BENCHMARK(BM_TaskLife)
    ->ArgNames({"store", "route", "group"})
    ->ArgsProduct({{kRocksDbNoSync, kRocksDbSync, kPostgres}, {0, 1}, {0, 1}})
    ->UseRealTime()
    ->MeasureProcessCPUTime();

}  // namespace
}  // namespace tasktrail

BENCHMARK_MAIN();
