// The TaskStore contract (store/task_store.h), written once and run against
// both stores: RocksDbTaskStore in a temporary directory and PgTaskStore on
// the tests' throwaway PostgreSQL cluster (tests/support/postgres_cluster.h;
// a database of its own per test). The PostgreSQL cases fail, not skip, when
// no cluster can start: the test dependencies (scripts/install-deps.sh
// --test) install the server.
//
// The fixture and the helpers the suite's files share:
//   conformance_core_test.cc    tasks, timelines, scans, retention
//   conformance_index_test.cc   every index (owed, route, ...), dedup records,
//                               counters, samples, audit, raw writes
//   conformance_pg_test.cc      PostgreSQL only: stores of several processes
//                               on one database
#ifndef TASKTRAIL_TESTS_STORE_CONFORMANCE_H_
#define TASKTRAIL_TESTS_STORE_CONFORMANCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
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
#include "tests/support/backend.h"
#include "tests/support/postgres_cluster.h"
#include "tests/support/temp_dir.h"

namespace tasktrail::store {

using ::tasktrail::testing::Backend;
using ::tasktrail::testing::PostgresCluster;

class StoreConformanceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() != Backend::kPostgres) return;
    absl::StatusOr<testing::TestDatabase> database =
        PostgresCluster::FreshDatabase("conformance", Use());
    ASSERT_TRUE(database.ok()) << database.status();
    cluster_ = database->cluster;
    database_ = database->name;
    own_cluster_ = database->own_cluster;
  }

  // The PostgreSQL cluster the test's database is on.
  virtual testing::ClusterUse Use() const {
    return testing::ClusterUse::kShared;
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
  std::shared_ptr<PostgresCluster> own_cluster_;
  testing::TempDir dir_{"conformance-test"};
  std::string database_;
};

inline v1::Task ParseTask(const std::string& text) {
  v1::Task task;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &task))
      << text;
  return task;
}

inline v1::TaskEvent ParseEvent(const std::string& text) {
  v1::TaskEvent event;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &event))
      << text;
  return event;
}

inline bool SameMessage(const google::protobuf::Message& a,
                        const google::protobuf::Message& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

inline TaskScan StateScan(v1::TaskState state) {
  TaskScan scan;
  scan.index = ScanIndex::kState;
  scan.state = state;
  return scan;
}

inline TaskScan ValueScan(ScanIndex index, std::string value) {
  TaskScan scan;
  scan.index = index;
  scan.value = std::move(value);
  return scan;
}

// The owed index, oldest first.
inline TaskScan OwedScan() {
  TaskScan scan;
  scan.index = ScanIndex::kOwed;
  scan.oldest_first = true;
  return scan;
}

// The route index of `route`, oldest first.
inline TaskScan RouteScan(std::string route) {
  TaskScan scan = ValueScan(ScanIndex::kRoute, std::move(route));
  scan.oldest_first = true;
  return scan;
}

inline constexpr char kTask[] = R"(
  task_id: "T0001" account_id: "acct-1" model: "veo-3" state: TASK_STATE_QUEUED
  create_time { seconds: 1700000000 } charge_units: 5 request_id: "req-1"
  params { prompt: "a cat on a skateboard" duration_seconds: 8 }
  last_event_seq: 2)";
inline constexpr char kEvent1[] = R"(
  seq: 1 task_id: "T0001" type: EVENT_TYPE_SUBMITTED
  time { seconds: 1700000000 } state_after: TASK_STATE_SUBMITTED
  submitted { model: "veo-3" charge_units: 5 })";
inline constexpr char kEvent2[] = R"(
  seq: 2 task_id: "T0001" type: EVENT_TYPE_QUEUED event_id: "ev-q"
  time { seconds: 1700000005 } state_after: TASK_STATE_QUEUED
  queued { upstream_task_id: "up-1" queue_position: 14 })";

// A task for the retention tests: created at kRetentionStart + `created`
// seconds, last changed at kRetentionStart + `changed` seconds, finished then
// when `state` is a finished one.
inline const absl::Time kRetentionStart = absl::FromUnixSeconds(1790000000);

inline std::string PutForRetention(TaskStore& store, TaskIdGenerator& ids,
                                   int created, int changed,
                                   v1::TaskState state) {
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

inline int64_t RetentionAt(int seconds) {
  return absl::ToUnixMicros(kRetentionStart + absl::Seconds(seconds));
}

}  // namespace tasktrail::store

#endif  // TASKTRAIL_TESTS_STORE_CONFORMANCE_H_
