// The TaskStore contract (store/task_store.h), written once and run against
// both stores: RocksDbTaskStore in a temporary directory and PgTaskStore on a
// throwaway PostgreSQL cluster (tests/support/postgres_cluster.h, started
// once for the suite; a database of its own per test). The PostgreSQL cases
// fail, not skip, when no cluster can start: the test dependencies
// (scripts/install-deps.sh --test) install the server.
//
// PgConflictTest adds what only a store shared by several processes has: two
// stores on one database, whose writes prepared from a stale read are
// ABORTED (store/postgres/pg_task_store.h).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "service/rules/task_id.h"
#include "service/rules/time_util.h"
#include "store/keys.h"
#include "store/postgres/pg_task_store.h"
#include "store/rocksdb/rocksdb_task_store.h"
#include "store/task_store.h"
#include "tasktrail/v1/task.pb.h"
#include "tests/store/scan_ids.h"
#include "tests/support/postgres_cluster.h"
#include "tests/support/temp_dir.h"

namespace tasktrail::store {
namespace {

using ::google::protobuf::TextFormat;
using ::google::protobuf::util::MessageDifferencer;
using ::tasktrail::testing::PostgresCluster;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

enum class Backend { kRocksDb, kPostgres };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kRocksDb ? "RocksDb" : "Postgres";
}

// Names the store in test listings (ctest shows the parameter).
void PrintTo(Backend backend, std::ostream* os) {
  *os << (backend == Backend::kRocksDb ? "RocksDb" : "Postgres");
}

class StoreConformanceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() != Backend::kPostgres) return;
    absl::StatusOr<testing::TestDatabase> database =
        PostgresCluster::FreshDatabase("conformance");
    ASSERT_TRUE(database.ok())
        << "the PostgreSQL store tests need a PostgreSQL server "
           "(scripts/install-deps.sh --test installs it): "
        << database.status();
    cluster_ = database->cluster;
    database_ = database->name;
  }

  // A store on this test's directory or database; a second call opens a
  // second store on the same data (after the first is closed, for RocksDB).
  std::unique_ptr<TaskStore> OpenStore(int pool_size = 4) {
    if (GetParam() == Backend::kRocksDb) {
      StoreOptions options;
      options.path = dir_.File("db");
      options.block_cache_mb = 8;
      absl::StatusOr<std::unique_ptr<RocksDbTaskStore>> store =
          RocksDbTaskStore::Open(options);
      EXPECT_TRUE(store.ok()) << store.status();
      return store.ok() ? std::move(*store) : nullptr;
    }
    postgres::PgStoreOptions options;
    options.conninfo = cluster_->ConnInfo(database_);
    options.pool_size = pool_size;
    absl::StatusOr<std::unique_ptr<postgres::PgTaskStore>> store =
        postgres::PgTaskStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  static absl::Status Create(TaskStore& store, const v1::Task& task) {
    TaskWrite write;
    write.task = &task;
    return store.Write(write);
  }

  static constexpr int kTasks = 25;

  // Writes kTasks tasks with ids from a seeded generator at increasing times,
  // alternately in accounts "acct-a" and "acct-b"; returns the ids oldest
  // first. Written in a shuffled order: the store must not rely on insertion
  // order.
  std::vector<std::string> WriteTasks(TaskStore* store) {
    TaskIdGenerator generator(/*seed=*/20240601);
    std::vector<v1::Task> tasks(kTasks);
    std::vector<std::string> ids;
    for (int i = 0; i < kTasks; ++i) {
      tasks[i].set_task_id(generator.Next(absl::FromUnixSeconds(1700000000) +
                                          absl::Milliseconds(i * 7)));
      tasks[i].set_account_id(i % 2 == 0 ? "acct-a" : "acct-b");
      tasks[i].set_state(v1::TASK_STATE_SUBMITTED);
      ids.push_back(tasks[i].task_id());
    }
    std::vector<int> order(kTasks);
    for (int i = 0; i < kTasks; ++i)
      order[i] = (i * 11) % kTasks;  // a permutation
    for (int i : order) {
      TaskWrite write;
      write.task = &tasks[i];
      EXPECT_TRUE(store->Write(write).ok());
    }
    return ids;
  }

  PostgresCluster* cluster_ = nullptr;
  testing::TempDir dir_{"conformance-test"};
  std::string database_;
};

INSTANTIATE_TEST_SUITE_P(Stores, StoreConformanceTest,
                         ::testing::Values(Backend::kRocksDb,
                                           Backend::kPostgres),
                         BackendName);

v1::Task ParseTask(const std::string& text) {
  v1::Task task;
  EXPECT_TRUE(TextFormat::ParseFromString(text, &task)) << text;
  return task;
}

v1::TaskEvent ParseEvent(const std::string& text) {
  v1::TaskEvent event;
  EXPECT_TRUE(TextFormat::ParseFromString(text, &event)) << text;
  return event;
}

bool SameMessage(const google::protobuf::Message& a,
                 const google::protobuf::Message& b) {
  return MessageDifferencer::Equals(a, b);
}

