// The retention index of the RocksDB store: ListDueTasks lists finished
// tasks by finish time and unfinished ones by last change, each against its
// own cutoff, oldest first and up to the limit; a store of format version 2
// gets the index when opened.
#include <memory>
#include <string>
#include <vector>

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

TEST(RetentionIndexTest, DueTasksByClassTimeAndLimit) {
  testing::TempDir dir("retention-index");
  std::unique_ptr<RocksDbTaskStore> store = OpenAt(dir.File("db"));
  ASSERT_NE(store, nullptr);
  TaskIdGenerator ids(/*seed=*/3);
  // Created in this order, finished in another: the index orders by time.
  const std::string late = Put(*store, ids, 0, 50, v1::TASK_STATE_SUCCEEDED);
  const std::string early = Put(*store, ids, 1, 20, v1::TASK_STATE_FAILED);
  const std::string idle = Put(*store, ids, 2, 10, v1::TASK_STATE_QUEUED);
  const std::string busy = Put(*store, ids, 3, 90, v1::TASK_STATE_RUNNING);

  EXPECT_THAT(*store->ListDueTasks(At(20), At(10), 100), IsEmpty());
  EXPECT_THAT(*store->ListDueTasks(At(21), 0, 100), ElementsAre(early));
  EXPECT_THAT(*store->ListDueTasks(At(51), 0, 100), ElementsAre(early, late));
  EXPECT_THAT(*store->ListDueTasks(At(51), At(11), 100),
              ElementsAre(early, late, idle));
  EXPECT_THAT(*store->ListDueTasks(0, At(91), 100), ElementsAre(idle, busy));
  EXPECT_THAT(*store->ListDueTasks(At(51), At(91), 3),
              ElementsAre(early, late, idle));

  // A finished task leaves the unfinished half.
  v1::Task previous = *store->GetTask(busy);
  v1::Task finished = previous;
  finished.set_state(v1::TASK_STATE_CANCELED);
  *finished.mutable_update_time() = ToProtoTime(kStart + absl::Seconds(95));
  *finished.mutable_finish_time() = finished.update_time();
  TaskWrite write;
  write.previous = &previous;
  write.task = &finished;
  ASSERT_TRUE(store->Write(write).ok());
  EXPECT_THAT(*store->ListDueTasks(0, At(1000), 100), ElementsAre(idle));
  EXPECT_THAT(*store->ListDueTasks(At(1000), 0, 100),
              ElementsAre(early, late, busy));
  EXPECT_TRUE(store->VerifyIndexes().ok()) << store->VerifyIndexes();

  ASSERT_TRUE(store->PurgeTask(early, {}).ok());
  EXPECT_TRUE(absl::IsNotFound(store->PurgeTask(early, {})));
  EXPECT_THAT(*store->ListDueTasks(At(1000), 0, 100), ElementsAre(late, busy));
  EXPECT_TRUE(store->VerifyIndexes().ok()) << store->VerifyIndexes();
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
    const std::string kind(1, static_cast<char>(IndexKind::kRetention));
    std::vector<RawMutation> version2;
    ASSERT_TRUE(store
                    ->ScanRaw(ColumnFamily::kIndexes, kind,
                              [&](absl::string_view key, absl::string_view) {
                                version2.push_back({ColumnFamily::kIndexes,
                                                    std::string(key),
                                                    absl::nullopt});
                                return true;
                              })
                    .ok());
    ASSERT_EQ(version2.size(), 60u);
    version2.push_back({ColumnFamily::kMeta, std::string(kFormatVersionKey),
                        std::string(kFormatVersionWithoutRetentionIndex)});
    ASSERT_TRUE(store->WriteRaw(version2).ok());
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

}  // namespace
}  // namespace tasktrail::store
