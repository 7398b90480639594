// The store conformance suite (tests/store/conformance.h): every scan index
// in both directions (the owed and route indexes through every transition),
// and the records beside the tasks: dedup records, counters and samples per
// model, route and group, audit logs and raw writes, on both stores.
#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "tests/store/conformance.h"
#include "tests/store/scan_ids.h"

namespace tasktrail::store {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// ---------------------------------------------------------------------------
// Every index, both directions, resume and bounds
// ---------------------------------------------------------------------------

TEST_P(StoreConformanceTest, EveryScanIndexHonoursDirectionResumeAndBounds) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  constexpr v1::TaskState kStates[] = {
      v1::TASK_STATE_SUBMITTED, v1::TASK_STATE_QUEUED, v1::TASK_STATE_RUNNING,
      v1::TASK_STATE_SUCCEEDED, v1::TASK_STATE_FAILED, v1::TASK_STATE_CANCELED};
  std::vector<v1::Task> tasks;
  for (int i = 0; i < 30; ++i) {
    v1::Task& task = tasks.emplace_back();
    task.set_task_id(absl::StrFormat("T%03d", i));
    task.set_account_id(i % 3 == 0 ? "acct-a" : "acct-b");
    task.set_model(i % 2 == 0 ? "veo-3" : "kling");
    task.set_state(kStates[i % 6]);
    if (i % 4 == 0) task.set_upstream_task_id(absl::StrCat("up-", i % 8));
    if (i % 5 == 0) task.set_request_id("req-shared");
    if (i % 3 != 0) task.set_route(i % 3 == 1 ? "key-1" : "key-1x");
    // Charged, and for some failures refunded or not the platform's side,
    // so that the owed index holds some FAILED and CANCELED tasks only.
    task.set_charge_units(i % 7 == 0 ? 0 : 10);
    task.set_refunded(i % 11 == 0);
    task.mutable_failure()->set_origin(i % 4 == 0
                                           ? v1::FAILURE_ORIGIN_USER_CONTENT
                                           : v1::FAILURE_ORIGIN_PROVIDER);
    ASSERT_TRUE(Create(*store, task).ok());
  }
  struct Case {
    TaskScan scan;
    std::function<bool(const v1::Task&)> holds;
  };
  const auto scan_of = [](ScanIndex index, std::string value,
                          v1::TaskState state) {
    TaskScan scan;
    scan.index = index;
    scan.value = std::move(value);
    scan.state = state;
    return scan;
  };
  const std::vector<Case> cases = {
      {scan_of(ScanIndex::kAll, "", {}), [](const v1::Task&) { return true; }},
      {scan_of(ScanIndex::kAccount, "acct-a", {}),
       [](const v1::Task& t) { return t.account_id() == "acct-a"; }},
      {scan_of(ScanIndex::kState, "", v1::TASK_STATE_RUNNING),
       [](const v1::Task& t) { return t.state() == v1::TASK_STATE_RUNNING; }},
      {scan_of(ScanIndex::kModel, "kling", {}),
       [](const v1::Task& t) { return t.model() == "kling"; }},
      {scan_of(ScanIndex::kUpstream, "up-4", {}),
       [](const v1::Task& t) { return t.upstream_task_id() == "up-4"; }},
      {scan_of(ScanIndex::kRequest, "req-shared", {}),
       [](const v1::Task& t) { return t.request_id() == "req-shared"; }},
      {scan_of(ScanIndex::kUnfinished, "", {}),
       [](const v1::Task& t) { return IsUnfinishedState(t.state()); }},
      {scan_of(ScanIndex::kAccountState, "acct-b", v1::TASK_STATE_QUEUED),
       [](const v1::Task& t) {
         return t.account_id() == "acct-b" &&
                t.state() == v1::TASK_STATE_QUEUED;
       }},
      {scan_of(ScanIndex::kModelState, "veo-3", v1::TASK_STATE_SUBMITTED),
       [](const v1::Task& t) {
         return t.model() == "veo-3" && t.state() == v1::TASK_STATE_SUBMITTED;
       }},
      {scan_of(ScanIndex::kOwed, "", {}),
       [](const v1::Task& t) {
         return (t.state() == v1::TASK_STATE_CANCELED ||
                 (t.state() == v1::TASK_STATE_FAILED &&
                  t.failure().origin() == v1::FAILURE_ORIGIN_PROVIDER)) &&
                t.charge_units() > 0 && !t.refunded();
       }},
      {scan_of(ScanIndex::kRoute, "key-1", {}),
       [](const v1::Task& t) { return t.route() == "key-1"; }},
      {scan_of(ScanIndex::kRequest, "", {}),
       [](const v1::Task&) { return false; }},
      {scan_of(ScanIndex::kRoute, "", {}),
       [](const v1::Task&) { return false; }},
  };
  for (const Case& c : cases) {
    for (const bool oldest_first : {true, false}) {
      for (const auto& [min_id, end_id] :
           std::vector<std::pair<std::string, std::string>>{
               {"", ""}, {"T005", ""}, {"", "T021"}, {"T004", "T017"}}) {
        SCOPED_TRACE(absl::StrCat("index ", static_cast<int>(c.scan.index),
                                  " oldest_first ", oldest_first, " [", min_id,
                                  ", ", end_id, ")"));
        std::vector<std::string> expected;
        for (const v1::Task& task : tasks) {
          if (!c.holds(task)) continue;
          if (!min_id.empty() && task.task_id() < min_id) continue;
          if (!end_id.empty() && task.task_id() >= end_id) continue;
          expected.push_back(task.task_id());
        }
        if (!oldest_first) std::reverse(expected.begin(), expected.end());
        TaskScan scan = c.scan;
        scan.oldest_first = oldest_first;
        scan.min_task_id = min_id;
        scan.end_task_id = end_id;
        EXPECT_EQ(ScanIds(*store, scan), expected);
        // Resuming after the second task yields the rest.
        if (expected.size() > 2) {
          scan.resume_after_task_id = expected[1];
          EXPECT_EQ(
              ScanIds(*store, scan),
              std::vector<std::string>(expected.begin() + 2, expected.end()));
        }
      }
    }
  }
  EXPECT_TRUE(store->VerifyIndexes().ok());
}

