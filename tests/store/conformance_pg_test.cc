// The store conformance suite (tests/store/conformance.h), PostgreSQL only:
// two stores on one database, whose writes prepared from a stale read are
// ABORTED (store/postgres/pg_task_store.h), a database that goes away and
// comes back, and VerifyIndexes against columns changed behind the store.
#include <atomic>
#include <thread>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "tests/store/conformance.h"
#include "tests/store/scan_ids.h"

namespace tasktrail::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ---------------------------------------------------------------------------
// PostgreSQL: two stores on one database
// ---------------------------------------------------------------------------

class PgConflictTest : public StoreConformanceTest {};

INSTANTIATE_TEST_SUITE_P(Stores, PgConflictTest,
                         ::testing::Values(Backend::kPostgres),
                         testing::BackendParamName());

// Tests that stop the database, on a cluster of their own.
class PgOutageTest : public StoreConformanceTest {
 protected:
  testing::ClusterUse Use() const override { return testing::ClusterUse::kOwn; }
};

INSTANTIATE_TEST_SUITE_P(Stores, PgOutageTest,
                         ::testing::Values(Backend::kPostgres),
                         testing::BackendParamName());

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

TEST_P(PgOutageTest, ALostDatabaseIsUnavailableUntilItReturns) {
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