TaskScan StateScan(v1::TaskState state) {
  TaskScan scan;
  scan.index = ScanIndex::kState;
  scan.state = state;
  return scan;
}

TaskScan ValueScan(ScanIndex index, std::string value) {
  TaskScan scan;
  scan.index = index;
  scan.value = std::move(value);
  return scan;
}

constexpr char kTask[] = R"(
  task_id: "T0001" account_id: "acct-1" model: "veo-3" state: TASK_STATE_QUEUED
  create_time { seconds: 1700000000 } charge_units: 5 request_id: "req-1"
  params { prompt: "a cat on a skateboard" duration_seconds: 8 }
  last_event_seq: 2)";
constexpr char kEvent1[] = R"(
  seq: 1 task_id: "T0001" type: EVENT_TYPE_SUBMITTED
  time { seconds: 1700000000 } state_after: TASK_STATE_SUBMITTED
  submitted { model: "veo-3" charge_units: 5 })";
constexpr char kEvent2[] = R"(
  seq: 2 task_id: "T0001" type: EVENT_TYPE_QUEUED event_id: "ev-q"
  time { seconds: 1700000005 } state_after: TASK_STATE_QUEUED
  queued { upstream_task_id: "up-1" queue_position: 14 })";

// A task for the retention tests: created at kRetentionStart + `created`
// seconds, last changed at kRetentionStart + `changed` seconds, finished then
// when `state` is a finished one.
const absl::Time kRetentionStart = absl::FromUnixSeconds(1790000000);

std::string PutForRetention(TaskStore& store, TaskIdGenerator& ids, int created,
                            int changed, v1::TaskState state) {
  v1::Task task;
  task.set_task_id(ids.Next(kRetentionStart + absl::Seconds(created)));
  task.set_account_id("acct");
  task.set_model("veo-3");
  task.set_state(state);
  *task.mutable_create_time() =
      ToProtoTime(kRetentionStart + absl::Seconds(created));
  *task.mutable_update_time() =
      ToProtoTime(kRetentionStart + absl::Seconds(changed));
  if (!IsUnfinishedState(state)) {
    *task.mutable_finish_time() = task.update_time();
  }
  TaskWrite write;
  write.task = &task;
  EXPECT_TRUE(store.Write(write).ok());
  return task.task_id();
}

int64_t RetentionAt(int seconds) {
  return absl::ToUnixMicros(kRetentionStart + absl::Seconds(seconds));
}

TEST_P(StoreConformanceTest,
       DueTasksAreListedByClassTimeAndLimitAndPurgedWhole) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  TaskIdGenerator ids(/*seed=*/3);
  // Created in this order, finished in another: the index orders by time.
  const std::string late =
      PutForRetention(*store, ids, 0, 50, v1::TASK_STATE_SUCCEEDED);
  const std::string early =
      PutForRetention(*store, ids, 1, 20, v1::TASK_STATE_FAILED);
  const std::string idle =
      PutForRetention(*store, ids, 2, 10, v1::TASK_STATE_QUEUED);
  const std::string busy =
      PutForRetention(*store, ids, 3, 90, v1::TASK_STATE_RUNNING);

  EXPECT_THAT(*store->ListDueTasks(RetentionAt(20), RetentionAt(10), 100),
              IsEmpty());
  EXPECT_THAT(*store->ListDueTasks(RetentionAt(21), 0, 100),
              ElementsAre(early));
  EXPECT_THAT(*store->ListDueTasks(RetentionAt(51), 0, 100),
              ElementsAre(early, late));
  EXPECT_THAT(*store->ListDueTasks(RetentionAt(51), RetentionAt(11), 100),
              ElementsAre(early, late, idle));
  EXPECT_THAT(*store->ListDueTasks(0, RetentionAt(91), 100),
              ElementsAre(idle, busy));
  EXPECT_THAT(*store->ListDueTasks(RetentionAt(51), RetentionAt(91), 3),
              ElementsAre(early, late, idle));

  // A finished task leaves the unfinished half.
  v1::Task previous = *store->GetTask(busy);
  v1::Task finished = previous;
  finished.set_state(v1::TASK_STATE_CANCELED);
  *finished.mutable_update_time() =
      ToProtoTime(kRetentionStart + absl::Seconds(95));
  *finished.mutable_finish_time() = finished.update_time();
  TaskWrite write;
  write.previous = &previous;
  write.task = &finished;
  ASSERT_TRUE(store->Write(write).ok());
  EXPECT_THAT(*store->ListDueTasks(0, RetentionAt(1000), 100),
              ElementsAre(idle));
  EXPECT_THAT(*store->ListDueTasks(RetentionAt(1000), 0, 100),
              ElementsAre(early, late, busy));
  EXPECT_TRUE(store->VerifyIndexes().ok()) << store->VerifyIndexes();

  ASSERT_TRUE(store->PurgeTask(early, {}).ok());
  EXPECT_TRUE(absl::IsNotFound(store->PurgeTask(early, {})));
  EXPECT_THAT(*store->ListDueTasks(RetentionAt(1000), 0, 100),
              ElementsAre(late, busy));
  EXPECT_TRUE(store->VerifyIndexes().ok()) << store->VerifyIndexes();
}