TEST_P(StoreConformanceTest, ScanStoredTasksGivesEachTasksStoredSnapshot) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 12; ++i) {
    v1::Task task;
    task.set_task_id(absl::StrFormat("T%03d", i));
    task.set_account_id(i % 3 == 0 ? "acct-a" : "acct-b");
    task.mutable_params()->set_prompt(
        std::string(static_cast<size_t>(100 * i), 'p'));
    ASSERT_TRUE(Create(*store, task).ok());
  }
  for (const ScanIndex index : {ScanIndex::kAll, ScanIndex::kAccount}) {
    TaskScan scan;
    scan.index = index;
    scan.value = index == ScanIndex::kAccount ? "acct-a" : "";
    scan.oldest_first = true;
    scan.resume_after_task_id = "T000";
    scan.max_visits = 3;
    SCOPED_TRACE(absl::StrCat("index ", static_cast<int>(index)));
    std::vector<std::string> ids;
    absl::StatusOr<std::string> last = store->ScanStoredTasks(
        scan, [&](absl::string_view task_id, absl::string_view snapshot) {
          ids.emplace_back(task_id);
          std::string stored;
          EXPECT_TRUE(store
                          ->VisitTask(task_id,
                                      [&](absl::string_view bytes) {
                                        stored.assign(bytes.data(),
                                                      bytes.size());
                                        return absl::OkStatus();
                                      })
                          .ok());
          EXPECT_EQ(snapshot, stored) << task_id;
          return true;
        });
    ASSERT_TRUE(last.ok()) << last.status();
    // The same tasks in the same order as Scan, and the same resume point.
    EXPECT_EQ(ids, ScanIds(*store, scan));
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(*last, ids.back());
    EXPECT_EQ(ids.size(), 3u);
  }
}

