// The retention index of the RocksDB store: a store of format version 2 gets
// the index when opened. What ListDueTasks lists is a contract of every
// store (tests/store/conformance_test.cc).
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