TEST_P(StoreConformanceTest, WrittenTaskEventsAndEventIdSurviveReopen) {
  const v1::Task task = ParseTask(kTask);
  const v1::TaskEvent event1 = ParseEvent(kEvent1);
  const v1::TaskEvent event2 = ParseEvent(kEvent2);
  // A digest is binary: embedded NUL and high bytes must survive.
  const std::string digest("\x00\x01\xfe\xff digest", 11);
  {
    std::unique_ptr<TaskStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    TaskWrite write;
    write.task = &task;
    write.events.push_back(&event1);
    write.events.push_back(&event2);
    write.event_id.emplace("ev-q", EventIdRecord{2, digest});
    ASSERT_TRUE(store->Write(write).ok());
  }
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);

  absl::StatusOr<v1::Task> got = store->GetTask("T0001");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(SameMessage(*got, task)) << got->DebugString();

  struct Case {
    int64_t after_seq;
    int limit;
    std::vector<int64_t> seqs;
  };
  for (const Case& c : {Case{0, 100, {1, 2}}, Case{1, 100, {2}},
                        Case{2, 100, {}}, Case{0, 1, {1}}, Case{0, 0, {}}}) {
    SCOPED_TRACE(absl::StrCat("after_seq ", c.after_seq, " limit ", c.limit));
    absl::StatusOr<std::vector<v1::TaskEvent>> events =
        store->ReadEvents("T0001", c.after_seq, c.limit);
    ASSERT_TRUE(events.ok()) << events.status();
    std::vector<int64_t> seqs;
    for (const v1::TaskEvent& event : *events) {
      seqs.push_back(event.seq());
      EXPECT_TRUE(SameMessage(event, event.seq() == 1 ? event1 : event2));
    }
    EXPECT_THAT(seqs, ElementsAreArray(c.seqs));
  }

  absl::StatusOr<absl::optional<EventIdRecord>> record =
      store->GetEventIdRecord("T0001", "ev-q");
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_TRUE(record->has_value());
  EXPECT_EQ((*record)->seq, 2);
  EXPECT_EQ((*record)->body_digest, digest);

  absl::StatusOr<absl::optional<EventIdRecord>> unseen =
      store->GetEventIdRecord("T0001", "ev-other");
  ASSERT_TRUE(unseen.ok()) << unseen.status();
  EXPECT_FALSE(unseen->has_value());
  unseen = store->GetEventIdRecord("T0002", "ev-q");
  ASSERT_TRUE(unseen.ok()) << unseen.status();
  EXPECT_FALSE(unseen->has_value());
}

TEST_P(StoreConformanceTest, UnknownTasksAreNotFoundAndHaveNoEvents) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Task task = ParseTask(kTask);
  TaskWrite write;
  write.task = &task;
  ASSERT_TRUE(store->Write(write).ok());

  for (const char* id : {"T0002", "T000", "T00010", ""}) {
    SCOPED_TRACE(id);
    EXPECT_EQ(store->GetTask(id).status().code(), absl::StatusCode::kNotFound);
    absl::StatusOr<std::vector<v1::TaskEvent>> events =
        store->ReadEvents(id, 0, 100);
    ASSERT_TRUE(events.ok()) << events.status();
    EXPECT_THAT(*events, IsEmpty());
  }
}

TEST_P(StoreConformanceTest, TaskSnapshotIsStoredWithoutItsEvents) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  v1::Task task = ParseTask(kTask);
  *task.add_events() = ParseEvent(kEvent1);
  TaskWrite write;
  write.task = &task;
  ASSERT_TRUE(store->Write(write).ok());
  absl::StatusOr<v1::Task> got = store->GetTask("T0001");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->events_size(), 0);
  task.clear_events();
  EXPECT_TRUE(SameMessage(*got, task));
}

TEST_P(StoreConformanceTest, TimelinesOfTasksWhoseIdsArePrefixesStayApart) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::vector<std::string> ids = {"AB", "ABC", "A"};
  for (size_t i = 0; i < ids.size(); ++i) {
    v1::Task task;
    task.set_task_id(ids[i]);
    std::vector<v1::TaskEvent> events(i + 1);
    TaskWrite write;
    write.task = &task;
    for (size_t seq = 1; seq <= events.size(); ++seq) {
      events[seq - 1].set_seq(static_cast<int64_t>(seq));
      events[seq - 1].set_task_id(ids[i]);
      write.events.push_back(&events[seq - 1]);
    }
    ASSERT_TRUE(store->Write(write).ok());
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    SCOPED_TRACE(ids[i]);
    absl::StatusOr<std::vector<v1::TaskEvent>> events =
        store->ReadEvents(ids[i], 0, 100);
    ASSERT_TRUE(events.ok()) << events.status();
    ASSERT_EQ(events->size(), i + 1);
    for (const v1::TaskEvent& event : *events) {
      EXPECT_EQ(event.task_id(), ids[i]);
    }
  }
}