TEST_P(StoreConformanceTest, VerifyIndexesHoldsThroughEveryTransition) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  v1::Task previous;
  previous.set_task_id("T0001");
  previous.set_account_id("acct-1");
  previous.set_model("veo-3");
  previous.set_state(v1::TASK_STATE_SUBMITTED);
  ASSERT_TRUE(Create(*store, previous).ok());
  EXPECT_TRUE(store->VerifyIndexes().ok());
  for (v1::TaskState state : {v1::TASK_STATE_QUEUED, v1::TASK_STATE_RUNNING,
                              v1::TASK_STATE_SUCCEEDED}) {
    v1::Task task = previous;
    task.set_state(state);
    task.set_upstream_task_id(absl::StrCat("up-", static_cast<int>(state)));
    TaskWrite write;
    write.previous = &previous;
    write.task = &task;
    ASSERT_TRUE(store->Write(write).ok());
    EXPECT_TRUE(store->VerifyIndexes().ok());
    previous = task;
  }
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kUpstream, "up-3")),
              IsEmpty());
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kUpstream, "up-4")),
              ElementsAre("T0001"));
  TaskScan unfinished;
  unfinished.index = ScanIndex::kUnfinished;
  EXPECT_THAT(ScanIds(*store, unfinished), IsEmpty());
}

// The owed index (IsOwedTask) follows every change of a task that moves it
// in or out: failure origin, cancellation, charge adjustments, refunds; a
// late result moves nothing. Each step is one write of T0001 while T0002
// stays owed beside it, and the index must match after every step and
// after a reopen.
TEST_P(StoreConformanceTest, OwedIndexFollowsEveryTransitionAndRefund) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  v1::Task other = ParseTask(R"(
    task_id: "T0002" account_id: "acct-1" model: "kling" state: TASK_STATE_FAILED
    charge_units: 7 failure { origin: FAILURE_ORIGIN_GATEWAY })");
  ASSERT_TRUE(Create(*store, other).ok());

  struct Step {
    const char* what;
    std::function<void(v1::Task&)> change;
    bool owed;
  };
  const std::vector<Step> steps = {
      {"queued", [](v1::Task& t) { t.set_state(v1::TASK_STATE_QUEUED); },
       false},
      {"failed by the provider",
       [](v1::Task& t) {
         t.set_state(v1::TASK_STATE_FAILED);
         t.mutable_failure()->set_origin(v1::FAILURE_ORIGIN_PROVIDER);
       },
       true},
      {"a late result",
       [](v1::Task& t) {
         t.set_late_outcome(v1::TASK_STATE_SUCCEEDED);
         t.mutable_late_result_time()->set_seconds(1700000900);
       },
       true},
      {"adjusted to nothing",
       [](v1::Task& t) {
         t.set_adjusted_units(-t.charge_units());
         t.set_net_units(0);
       },
       false},
      {"adjusted up again",
       [](v1::Task& t) {
         t.set_adjusted_units(3 - t.charge_units());
         t.set_net_units(3);
       },
       true},
      {"refunded",
       [](v1::Task& t) {
         t.set_refunded(true);
         t.set_refunded_units(3);
         t.set_net_units(0);
       },
       false},
  };
  v1::Task previous = ParseTask(R"(
    task_id: "T0001" account_id: "acct-1" model: "veo-3"
    state: TASK_STATE_SUBMITTED charge_units: 40)");
  ASSERT_TRUE(Create(*store, previous).ok());
  EXPECT_THAT(ScanIds(*store, OwedScan()), ElementsAre("T0002"));
  for (const Step& step : steps) {
    SCOPED_TRACE(step.what);
    v1::Task task = previous;
    step.change(task);
    TaskWrite write;
    write.previous = &previous;
    write.task = &task;
    ASSERT_TRUE(store->Write(write).ok());
    EXPECT_EQ(IsOwedTask(task), step.owed);
    if (step.owed) {
      EXPECT_THAT(ScanIds(*store, OwedScan()), ElementsAre("T0001", "T0002"));
    } else {
      EXPECT_THAT(ScanIds(*store, OwedScan()), ElementsAre("T0002"));
    }
    EXPECT_TRUE(store->VerifyIndexes().ok());
    previous = task;
  }

  // Who failed it, and cancellations, for a charged task never refunded.
  const std::pair<v1::Task, bool> kinds[] = {
      {ParseTask(R"(task_id: "T0003" state: TASK_STATE_FAILED charge_units: 1
                    failure { origin: FAILURE_ORIGIN_CONFIGURATION })"),
       false},
      {ParseTask(R"(task_id: "T0004" state: TASK_STATE_FAILED charge_units: 1
                    failure { origin: FAILURE_ORIGIN_USER_CONTENT })"),
       false},
      {ParseTask(R"(task_id: "T0005" state: TASK_STATE_FAILED charge_units: 1
                    failure { origin: FAILURE_ORIGIN_UNKNOWN })"),
       true},
      {ParseTask(R"(task_id: "T0006" state: TASK_STATE_CANCELED
                    charge_units: 1)"),
       true},
      {ParseTask(R"(task_id: "T0007" state: TASK_STATE_SUCCEEDED
                    charge_units: 1)"),
       false},
      {ParseTask(R"(task_id: "T0008" state: TASK_STATE_FAILED
                    failure { origin: FAILURE_ORIGIN_PROVIDER })"),
       false},
  };
  std::vector<std::string> owed = {"T0002"};
  for (const auto& [task, is_owed] : kinds) {
    SCOPED_TRACE(task.ShortDebugString());
    EXPECT_EQ(IsOwedTask(task), is_owed);
    ASSERT_TRUE(Create(*store, task).ok());
    if (is_owed) owed.push_back(task.task_id());
  }
  EXPECT_EQ(ScanIds(*store, OwedScan()), owed);
  EXPECT_TRUE(store->VerifyIndexes().ok());

  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ScanIds(*store, OwedScan()), owed);
  EXPECT_TRUE(store->VerifyIndexes().ok());
}

