// What `tasktrail stuck` and sparse `tasktrail list` filters cost on a large
// store: a store of many finished tasks and a few thousand in flight (written
// straight to the store, without fsyncs), then the ListTasks calls `stuck`
// makes (unfinished, oldest first, with queue statuses, 1,000 a page, every
// page) and those `list --limit 50` makes for sparse filters (paging as the
// CLI pages, until 50 rows or the end), timed.
//
//   build/bench/fleet_bench [TASKS [IN_FLIGHT [RUNS]]]   (1000000 5000 20)
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "service/rules/catalog.h"
#include "service/rules/clock.h"
#include "service/rules/task_id.h"
#include "service/rules/time_util.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/tracker.h"
#include "store/task_store.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tracker_setup.h"

namespace tasktrail {
namespace {

constexpr const char* kModels[] = {"sora-2", "sora-2-pro", "veo-3",
                                   "kling-v2-1", "gen4_turbo"};

// Writes `tasks` tasks created one millisecond apart, of which `in_flight`
// (picked at random) are QUEUED and the others SUCCEEDED or FAILED.
void Fill(store::TaskStore& store, int tasks, int in_flight) {
  std::mt19937_64 random(20261205);
  std::vector<bool> unfinished(tasks, false);
  for (int i = 0; i < in_flight; ++i) unfinished[i] = true;
  std::shuffle(unfinished.begin(), unfinished.end(), random);
  TaskIdGenerator ids(/*seed=*/1);
  const absl::Time start = absl::Now() - absl::Milliseconds(tasks);
  std::atomic<int> pending{0};
  absl::Notification all_done;
  std::atomic<bool> failed{false};
  for (int i = 0; i < tasks; ++i) {
    const absl::Time created = start + absl::Milliseconds(i);
    v1::Task task;
    task.set_task_id(ids.Next(created));
    task.set_account_id("acct-" + std::to_string(random() % 1000));
    task.set_model(kModels[random() % 5]);
    *task.mutable_create_time() = ToProtoTime(created);
    if (unfinished[i]) {
      task.set_state(v1::TASK_STATE_QUEUED);
      task.set_upstream_task_id("up-" + std::to_string(i));
      *task.mutable_queue_enter_time() = ToProtoTime(created);
      *task.mutable_last_upstream_event_time() = ToProtoTime(created);
    } else {
      task.set_state(i % 7 == 0 ? v1::TASK_STATE_FAILED
                                : v1::TASK_STATE_SUCCEEDED);
    }
    store::TaskWrite write;
    write.task = &task;
    absl::StatusOr<store::PreparedWrite> prepared = store.Prepare(write);
    if (!prepared.ok()) std::abort();
    // Up to 1,000 writes in flight, grouped by the commit thread.
    while (pending.load() > 1000) absl::SleepFor(absl::Microseconds(50));
    pending.fetch_add(1);
    store.Commit(*std::move(prepared), [&](absl::Status status) {
      if (!status.ok()) failed.store(true);
      pending.fetch_sub(1);
    });
    if (i % 100000 == 99999) std::fprintf(stderr, "%d tasks written\n", i + 1);
  }
  while (pending.load() > 0) absl::SleepFor(absl::Milliseconds(1));
  if (failed.load()) {
    std::fprintf(stderr, "a write failed\n");
    std::abort();
  }
}

bool TimeStuck(Tracker& tracker, int in_flight, int runs, bool queue_statuses);
bool TimeSparseFilters(Tracker& tracker, absl::Time start, int tasks, int runs);

int Main(int argc, char** argv) {
  const int tasks = argc > 1 ? std::atoi(argv[1]) : 1000000;
  const int in_flight = argc > 2 ? std::atoi(argv[2]) : 5000;
  const int runs = argc > 3 ? std::atoi(argv[3]) : 20;
  if (tasks <= 0 || in_flight < 0 || in_flight > tasks || runs <= 0) {
    std::fprintf(stderr, "usage: fleet_bench [TASKS [IN_FLIGHT [RUNS]]]\n");
    return 2;
  }
  testing::TempDir dir("tasktrail-fleet-bench");
  CatalogHolder catalog{Catalog::BuiltIn()};
  EventHub hub;
  store::StoreOptions options;
  options.path = dir.path();
  options.sync_writes = false;
  absl::StatusOr<testing::OpenedTracker> opened =
      testing::OpenTracker(options, &catalog, SystemClock::Get(), &hub);
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n",
                 std::string(opened.status().message()).c_str());
    return 1;
  }
  const absl::Time fill_start = absl::Now();
  const absl::Time first_created = fill_start - absl::Milliseconds(tasks);
  Fill(*opened->store, tasks, in_flight);
  // As a store that has been running a while: on disk, compacted.
  for (store::ColumnFamily family :
       {store::ColumnFamily::kTasks, store::ColumnFamily::kIndexes}) {
    if (!opened->store->Compact(family).ok()) return 1;
  }
  std::printf("filled and compacted %d tasks (%d in flight) in %s\n", tasks,
              in_flight,
              absl::FormatDuration(absl::Now() - fill_start).c_str());
  for (bool queue_statuses : {true, false}) {
    if (!TimeStuck(*opened->tracker, in_flight, runs, queue_statuses)) {
      return 1;
    }
  }
  if (!TimeSparseFilters(*opened->tracker, first_created, tasks, runs)) {
    return 1;
  }
  return 0;
}