TEST_P(StoreConformanceTest, IndexesFollowStateAndUpstreamChanges) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Task submitted = ParseTask(R"(
      task_id: "T0001" account_id: "acct-1" model: "veo-3"
      state: TASK_STATE_SUBMITTED)");
  TaskWrite create;
  create.task = &submitted;
  ASSERT_TRUE(store->Write(create).ok());
  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_SUBMITTED)),
              ElementsAre("T0001"));
  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_QUEUED)), IsEmpty());
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kUpstream, "up-9")),
              IsEmpty());

  v1::Task queued = submitted;
  queued.set_state(v1::TASK_STATE_QUEUED);
  queued.set_upstream_task_id("up-9");
  TaskWrite update;
  update.previous = &submitted;
  update.task = &queued;
  ASSERT_TRUE(store->Write(update).ok());

  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_QUEUED)),
              ElementsAre("T0001"));
  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_SUBMITTED)), IsEmpty());
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kUpstream, "up-9")),
              ElementsAre("T0001"));
  // Unchanged indexes still list it exactly once.
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kAccount, "acct-1")),
              ElementsAre("T0001"));
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kModel, "veo-3")),
              ElementsAre("T0001"));
  // Scans hand out the current snapshot.
  std::vector<v1::TaskState> states;
  ASSERT_TRUE(store
                  ->Scan(ValueScan(ScanIndex::kUpstream, "up-9"),
                         [&](const v1::Task& task) {
                           states.push_back(task.state());
                           return true;
                         })
                  .ok());
  EXPECT_THAT(states, ElementsAre(v1::TASK_STATE_QUEUED));

  // And after a reopen.
  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_QUEUED)),
              ElementsAre("T0001"));
  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_SUBMITTED)), IsEmpty());
}

TEST_P(StoreConformanceTest, IndexValuesThatArePrefixesOfEachOtherStayApart) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  // Account "a" with task "bT2" and account "ab" with task "T1": equal
  // value+task_id bytes must not mix the two accounts.
  const v1::Task in_ab = ParseTask(R"(task_id: "T1" account_id: "ab")");
  const v1::Task in_a = ParseTask(R"(task_id: "bT2" account_id: "a")");
  for (const v1::Task* task : {&in_ab, &in_a}) {
    TaskWrite write;
    write.task = task;
    ASSERT_TRUE(store->Write(write).ok());
  }
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kAccount, "a")),
              ElementsAre("bT2"));
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kAccount, "ab")),
              ElementsAre("T1"));
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kAccount, "")), IsEmpty());
}

TEST_P(StoreConformanceTest, ScansReturnNewestFirst) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::vector<std::string> ids = WriteTasks(store.get());
  ASSERT_TRUE(std::is_sorted(ids.begin(), ids.end()));

  std::vector<std::string> newest_first(ids.rbegin(), ids.rend());
  TaskScan all;
  all.index = ScanIndex::kAll;
  EXPECT_EQ(ScanIds(*store, all), newest_first);
  EXPECT_EQ(ScanIds(*store, StateScan(v1::TASK_STATE_SUBMITTED)), newest_first);

  std::vector<std::string> account_a;
  for (int i = kTasks - 1; i >= 0; i -= 1) {
    if (i % 2 == 0) account_a.push_back(ids[i]);
  }
  EXPECT_EQ(ScanIds(*store, ValueScan(ScanIndex::kAccount, "acct-a")),
            account_a);
}

TEST_P(StoreConformanceTest, PagesVisitEveryTaskExactlyOnce) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::vector<std::string> ids = WriteTasks(store.get());

  std::vector<std::string> all_newest_first(ids.rbegin(), ids.rend());
  std::vector<std::string> b_newest_first;
  for (int i = kTasks - 1; i >= 0; --i) {
    if (i % 2 == 1) b_newest_first.push_back(ids[i]);
  }
  struct Case {
    TaskScan scan;
    const std::vector<std::string>* expected;
  };
  TaskScan all;
  all.index = ScanIndex::kAll;
  const std::vector<Case> scans = {
      {all, &all_newest_first},
      {ValueScan(ScanIndex::kAccount, "acct-b"), &b_newest_first},
      {StateScan(v1::TASK_STATE_SUBMITTED), &all_newest_first},
  };
  for (const Case& c : scans) {
    for (int page_size : {1, 3, 7, 12, 25, 100}) {
      SCOPED_TRACE(absl::StrCat("index ", static_cast<int>(c.scan.index),
                                " page_size ", page_size));
      std::vector<std::string> seen;
      TaskScan scan = c.scan;
      scan.max_visits = page_size;
      for (int page = 0; page <= kTasks + 1; ++page) {
        std::vector<std::string> this_page;
        absl::StatusOr<std::string> last =
            store->Scan(scan, [&](const v1::Task& task) {
              this_page.push_back(task.task_id());
              return true;
            });
        ASSERT_TRUE(last.ok()) << last.status();
        EXPECT_LE(static_cast<int>(this_page.size()), page_size);
        if (this_page.empty()) {
          EXPECT_EQ(*last, "");
          break;
        }
        EXPECT_EQ(*last, this_page.back());
        seen.insert(seen.end(), this_page.begin(), this_page.end());
        scan.resume_after_task_id = *last;
      }
      EXPECT_EQ(seen, *c.expected);
    }
  }
}