// The route index follows Task.route through every transition: no entry
// before the task is queued on a route, the entry moves when a later queued
// event names another route, leaves when one names none, stays through the
// finish, and goes with the purge. T0002 stays on "key-a" beside it; the
// index must match after every step and after a reopen.
TEST_P(StoreConformanceTest, RouteIndexFollowsEveryTransition) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Create(*store, ParseTask(R"(
    task_id: "T0002" account_id: "acct-1" model: "kling"
    state: TASK_STATE_SUCCEEDED route: "key-a")"))
                  .ok());
  struct Step {
    const char* what;
    std::function<void(v1::Task&)> change;
    std::vector<std::string> on_key_a;
    std::vector<std::string> on_key_b;
  };
  const std::vector<Step> steps = {
      {"queued on key-a",
       [](v1::Task& t) {
         t.set_state(v1::TASK_STATE_QUEUED);
         t.set_route("key-a");
       },
       {"T0001", "T0002"},
       {}},
      {"started",
       [](v1::Task& t) { t.set_state(v1::TASK_STATE_RUNNING); },
       {"T0001", "T0002"},
       {}},
      {"queued again on key-b",
       [](v1::Task& t) {
         t.set_state(v1::TASK_STATE_QUEUED);
         t.set_route("key-b");
       },
       {"T0002"},
       {"T0001"}},
      {"queued again on no route",
       [](v1::Task& t) { t.set_route(""); },
       {"T0002"},
       {}},
      {"queued again on key-b and failed",
       [](v1::Task& t) {
         t.set_route("key-b");
         t.set_state(v1::TASK_STATE_FAILED);
       },
       {"T0002"},
       {"T0001"}},
  };
  v1::Task previous = ParseTask(R"(
    task_id: "T0001" account_id: "acct-1" model: "kling"
    state: TASK_STATE_SUBMITTED)");
  ASSERT_TRUE(Create(*store, previous).ok());
  EXPECT_THAT(ScanIds(*store, RouteScan("key-a")), ElementsAre("T0002"));
  EXPECT_THAT(ScanIds(*store, RouteScan("key-b")), IsEmpty());
  for (const Step& step : steps) {
    SCOPED_TRACE(step.what);
    v1::Task task = previous;
    step.change(task);
    TaskWrite write;
    write.previous = &previous;
    write.task = &task;
    ASSERT_TRUE(store->Write(write).ok());
    EXPECT_EQ(ScanIds(*store, RouteScan("key-a")), step.on_key_a);
    EXPECT_EQ(ScanIds(*store, RouteScan("key-b")), step.on_key_b);
    EXPECT_THAT(ScanIds(*store, RouteScan("key-")), IsEmpty());
    EXPECT_TRUE(store->VerifyIndexes().ok());
    previous = task;
  }

  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(ScanIds(*store, RouteScan("key-a")), ElementsAre("T0002"));
  EXPECT_THAT(ScanIds(*store, RouteScan("key-b")), ElementsAre("T0001"));
  EXPECT_TRUE(store->VerifyIndexes().ok());

  ASSERT_TRUE(store->PurgeTask("T0001", {}).ok());
  EXPECT_THAT(ScanIds(*store, RouteScan("key-b")), IsEmpty());
  EXPECT_THAT(ScanIds(*store, RouteScan("key-a")), ElementsAre("T0002"));
  EXPECT_TRUE(store->VerifyIndexes().ok());
}

