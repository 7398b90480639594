// The retention, owed and route indexes of the RocksDB store: a store of
// format version 2 gets them all when opened, one of version 3 the owed and
// route indexes, one of version 4 the route index. What ListDueTasks, the
// owed scan and the route scan list is a contract of every store
// (tests/store/conformance.h).
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/rules/task_id.h"
#include "service/rules/time_util.h"
#include "store/keys.h"
#include "store/rocksdb/rocksdb_task_store.h"
#include "tasktrail/v1/task.pb.h"
#include "tests/support/temp_dir.h"

namespace tasktrail::store {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kStart = absl::FromUnixSeconds(1790000000);

std::unique_ptr<RocksDbTaskStore> OpenAt(const std::string& path) {
  StoreOptions options;
  options.path = path;
  options.block_cache_mb = 8;
  absl::StatusOr<std::unique_ptr<RocksDbTaskStore>> store =
      RocksDbTaskStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

// Writes a task created at kStart + `created` seconds, last changed at
// kStart + `changed` seconds, finished then when `state` is a finished one.
std::string Put(RocksDbTaskStore& store, TaskIdGenerator& ids, int created,
                int changed, v1::TaskState state) {
  v1::Task task;
  task.set_task_id(ids.Next(kStart + absl::Seconds(created)));
  task.set_account_id("acct");
  task.set_model("veo-3");
  task.set_state(state);
  *task.mutable_create_time() = ToProtoTime(kStart + absl::Seconds(created));
  *task.mutable_update_time() = ToProtoTime(kStart + absl::Seconds(changed));
  if (!IsUnfinishedState(state))
    *task.mutable_finish_time() = task.update_time();
  TaskWrite write;
  write.task = &task;
  EXPECT_TRUE(store.Write(write).ok());
  return task.task_id();
}

int64_t At(int seconds) {
  return absl::ToUnixMicros(kStart + absl::Seconds(seconds));
}

// Makes `store` look as a build of format `version` left it: deletes every
// entry of `kind` and writes the version. Returns how many entries it
// deleted.
int Downgrade(RocksDbTaskStore& store, IndexKind kind,
              absl::string_view version) {
  std::vector<RawMutation> older;
  EXPECT_TRUE(store
                  .ScanRaw(ColumnFamily::kIndexes,
                           std::string(1, static_cast<char>(kind)),
                           [&](absl::string_view key, absl::string_view) {
                             older.push_back({ColumnFamily::kIndexes,
                                              std::string(key), absl::nullopt});
                             return true;
                           })
                  .ok());
  const int deleted = static_cast<int>(older.size());
  older.push_back({ColumnFamily::kMeta, std::string(kFormatVersionKey),
                   std::string(version)});
  EXPECT_TRUE(store.WriteRaw(older).ok());
  return deleted;
}

// The ids of the tasks in `index` (for kRoute, those of route `value`),
// oldest first.
std::vector<std::string> Scanned(const RocksDbTaskStore& store, ScanIndex index,
                                 absl::string_view value = "") {
  std::vector<std::string> scanned;
  TaskScan scan;
  scan.index = index;
  scan.value = std::string(value);
  scan.oldest_first = true;
  EXPECT_TRUE(store
                  .Scan(scan,
                        [&](const v1::Task& task) {
                          scanned.push_back(task.task_id());
                          return true;
                        })
                  .ok());
  return scanned;
}

TEST(RetentionIndexTest, AVersion2StoreGetsTheIndexWhenOpened) {
  testing::TempDir dir("retention-index");
  const std::string path = dir.File("db");
  std::vector<std::string> finished;
  {
    std::unique_ptr<RocksDbTaskStore> store = OpenAt(path);
    ASSERT_NE(store, nullptr);
    TaskIdGenerator ids(/*seed=*/5);
    for (int i = 0; i < 30; ++i) {
      finished.push_back(
          Put(*store, ids, i, 100 + i, v1::TASK_STATE_SUCCEEDED));
      Put(*store, ids, i, 200, v1::TASK_STATE_SUBMITTED);
    }
    // What an older build wrote: no retention entries, format version 2.
    EXPECT_EQ(Downgrade(*store, IndexKind::kRetention,
                        kFormatVersionWithoutRetentionIndex),
              60);
    EXPECT_FALSE(store->VerifyIndexes().ok());
    EXPECT_THAT(*store->ListDueTasks(At(1000), At(1000), 100), IsEmpty());
  }
  std::unique_ptr<RocksDbTaskStore> store = OpenAt(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetRaw(ColumnFamily::kMeta, kFormatVersionKey)
                ->value_or("<absent>"),
            kFormatVersion);
  EXPECT_TRUE(store->VerifyIndexes().ok()) << store->VerifyIndexes();
  EXPECT_EQ(*store->ListDueTasks(At(1000), 0, 100), finished);
  EXPECT_EQ(store->ListDueTasks(0, At(1000), 100)->size(), 30u);
}

TEST(OwedIndexTest, AVersion3StoreGetsTheOwedIndexWhenOpened) {
  testing::TempDir dir("owed-index");
  const std::string path = dir.File("db");
  std::vector<std::string> owed;
  {
    std::unique_ptr<RocksDbTaskStore> store = OpenAt(path);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 20; ++i) {
      v1::Task task;
      task.set_task_id(absl::StrCat("T", 100 + i));
      task.set_model("veo-3");
      task.set_state(i % 2 == 0 ? v1::TASK_STATE_FAILED
                                : v1::TASK_STATE_SUCCEEDED);
      task.set_charge_units(10);
      task.set_refunded(i % 3 == 0);
      TaskWrite write;
      write.task = &task;
      ASSERT_TRUE(store->Write(write).ok());
      if (IsOwedTask(task)) owed.push_back(task.task_id());
    }
    ASSERT_EQ(owed.size(), 6u);
    EXPECT_EQ(
        Downgrade(*store, IndexKind::kOwed, kFormatVersionWithoutOwedIndex), 6);
    EXPECT_FALSE(store->VerifyIndexes().ok());
  }
  std::unique_ptr<RocksDbTaskStore> store = OpenAt(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetRaw(ColumnFamily::kMeta, kFormatVersionKey)
                ->value_or("<absent>"),
            kFormatVersion);
  EXPECT_TRUE(store->VerifyIndexes().ok()) << store->VerifyIndexes();
  EXPECT_EQ(Scanned(*store, ScanIndex::kOwed), owed);
}

TEST(RouteIndexTest, AVersion4StoreGetsTheRouteIndexWhenOpened) {
  testing::TempDir dir("route-index");
  const std::string path = dir.File("db");
  std::vector<std::string> on_key_a;
  {
    std::unique_ptr<RocksDbTaskStore> store = OpenAt(path);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 20; ++i) {
      v1::Task task;
      task.set_task_id(absl::StrCat("T", 100 + i));
      task.set_model("kling");
      task.set_state(v1::TASK_STATE_QUEUED);
      if (i % 4 != 3) task.set_route(i % 2 == 0 ? "key-a" : "key-b");
      TaskWrite write;
      write.task = &task;
      ASSERT_TRUE(store->Write(write).ok());
      if (task.route() == "key-a") on_key_a.push_back(task.task_id());
    }
    ASSERT_EQ(on_key_a.size(), 10u);
    // What a build of format 4 left: snapshots naming a route (a field it
    // kept as unknown), no route entries.
    EXPECT_EQ(
        Downgrade(*store, IndexKind::kRoute, kFormatVersionWithoutRouteIndex),
        15);
    EXPECT_FALSE(store->VerifyIndexes().ok());
    EXPECT_THAT(Scanned(*store, ScanIndex::kRoute, "key-a"), IsEmpty());
  }
  std::unique_ptr<RocksDbTaskStore> store = OpenAt(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetRaw(ColumnFamily::kMeta, kFormatVersionKey)
                ->value_or("<absent>"),
            kFormatVersion);
  EXPECT_TRUE(store->VerifyIndexes().ok()) << store->VerifyIndexes();
  EXPECT_EQ(Scanned(*store, ScanIndex::kRoute, "key-a"), on_key_a);
  EXPECT_EQ(Scanned(*store, ScanIndex::kRoute, "key-b").size(), 5u);
}

}  // namespace
}  // namespace tasktrail::store