TEST_P(StoreConformanceTest, VisitorCanStopAScanEarly) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::vector<std::string> ids = WriteTasks(store.get());
  TaskScan scan;
  scan.index = ScanIndex::kAll;
  int visits = 0;
  absl::StatusOr<std::string> last =
      store->Scan(scan, [&](const v1::Task&) { return ++visits < 3; });
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(visits, 3);
  EXPECT_EQ(*last, ids[kTasks - 3]);
}

TEST_P(StoreConformanceTest, ConcurrentWritersLoseNothing) {
  // sync_writes stays on (the default): 4800 synced writes from 8 threads
  // take a few seconds thanks to group commit.
  constexpr int kThreads = 8;
  constexpr int kTasksPerThread = 200;
  constexpr int kEventsPerTask = 3;
  constexpr v1::TaskState kStates[kEventsPerTask] = {
      v1::TASK_STATE_SUBMITTED, v1::TASK_STATE_QUEUED, v1::TASK_STATE_RUNNING};
  auto task_id = [](int thread, int i) {
    return absl::StrFormat("W%d-T%04d", thread, i);
  };
  {
    std::unique_ptr<TaskStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kTasksPerThread; ++i) {
          v1::Task previous;
          for (int seq = 1; seq <= kEventsPerTask; ++seq) {
            v1::Task task = previous;
            task.set_task_id(task_id(t, i));
            task.set_account_id(absl::StrCat("acct-", t));
            task.set_state(kStates[seq - 1]);
            task.set_last_event_seq(seq);
            v1::TaskEvent event;
            event.set_seq(seq);
            event.set_task_id(task.task_id());
            event.set_state_after(task.state());
            TaskWrite write;
            write.previous = seq == 1 ? nullptr : &previous;
            write.task = &task;
            write.events.push_back(&event);
            if (!store->Write(write).ok()) ++failures;
            previous = task;
          }
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_FALSE(store->failed());
  }

  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  int tasks = 0;
  int events = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kTasksPerThread; ++i) {
      const std::string id = task_id(t, i);
      absl::StatusOr<v1::Task> task = store->GetTask(id);
      ASSERT_TRUE(task.ok()) << task.status();
      EXPECT_EQ(task->state(), v1::TASK_STATE_RUNNING) << id;
      ++tasks;
      absl::StatusOr<std::vector<v1::TaskEvent>> timeline =
          store->ReadEvents(id, 0, 100);
      ASSERT_TRUE(timeline.ok()) << timeline.status();
      ASSERT_EQ(timeline->size(), static_cast<size_t>(kEventsPerTask)) << id;
      for (int seq = 1; seq <= kEventsPerTask; ++seq) {
        EXPECT_EQ((*timeline)[seq - 1].seq(), seq);
        EXPECT_EQ((*timeline)[seq - 1].task_id(), id);
        ++events;
      }
    }
  }
  EXPECT_EQ(tasks, kThreads * kTasksPerThread);
  EXPECT_EQ(events, kThreads * kTasksPerThread * kEventsPerTask);

  TaskScan all;
  all.index = ScanIndex::kAll;
  all.max_visits = 100000;
  EXPECT_EQ(ScanIds(*store, all).size(), 1600u);
  TaskScan running = StateScan(v1::TASK_STATE_RUNNING);
  running.max_visits = 100000;
  EXPECT_EQ(ScanIds(*store, running).size(), 1600u);
  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_SUBMITTED)), IsEmpty());
  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_QUEUED)), IsEmpty());
  EXPECT_EQ(ScanIds(*store, ValueScan(ScanIndex::kAccount, "acct-3")).size(),
            static_cast<size_t>(kTasksPerThread));
}

// ---------------------------------------------------------------------------
// Timelines
// ---------------------------------------------------------------------------