// ---------------------------------------------------------------------------
// Records beside the tasks
// ---------------------------------------------------------------------------

TEST_P(StoreConformanceTest, DedupRecordsAreReadUntilTheyExpire) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::string expiring = RequestIdDedupKey("acct-1", "req-1");
  const std::string forever = ContentDedupKey("acct-1", "fingerprint-1");
  // A payload is binary.
  const std::string payload("shape\x00\xff", 7);
  ASSERT_TRUE(
      store
          ->WriteRaw({RawMutation::PutDedup(expiring, {2000, "T0001", payload}),
                      RawMutation::PutDedup(forever, {0, "T0002", ""})})
          .ok());
  absl::StatusOr<absl::optional<DedupRecord>> record =
      store->GetDedupRecord(expiring, 1999);
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_TRUE(record->has_value());
  EXPECT_EQ((*record)->task_id, "T0001");
  EXPECT_EQ((*record)->payload, payload);
  EXPECT_EQ((*record)->expire_unix_micros, 2000);
  record = store->GetDedupRecord(expiring, 2000);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_FALSE(record->has_value());
  record = store->GetDedupRecord(forever, int64_t{1} << 60);
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_TRUE(record->has_value());
  EXPECT_EQ((*record)->task_id, "T0002");
  // Keys of another account or scope are apart.
  record = store->GetDedupRecord(RequestIdDedupKey("acct-2", "req-1"), 0);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_FALSE(record->has_value());
  record = store->GetDedupRecord(ContentDedupKey("acct-1", "req-1"), 0);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_FALSE(record->has_value());

  // An expired record is replaced; a deleted one is gone.
  ASSERT_TRUE(
      store
          ->WriteRaw({RawMutation::PutDedup(expiring, {0, "T0003", payload}),
                      {ColumnFamily::kDedup, forever, absl::nullopt}})
          .ok());
  record = store->GetDedupRecord(expiring, 5000);
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_TRUE(record->has_value());
  EXPECT_EQ((*record)->task_id, "T0003");
  record = store->GetDedupRecord(forever, 0);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_FALSE(record->has_value());
}

TEST_P(StoreConformanceTest, DedupRecordsReadTogetherAnswerInKeyOrder) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::string request = RequestIdDedupKey("acct-1", "req-1");
  const std::string content = ContentDedupKey("acct-1", "fingerprint-1");
  const std::string expired = ContentDedupKey("acct-1", "fingerprint-2");
  const std::string absent = RequestIdDedupKey("acct-2", "req-1");
  const std::string payload("shape\x00\xff", 7);
  ASSERT_TRUE(
      store
          ->WriteRaw({RawMutation::PutDedup(request, {0, "T0001", payload}),
                      RawMutation::PutDedup(content, {9000, "T0002", ""}),
                      RawMutation::PutDedup(expired, {1000, "T0003", ""})})
          .ok());
  // The answers follow the keys' order, whatever order the store finds
  // them in, and a key asked twice is answered twice.
  absl::StatusOr<std::vector<absl::optional<DedupRecord>>> records =
      store->GetDedupRecords({absent, content, expired, request, content},
                             5000);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 5u);
  EXPECT_FALSE((*records)[0].has_value());
  ASSERT_TRUE((*records)[1].has_value());
  EXPECT_EQ((*records)[1]->task_id, "T0002");
  EXPECT_EQ((*records)[1]->expire_unix_micros, 9000);
  EXPECT_FALSE((*records)[2].has_value()) << "expired at 1000";
  ASSERT_TRUE((*records)[3].has_value());
  EXPECT_EQ((*records)[3]->task_id, "T0001");
  EXPECT_EQ((*records)[3]->payload, payload);
  ASSERT_TRUE((*records)[4].has_value());
  EXPECT_EQ((*records)[4]->task_id, "T0002");
  records = store->GetDedupRecords({}, 0);
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_TRUE(records->empty());
}