// Times `list --limit 50` with `request`'s filters: pages of at most the rows
// still wanted, until 50 rows or the end, as the CLI asks. Prints the spread,
// the rows and the tasks the server visited.
bool TimeList(Tracker& tracker, const char* name,
              const v1::ListTasksRequest& filters, int runs) {
  constexpr int kLimit = 50;
  std::vector<double> millis;
  int rows = 0;
  int64_t scanned = 0;
  for (int run = 0; run < runs; ++run) {
    v1::ListTasksRequest request = filters;
    rows = 0;
    scanned = 0;
    const absl::Time start = absl::Now();
    while (true) {
      request.set_page_size(kLimit - rows);
      absl::StatusOr<v1::ListTasksResponse> page = tracker.ListTasks(request);
      if (!page.ok()) {
        std::fprintf(stderr, "%s: %s\n", name,
                     std::string(page.status().message()).c_str());
        return false;
      }
      rows += page->tasks_size();
      scanned += page->scanned_count();
      if (page->next_page_token().empty() || rows >= kLimit) break;
      request.set_page_token(page->next_page_token());
    }
    millis.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
  }
  std::sort(millis.begin(), millis.end());
  std::printf(
      "list %s: %d rows, %lld tasks visited; %d runs, median %.1f ms, "
      "max %.1f ms, min %.1f ms\n",
      name, rows, static_cast<long long>(scanned), runs,
      millis[millis.size() / 2], millis.back(), millis.front());
  return true;
}

// The sparse filters support asks for, on the store Fill wrote (1,000
// accounts, 5 models, one task in seven FAILED).
bool TimeSparseFilters(Tracker& tracker, absl::Time start, int tasks,
                       int runs) {
  v1::ListTasksRequest account_failed;
  account_failed.set_account_id("acct-7");
  account_failed.set_state(v1::TASK_STATE_FAILED);
  v1::ListTasksRequest account_model_failed = account_failed;
  account_model_failed.set_model("veo-3");
  v1::ListTasksRequest model_failed;
  model_failed.set_model("veo-3");
  model_failed.set_state(v1::TASK_STATE_FAILED);
  // One minute in the middle of the store's history.
  v1::ListTasksRequest failed_in_a_minute;
  failed_in_a_minute.set_state(v1::TASK_STATE_FAILED);
  const absl::Time middle = start + absl::Milliseconds(tasks / 2);
  *failed_in_a_minute.mutable_create_time_after() = ToProtoTime(middle);
  *failed_in_a_minute.mutable_create_time_before() =
      ToProtoTime(middle + absl::Minutes(1));
  v1::ListTasksRequest account_in_a_minute;
  account_in_a_minute.set_account_id("acct-7");
  *account_in_a_minute.mutable_create_time_after() = ToProtoTime(middle);
  *account_in_a_minute.mutable_create_time_before() =
      ToProtoTime(middle + absl::Minutes(1));
  return TimeList(tracker, "--account --state failed", account_failed, runs) &&
         TimeList(tracker, "--account --model --state failed",
                  account_model_failed, runs) &&
         TimeList(tracker, "--model --state failed", model_failed, runs) &&
         TimeList(tracker, "--state failed, one minute", failed_in_a_minute,
                  runs) &&
         TimeList(tracker, "--account, one minute", account_in_a_minute, runs);
}

// Times the calls of `stuck` `runs` times and prints the spread.
bool TimeStuck(Tracker& tracker, int in_flight, int runs, bool queue_statuses) {
  std::vector<double> millis;
  for (int run = 0; run < runs; ++run) {
    v1::ListTasksRequest request;
    request.set_unfinished(true);
    request.set_oldest_first(true);
    request.set_include_queue_status(queue_statuses);
    request.set_page_size(1000);
    int listed = 0;
    const absl::Time start = absl::Now();
    while (true) {
      absl::StatusOr<v1::ListTasksResponse> page = tracker.ListTasks(request);
      if (!page.ok()) {
        std::fprintf(stderr, "%s\n",
                     std::string(page.status().message()).c_str());
        return false;
      }
      listed += page->tasks_size();
      if (page->next_page_token().empty()) break;
      request.set_page_token(page->next_page_token());
    }
    millis.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    if (listed != in_flight) {
      std::fprintf(stderr, "listed %d tasks, expected %d\n", listed, in_flight);
      return false;
    }
  }
  std::sort(millis.begin(), millis.end());
  std::printf(
      "stuck (every page, %s queue statuses): %d runs, median %.1f ms, "
      "max %.1f ms, min %.1f ms\n",
      queue_statuses ? "with" : "without", runs, millis[millis.size() / 2],
      millis.back(), millis.front());
  return true;
}

}  // namespace
}  // namespace tasktrail

int main(int argc, char** argv) { return tasktrail::Main(argc, argv); }