TEST_P(StoreConformanceTest, EventRangesSkipGapsAndWalkNewestFirst) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  v1::Task task;
  task.set_task_id("T0001");
  std::vector<v1::TaskEvent> events(6);
  TaskWrite write;
  write.task = &task;
  for (int64_t seq : {1, 2, 3, 5, 6, 7}) {
    v1::TaskEvent& event = events[write.events.size()];
    event.set_seq(seq);
    event.set_task_id("T0001");
    event.set_actor(absl::StrCat("actor-", seq));
    write.events.push_back(&event);
  }
  ASSERT_TRUE(store->Write(write).ok());

  const auto seqs = [](const std::vector<v1::TaskEvent>& got) {
    std::vector<int64_t> out;
    for (const v1::TaskEvent& event : got) out.push_back(event.seq());
    return out;
  };
  absl::StatusOr<std::vector<v1::TaskEvent>> range =
      store->ReadEventRange("T0001", 2, 6);
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_THAT(seqs(*range), ElementsAre(2, 3, 5, 6));
  range = store->ReadEventRange("T0001", 6, 2);
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_THAT(*range, IsEmpty());

  std::vector<int64_t> newest_first;
  ASSERT_TRUE(store
                  ->VisitEventsNewestFirst(
                      "T0001", 2, 6,
                      [&](int64_t seq, absl::string_view bytes) {
                        v1::TaskEvent event;
                        EXPECT_TRUE(event.ParseFromArray(
                            bytes.data(), static_cast<int>(bytes.size())));
                        EXPECT_EQ(event.seq(), seq);
                        newest_first.push_back(seq);
                        return true;
                      })
                  .ok());
  EXPECT_THAT(newest_first, ElementsAre(6, 5, 3, 2));
  newest_first.clear();
  ASSERT_TRUE(store
                  ->VisitEventsNewestFirst("T0001", 0, 100,
                                           [&](int64_t seq, absl::string_view) {
                                             newest_first.push_back(seq);
                                             return newest_first.size() < 2;
                                           })
                  .ok());
  EXPECT_THAT(newest_first, ElementsAre(7, 6));

  // A folded poll rewrites its entry in place.
  v1::TaskEvent rewritten = events.back();
  rewritten.set_actor("rewritten");
  TaskWrite rewrite;
  rewrite.previous = &task;
  rewrite.task = &task;
  rewrite.events.push_back(&rewritten);
  ASSERT_TRUE(store->Write(rewrite).ok());
  absl::StatusOr<std::vector<v1::TaskEvent>> last =
      store->ReadEvents("T0001", 6, 10);
  ASSERT_TRUE(last.ok()) << last.status();
  ASSERT_EQ(last->size(), 1u);
  EXPECT_EQ((*last)[0].actor(), "rewritten");
}

TEST_P(StoreConformanceTest, VisitTaskHandsOutTheStoredSnapshot) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Task task = ParseTask(kTask);
  ASSERT_TRUE(Create(*store, task).ok());
  v1::Task visited;
  ASSERT_TRUE(
      store
          ->VisitTask("T0001",
                      [&](absl::string_view bytes) {
                        EXPECT_TRUE(visited.ParseFromArray(
                            bytes.data(), static_cast<int>(bytes.size())));
                        return absl::OkStatus();
                      })
          .ok());
  EXPECT_TRUE(SameMessage(visited, task));
  int calls = 0;
  EXPECT_EQ(store
                ->VisitTask("T0002",
                            [&](absl::string_view) {
                              ++calls;
                              return absl::OkStatus();
                            })
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(calls, 0);
  // The visitor's error is returned.
  EXPECT_EQ(store
                ->VisitTask("T0001",
                            [](absl::string_view) {
                              return absl::CancelledError("enough");
                            })
                .code(),
            absl::StatusCode::kCancelled);
}

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

TaskScan OwedScan() {
  TaskScan scan;
  scan.index = ScanIndex::kOwed;
  scan.oldest_first = true;
  return scan;
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

TaskScan RouteScan(std::string route) {
  TaskScan scan = ValueScan(ScanIndex::kRoute, std::move(route));
  scan.oldest_first = true;
  return scan;
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

// ---------------------------------------------------------------------------
// PostgreSQL: two stores on one database
// ---------------------------------------------------------------------------

class PgConflictTest : public StoreConformanceTest {};

INSTANTIATE_TEST_SUITE_P(Stores, PgConflictTest,
                         ::testing::Values(Backend::kPostgres), BackendName);

TEST_P(PgConflictTest, AWritePreparedFromAStaleReadIsAbortedAndAppliesNothing) {
  std::unique_ptr<TaskStore> first = OpenStore();
  std::unique_ptr<TaskStore> second = OpenStore();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const v1::Task created = ParseTask(kTask);
  ASSERT_TRUE(Create(*first, created).ok());
  absl::StatusOr<v1::Task> read_by_second = second->GetTask("T0001");
  ASSERT_TRUE(read_by_second.ok()) << read_by_second.status();

  v1::Task running = created;
  running.set_state(v1::TASK_STATE_RUNNING);
  running.set_last_event_seq(3);
  v1::TaskEvent event3;
  event3.set_seq(3);
  event3.set_task_id("T0001");
  TaskWrite first_write;
  first_write.previous = &created;
  first_write.task = &running;
  first_write.events.push_back(&event3);
  ASSERT_TRUE(first->Write(first_write).ok());

  // The second store's write was prepared from the snapshot before it.
  v1::Task failed = *read_by_second;
  failed.set_state(v1::TASK_STATE_FAILED);
  failed.set_last_event_seq(3);
  v1::TaskEvent other3 = event3;
  other3.set_actor("stale writer");
  TaskWrite stale;
  stale.previous = &*read_by_second;
  stale.task = &failed;
  stale.events.push_back(&other3);
  stale.event_id.emplace("ev-stale", EventIdRecord{3, "digest"});
  stale.extra = {RawMutation::CountOne(5, "veo-3", CounterKind::kRejected)};
  absl::Status status = second->Write(stale);
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_THAT(status.message(), HasSubstr("T0001"));

  absl::StatusOr<v1::Task> stored = second->GetTask("T0001");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->state(), v1::TASK_STATE_RUNNING);
  absl::StatusOr<std::vector<v1::TaskEvent>> events =
      second->ReadEvents("T0001", 2, 10);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].actor(), "");
  absl::StatusOr<absl::optional<EventIdRecord>> record =
      second->GetEventIdRecord("T0001", "ev-stale");
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_FALSE(record->has_value());
  int counters = 0;
  ASSERT_TRUE(
      second
          ->ScanCounters(0, 100,
                         [&](const ParsedCounterKey&, int64_t) { ++counters; })
          .ok());
  EXPECT_EQ(counters, 0);

  // Re-read and re-prepared, it applies.
  v1::Task failed_now = *stored;
  failed_now.set_state(v1::TASK_STATE_FAILED);
  TaskWrite retried;
  retried.previous = &*stored;
  retried.task = &failed_now;
  EXPECT_TRUE(second->Write(retried).ok());
  EXPECT_TRUE(second->VerifyIndexes().ok());
}