TEST_P(StoreConformanceTest, DedupRecordsReadTogetherTakeKeysOfAnyBytes) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  // Keys with what an array literal or a bytea text form could trip on.
  const std::vector<std::string> keys = {
      std::string("quote\"d,{brace}", 15),
      std::string("back\\slash\\x00", 14),
      std::string("nul\x00inside\x00", 12),
      std::string("\xff\xfe\x80high", 7),
      std::string("NULL"),
      std::string(" spaced "),
      std::string(""),
  };
  std::vector<RawMutation> puts;
  for (size_t i = 0; i < keys.size(); ++i) {
    puts.push_back(
        RawMutation::PutDedup(keys[i], {0, absl::StrCat("T", i), keys[i]}));
  }
  ASSERT_TRUE(store->WriteRaw(puts).ok());
  // Asked in reverse, with a key absent and one that differs from a stored
  // one only after a NUL.
  std::vector<std::string> asked(keys.rbegin(), keys.rend());
  asked.push_back(std::string("nul\x00other", 9));
  absl::StatusOr<std::vector<absl::optional<DedupRecord>>> records =
      store->GetDedupRecords(asked, 0);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), asked.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const absl::optional<DedupRecord>& record = (*records)[i];
    const size_t key = keys.size() - 1 - i;
    ASSERT_TRUE(record.has_value()) << "key " << key;
    EXPECT_EQ(record->task_id, absl::StrCat("T", key));
    EXPECT_EQ(record->payload, keys[key]);
  }
  EXPECT_FALSE(records->back().has_value());
  // Each key alone answers the same.
  for (size_t i = 0; i < keys.size(); ++i) {
    records = store->GetDedupRecords({keys[i]}, 0);
    ASSERT_TRUE(records.ok()) << records.status();
    ASSERT_EQ(records->size(), 1u);
    ASSERT_TRUE(records->front().has_value()) << "key " << i;
    EXPECT_EQ(records->front()->task_id, absl::StrCat("T", i));
  }
}

TEST_P(StoreConformanceTest, CountersAddUpAndScanByMinuteModelAndName) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Task task = ParseTask(kTask);
  TaskWrite write;
  write.task = &task;
  write.extra = {
      RawMutation::CountOne(100, "veo-3", CounterKind::kEnteredState, "QUEUED"),
      RawMutation::CountOne(100, "veo-3", CounterKind::kEnteredState, "QUEUED"),
      RawMutation::CountOne(101, "veo-3", CounterKind::kRejected)};
  ASSERT_TRUE(store->Write(write).ok());
  ASSERT_TRUE(
      store
          ->WriteRaw(
              {RawMutation::Add(
                   CounterKey(
                       100, "veo-3",
                       CounterName(CounterKind::kEnteredState, "QUEUED")),
                   5),
               RawMutation::CountOne(100, "kling", CounterKind::kRejected),
               RawMutation::CountOne(99, "veo-3", CounterKind::kRejected),
               RawMutation::CountOne(102, "veo-3", CounterKind::kRejected)})
          .ok());
  std::vector<std::string> seen;
  ASSERT_TRUE(
      store
          ->ScanCounters(100, 102,
                         [&](const ParsedCounterKey& key, int64_t value) {
                           seen.push_back(absl::StrCat(key.unix_minute, " ",
                                                       key.model, " ", key.name,
                                                       "=", value));
                         })
          .ok());
  EXPECT_THAT(seen,
              ElementsAre("100 kling rejected=1", "100 veo-3 state:QUEUED=7",
                          "101 veo-3 rejected=1"));
}

// Model names are the caller's: quotes, backslashes, commas, braces and
// the word NULL reach the store as they are and count apart.
TEST_P(StoreConformanceTest, CountersOfModelsWithAwkwardNamesCountApart) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::vector<std::string> models = {
      "q\"uote", "back\\slash", "com,ma", "{brace}", "NULL", "sp ace", ""};
  std::vector<RawMutation> mutations;
  for (size_t i = 0; i < models.size(); ++i) {
    for (size_t n = 0; n <= i; ++n) {
      mutations.push_back(
          RawMutation::CountOne(100, models[i], CounterKind::kRejected));
    }
  }
  ASSERT_TRUE(store->WriteRaw(mutations).ok());
  std::map<std::string, int64_t> seen;
  ASSERT_TRUE(
      store
          ->ScanCounters(100, 101,
                         [&](const ParsedCounterKey& key, int64_t value) {
                           seen[key.model] += value;
                         })
          .ok());
  std::map<std::string, int64_t> expected;
  for (size_t i = 0; i < models.size(); ++i) {
    expected[models[i]] = static_cast<int64_t>(i + 1);
  }
  EXPECT_EQ(seen, expected);
}

// The counters of a route's or a group's row sit beside the model's and
// parse back to their row; each sample series is kept apart, and a purge
// takes every sample of the task with it.
TEST_P(StoreConformanceTest, RowsByRouteAndGroupKeepTheirCountersAndSamples) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(
      store
          ->WriteRaw(
              {RawMutation::CountOne(100, "kling", CounterKind::kLateResult,
                                     "SUCCEEDED"),
               RawMutation::CountOneIn(StatsScope::kRoute, "key-7", 100,
                                       "kling", CounterKind::kLateResult,
                                       "SUCCEEDED"),
               RawMutation::CountOneIn(StatsScope::kGroup, "vip", 100, "kling",
                                       CounterKind::kDuplicatesBlocked),
               RawMutation::CountOneIn(StatsScope::kRoute, "key-7", 100,
                                       "kling", CounterKind::kLateResult,
                                       "SUCCEEDED")})
          .ok());
  std::vector<std::string> seen;
  ASSERT_TRUE(
      store
          ->ScanCounters(100, 101,
                         [&](const ParsedCounterKey& key, int64_t value) {
                           absl::optional<ParsedCounterName> name =
                               ParseCounterName(key.name);
                           ASSERT_TRUE(name.has_value()) << key.name;
                           seen.push_back(absl::StrCat(
                               key.model, " ", static_cast<int>(name->scope),
                               " ", name->scope_value, " ",
                               static_cast<int>(name->kind), " ", name->detail,
                               "=", value));
                         })
          .ok());
  EXPECT_THAT(
      seen,
      ::testing::UnorderedElementsAre(
          absl::StrCat("kling 0  ", static_cast<int>(CounterKind::kLateResult),
                       " SUCCEEDED=1"),
          absl::StrCat("kling 1 key-7 ",
                       static_cast<int>(CounterKind::kLateResult),
                       " SUCCEEDED=2"),
          absl::StrCat("kling 2 vip ",
                       static_cast<int>(CounterKind::kDuplicatesBlocked),
                       " =1")));

  v1::Task task = ParseTask(kTask);
  task.set_route("key-7");
  task.set_group("vip");
  task.set_state(v1::TASK_STATE_SUCCEEDED);
  task.mutable_queue_exit_time()->set_seconds(1700000010);
  task.mutable_finish_time()->set_seconds(1700000070);
  ASSERT_TRUE(Create(*store, task).ok());
  std::vector<RawMutation> samples;
  for (const TaskSampleKey& key : TaskSampleKeys(task)) {
    samples.push_back(RawMutation::PutQueueSample(key.series, key.unix_micros,
                                                  task.task_id(), 42));
  }
  ASSERT_EQ(samples.size(), 9u);  // 3 kinds x model, route, group
  samples.push_back(RawMutation::PutQueueSample(
      SampleSeries(SampleKind::kRunTime, "veo-3", StatsScope::kRoute, "key-7"),
      5, "T-other", 7));
  ASSERT_TRUE(store->WriteRaw(samples).ok());
  const auto count = [&](const std::string& series) {
    int n = 0;
    EXPECT_TRUE(
        store->ScanQueueSamples(series, [&](QueueSample) { ++n; }).ok());
    return n;
  };
  const std::string route_runs =
      SampleSeries(SampleKind::kRunTime, "veo-3", StatsScope::kRoute, "key-7");
  EXPECT_EQ(count("veo-3"), 1);
  EXPECT_EQ(count(route_runs), 2);
  EXPECT_EQ(count(SampleSeries(SampleKind::kEndToEnd, "veo-3",
                               StatsScope::kGroup, "vip")),
            1);
  ASSERT_TRUE(store->PurgeTask(task.task_id(), {}).ok());
  EXPECT_EQ(count("veo-3"), 0);
  EXPECT_EQ(count(route_runs), 1);  // T-other's
  EXPECT_EQ(count(SampleSeries(SampleKind::kEndToEnd, "veo-3",
                               StatsScope::kGroup, "vip")),
            0);
}