TEST_P(PgConflictTest, ASecondNewTaskOrEventIdOfTheSameIdIsAborted) {
  std::unique_ptr<TaskStore> first = OpenStore();
  std::unique_ptr<TaskStore> second = OpenStore();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const v1::Task task = ParseTask(kTask);
  ASSERT_TRUE(Create(*first, task).ok());
  EXPECT_EQ(Create(*second, task).code(), absl::StatusCode::kAborted);

  v1::Task next = task;
  next.set_endpoint("first");
  TaskWrite with_id;
  with_id.previous = &task;
  with_id.task = &next;
  with_id.event_id.emplace("ev-1", EventIdRecord{1, "body"});
  ASSERT_TRUE(first->Write(with_id).ok());
  // The same event id through the other store, even from the current
  // snapshot: the caller re-reads and answers as a replay.
  v1::Task again = next;
  again.set_endpoint("second");
  TaskWrite replay;
  replay.previous = &next;
  replay.task = &again;
  replay.event_id.emplace("ev-1", EventIdRecord{2, "body"});
  EXPECT_EQ(second->Write(replay).code(), absl::StatusCode::kAborted);
  absl::StatusOr<absl::optional<EventIdRecord>> record =
      second->GetEventIdRecord("T0001", "ev-1");
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_TRUE(record->has_value());
  EXPECT_EQ((*record)->seq, 1);
  EXPECT_EQ(second->GetTask("T0001")->endpoint(), "first");
}

TEST_P(PgConflictTest, ConcurrentSubmissionsOfOneRequestBindItOnce) {
  constexpr int kWriters = 16;
  std::unique_ptr<TaskStore> stores[2] = {OpenStore(), OpenStore()};
  ASSERT_NE(stores[0], nullptr);
  ASSERT_NE(stores[1], nullptr);
  const std::string key = RequestIdDedupKey("acct-1", "req-1");
  std::vector<absl::Status> results(kWriters);
  std::vector<std::thread> writers;
  for (int i = 0; i < kWriters; ++i) {
    writers.emplace_back([&, i] {
      v1::Task task;
      task.set_task_id(absl::StrFormat("T%03d", i));
      task.set_account_id("acct-1");
      task.set_state(v1::TASK_STATE_SUBMITTED);
      TaskWrite write;
      write.task = &task;
      write.extra = {RawMutation::PutDedup(key, {0, task.task_id(), "shape"})};
      results[i] = stores[i % 2]->Write(write);
    });
  }
  for (std::thread& writer : writers) writer.join();
  std::string winner;
  for (int i = 0; i < kWriters; ++i) {
    if (results[i].ok()) {
      EXPECT_EQ(winner, "") << "two writers bound the key";
      winner = absl::StrFormat("T%03d", i);
    } else {
      EXPECT_EQ(results[i].code(), absl::StatusCode::kAborted) << results[i];
    }
  }
  ASSERT_NE(winner, "");
  absl::StatusOr<absl::optional<DedupRecord>> record =
      stores[0]->GetDedupRecord(key, 0);
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_TRUE(record->has_value());
  EXPECT_EQ((*record)->task_id, winner);
  // The losers' tasks were not written either.
  TaskScan all;
  all.index = ScanIndex::kAll;
  EXPECT_THAT(ScanIds(*stores[1], all), ElementsAre(winner));
}