TEST_P(StoreConformanceTest, QueueSamplesAreKeptPerModelOldestExitFirst) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(
      store
          ->WriteRaw({RawMutation::PutQueueSample("veo-3", 300, "T3", 30),
                      RawMutation::PutQueueSample("veo-3", 100, "T1", 10),
                      RawMutation::PutQueueSample("veo-3", 200, "T2", 20),
                      RawMutation::PutQueueSample("kling", 150, "T9", 90)})
          .ok());
  ASSERT_TRUE(
      store->WriteRaw({RawMutation::DeleteQueueSample("veo-3", 200, "T2")})
          .ok());
  std::vector<std::string> seen;
  ASSERT_TRUE(store
                  ->ScanQueueSamples("veo-3",
                                     [&](QueueSample sample) {
                                       seen.push_back(absl::StrCat(
                                           sample.exit_unix_micros, " ",
                                           sample.task_id, " ",
                                           sample.wait_micros));
                                     })
                  .ok());
  EXPECT_THAT(seen, ElementsAre("100 T1 10", "300 T3 30"));
}

TEST_P(StoreConformanceTest, AuditLogsReadBothWaysWithPositions) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  // Two entries share a microsecond (told apart by the nonce); one entry
  // comes through WriteRaw, as the service writes a batch of them.
  ASSERT_TRUE(store->WriteAudit("T0001", 2000, 2, "second").ok());
  ASSERT_TRUE(store->WriteAudit("T0001", 1000, 1, "first").ok());
  ASSERT_TRUE(store->WriteAudit("T0001", 2000, 3, "third").ok());
  ASSERT_TRUE(store
                  ->WriteRaw({{ColumnFamily::kAudit, AuditKey("T0001", 3000, 4),
                               std::string("fourth")}},
                             TaskStore::Durability::kBuffered)
                  .ok());
  ASSERT_TRUE(store->WriteAudit("T00010", 1500, 5, "other task").ok());

  std::vector<std::string> oldest_first;
  ASSERT_TRUE(store
                  ->ScanAudit("T0001",
                              [&](absl::string_view entry) {
                                oldest_first.emplace_back(entry);
                              })
                  .ok());
  EXPECT_THAT(oldest_first, ElementsAre("first", "second", "third", "fourth"));

  // Newest first, two at a time, continuing from the last position.
  std::vector<std::string> newest_first;
  std::string before;
  for (int page = 0; page < 4; ++page) {
    int in_page = 0;
    ASSERT_TRUE(store
                    ->ScanAuditNewestFirst("T0001", before,
                                           [&](absl::string_view position,
                                               absl::string_view entry) {
                                             newest_first.emplace_back(entry);
                                             before = std::string(position);
                                             return ++in_page < 2;
                                           })
                    .ok());
    if (in_page == 0) break;
  }
  EXPECT_THAT(newest_first, ElementsAre("fourth", "third", "second", "first"));
}

TEST_P(StoreConformanceTest, WriteRawAppliesEveryMutationTogether) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (TaskStore::Durability durability :
       {TaskStore::Durability::kSynced, TaskStore::Durability::kBuffered}) {
    const std::string key = RequestIdDedupKey(
        "acct-1", absl::StrCat("req-", static_cast<int>(durability)));
    ASSERT_TRUE(store
                    ->WriteRaw({RawMutation::PutDedup(key, {0, "T1", ""}),
                                RawMutation::CountOne(7, "veo-3",
                                                      CounterKind::kRejected)},
                               durability)
                    .ok());
    absl::StatusOr<absl::optional<DedupRecord>> record =
        store->GetDedupRecord(key, 0);
    ASSERT_TRUE(record.ok()) << record.status();
    EXPECT_TRUE(record->has_value());
  }
  int64_t rejected = 0;
  ASSERT_TRUE(store
                  ->ScanCounters(7, 8,
                                 [&](const ParsedCounterKey&, int64_t value) {
                                   rejected += value;
                                 })
                  .ok());
  EXPECT_EQ(rejected, 2);
  // Written data stays after the store is reopened.
  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<absl::optional<DedupRecord>> record =
      store->GetDedupRecord(RequestIdDedupKey("acct-1", "req-0"), 0);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_TRUE(record->has_value());
}

TEST_P(StoreConformanceTest, PrepareRefusesAWriteWithoutATask) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  TaskWrite write;
  EXPECT_EQ(store->Prepare(write).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::Task nameless;
  write.task = &nameless;
  EXPECT_EQ(store->Prepare(write).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(store->failed());
}

}  // namespace
}  // namespace tasktrail::store