TEST_P(PgConflictTest, ALiveDedupRecordOfAnotherTaskIsTakenOverOnlyByName) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::string key = ContentDedupKey("acct-1", "fingerprint");
  const int64_t far_future = int64_t{1} << 60;
  ASSERT_TRUE(
      store->WriteRaw({RawMutation::PutDedup(key, {far_future, "T1", ""})})
          .ok());
  // The same task may bind it again; another task only naming T1.
  EXPECT_TRUE(
      store->WriteRaw({RawMutation::PutDedup(key, {far_future, "T1", "x"})})
          .ok());
  EXPECT_EQ(
      store->WriteRaw({RawMutation::PutDedup(key, {far_future, "T2", ""})})
          .code(),
      absl::StatusCode::kAborted);
  EXPECT_EQ(
      store
          ->WriteRaw({RawMutation::PutDedup(key, {far_future, "T2", ""}, "T9")})
          .code(),
      absl::StatusCode::kAborted);
  ASSERT_TRUE(
      store->WriteRaw({RawMutation::PutDedup(key, {1, "T2", ""}, "T1")}).ok());
  // An expired record (expiry 1, long past) is free for anyone.
  EXPECT_TRUE(
      store->WriteRaw({RawMutation::PutDedup(key, {0, "T3", ""})}).ok());
  absl::StatusOr<absl::optional<DedupRecord>> record =
      store->GetDedupRecord(key, 0);
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_TRUE(record->has_value());
  EXPECT_EQ((*record)->task_id, "T3");
}

TEST_P(PgConflictTest, ConcurrentCounterAddsThroughTwoStoresAllCount) {
  constexpr int kThreads = 8;
  constexpr int kAddsPerThread = 25;
  std::unique_ptr<TaskStore> stores[2] = {OpenStore(), OpenStore()};
  ASSERT_NE(stores[0], nullptr);
  ASSERT_NE(stores[1], nullptr);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAddsPerThread; ++i) {
        if (!stores[t % 2]
                 ->WriteRaw({RawMutation::CountOne(42, "veo-3",
                                                   CounterKind::kRejected)})
                 .ok()) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  int64_t total = 0;
  ASSERT_TRUE(stores[0]
                  ->ScanCounters(42, 43,
                                 [&](const ParsedCounterKey&, int64_t value) {
                                   total += value;
                                 })
                  .ok());
  EXPECT_EQ(total, kThreads * kAddsPerThread);
}

TEST_P(PgConflictTest, ALostDatabaseIsUnavailableUntilItReturns) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Task task = ParseTask(kTask);
  ASSERT_TRUE(Create(*store, task).ok());
  ASSERT_TRUE(cluster_->Stop().ok());
  EXPECT_EQ(store->GetTask("T0001").status().code(),
            absl::StatusCode::kUnavailable);
  v1::Task other = task;
  other.set_task_id("T0002");
  EXPECT_EQ(Create(*store, other).code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(store->failed());
  // Back again: the same store reconnects by itself.
  absl::Status restarted = cluster_->Restart();
  ASSERT_TRUE(restarted.ok()) << restarted;
  absl::StatusOr<v1::Task> read = store->GetTask("T0001");
  EXPECT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(Create(*store, other).ok());
}

TEST_P(PgConflictTest, BackupsAreTheDatabasesOwn) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<BackupInfo> backup = store->CreateBackup();
  EXPECT_EQ(backup.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(backup.status().message(), HasSubstr("pg_dump"));
  EXPECT_EQ(store->ListBackups().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(PgConflictTest, VerifyIndexesNamesAColumnThatDisagrees) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Create(*store, ParseTask(kTask)).ok());
  ASSERT_TRUE(
      cluster_->Psql("UPDATE tasktrail.tasks SET model = 'kling'", database_)
          .ok());
  absl::Status verified = store->VerifyIndexes();
  EXPECT_EQ(verified.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(verified.message(), HasSubstr("model"));
}

TEST_P(PgConflictTest, VerifyIndexesNamesAWrongOwedColumn) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Create(*store, ParseTask(kTask)).ok());
  EXPECT_TRUE(store->VerifyIndexes().ok());
  ASSERT_TRUE(
      cluster_->Psql("UPDATE tasktrail.tasks SET owed = true", database_).ok());
  EXPECT_THAT(ScanIds(*store, OwedScan()), ElementsAre("T0001"));
  absl::Status verified = store->VerifyIndexes();
  EXPECT_EQ(verified.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(verified.message(), HasSubstr("owed"));
}

TEST_P(PgConflictTest, VerifyIndexesNamesAWrongRouteColumn) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  v1::Task task = ParseTask(kTask);
  task.set_route("key-7");
  ASSERT_TRUE(Create(*store, task).ok());
  EXPECT_TRUE(store->VerifyIndexes().ok());
  ASSERT_TRUE(
      cluster_->Psql("UPDATE tasktrail.tasks SET route = 'key-8'", database_)
          .ok());
  absl::Status verified = store->VerifyIndexes();
  EXPECT_EQ(verified.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(verified.message(), HasSubstr("route"));
}

TEST_P(PgConflictTest, AnUnknownRawFamilyIsRefusedAndAppliesNothing) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::Status status = store->WriteRaw(
      {RawMutation::CountOne(1, "veo-3", CounterKind::kRejected),
       {ColumnFamily::kMeta, "format_version", std::string("2")}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  int counters = 0;
  ASSERT_TRUE(
      store
          ->ScanCounters(0, 10,
                         [&](const ParsedCounterKey&, int64_t) { ++counters; })
          .ok());
  EXPECT_EQ(counters, 0);
}

}  // namespace
}  // namespace tasktrail::store
