// Backups of the RocksDB store (RocksDbTaskStore::CreateBackup, ListBackups,
// RestoreBackup) on real RocksDB directories: online under concurrent
// writes, every write acknowledged before the call restored; the newest N
// kept; a non-empty target and a damaged backup refused with a clear error.
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "store/rocksdb/rocksdb_task_store.h"
#include "tests/support/temp_dir.h"

namespace tasktrail::store {
namespace {

class BackupTest : public ::testing::Test {
 protected:
  StoreOptions Options(int keep = 7) const {
    StoreOptions options;
    options.path = dir_.File("db");
    options.block_cache_mb = 8;
    options.backup_dir = dir_.File("backups");
    options.backup_keep = keep;
    return options;
  }

  static std::unique_ptr<RocksDbTaskStore> Open(const StoreOptions& options) {
    absl::StatusOr<std::unique_ptr<RocksDbTaskStore>> store =
        RocksDbTaskStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  static absl::Status WriteTask(RocksDbTaskStore& store,
                                const std::string& task_id) {
    v1::Task task;
    task.set_task_id(task_id);
    task.set_account_id("acct-1");
    task.set_model("kling-v2-1");
    task.set_state(v1::TASK_STATE_SUBMITTED);
    TaskWrite write;
    write.task = &task;
    return store.Write(write);
  }

  testing::TempDir dir_{"backup-test"};
};

TEST_F(BackupTest, WithoutABackupDirectoryBackupsAreOff) {
  StoreOptions options = Options();
  options.backup_dir.clear();
  std::unique_ptr<RocksDbTaskStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<BackupInfo> backup = store->CreateBackup();
  EXPECT_EQ(backup.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(backup.status().message(), "--backup-dir"))
      << backup.status();
  EXPECT_EQ(store->ListBackups().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(BackupTest, EveryWriteAcknowledgedBeforeTheCallIsRestored) {
  std::unique_ptr<RocksDbTaskStore> store = Open(Options());
  ASSERT_NE(store, nullptr);
  std::mutex mutex;
  std::condition_variable progress;
  std::vector<std::string> acknowledged;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; !stop.load(); ++i) {
        const std::string id = absl::StrCat("t-", w, "-", i);
        if (!WriteTask(*store, id).ok()) return;
        std::lock_guard<std::mutex> lock(mutex);
        acknowledged.push_back(id);
        progress.notify_all();
      }
    });
  }
  std::vector<std::string> before_call;
  {
    // The backup starts once the writers have acknowledged 200 writes.
    std::unique_lock<std::mutex> lock(mutex);
    progress.wait(lock, [&] { return acknowledged.size() >= 200; });
    before_call = acknowledged;
  }
  absl::StatusOr<BackupInfo> backup = store->CreateBackup();
  stop = true;
  for (std::thread& writer : writers) writer.join();
  ASSERT_TRUE(backup.ok()) << backup.status();
  EXPECT_EQ(backup->backup_id, 1);
  EXPECT_GE(backup->task_count, static_cast<int64_t>(before_call.size()));
  EXPECT_GT(backup->size_bytes, 0);
  EXPECT_GT(backup->create_unix_seconds, 0);
  store.reset();

  const std::string restored_dir = dir_.File("restored");
  absl::StatusOr<BackupInfo> restored =
      RocksDbTaskStore::RestoreBackup(Options().backup_dir, 0, restored_dir);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->backup_id, backup->backup_id);
  EXPECT_EQ(restored->task_count, backup->task_count);
  StoreOptions restored_options;
  restored_options.path = restored_dir;
  std::unique_ptr<RocksDbTaskStore> copy = Open(restored_options);
  ASSERT_NE(copy, nullptr);
  for (const std::string& id : before_call) {
    EXPECT_TRUE(copy->GetTask(id).ok()) << id
                                        << " acknowledged before the "
                                           "backup is missing from it";
  }
  EXPECT_TRUE(copy->VerifyIndexes().ok());
}

TEST_F(BackupTest, TheNewestBackupsAreKeptAndListedNewestFirst) {
  std::unique_ptr<RocksDbTaskStore> store = Open(Options(/*keep=*/2));
  ASSERT_NE(store, nullptr);
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(WriteTask(*store, absl::StrCat("t-", i)).ok());
    absl::StatusOr<BackupInfo> backup = store->CreateBackup();
    ASSERT_TRUE(backup.ok()) << backup.status();
    EXPECT_EQ(backup->backup_id, i);
    EXPECT_EQ(backup->task_count, i);
  }
  absl::StatusOr<std::vector<BackupInfo>> listed = store->ListBackups();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].backup_id, 3);
  EXPECT_EQ((*listed)[0].task_count, 3);
  EXPECT_EQ((*listed)[1].backup_id, 2);

  // An older one is restored when named; one no longer kept is unknown.
  const std::string restored_dir = dir_.File("restored-2");
  absl::StatusOr<BackupInfo> restored =
      RocksDbTaskStore::RestoreBackup(Options().backup_dir, 2, restored_dir);
  ASSERT_TRUE(restored.ok()) << restored.status();
  StoreOptions restored_options;
  restored_options.path = restored_dir;
  std::unique_ptr<RocksDbTaskStore> copy = Open(restored_options);
  ASSERT_NE(copy, nullptr);
  EXPECT_TRUE(copy->GetTask("t-2").ok());
  EXPECT_EQ(copy->GetTask("t-3").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(RocksDbTaskStore::RestoreBackup(Options().backup_dir, 1,
                                            dir_.File("restored-1"))
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST_F(BackupTest, RestoreRefusesANonEmptyTarget) {
  std::unique_ptr<RocksDbTaskStore> store = Open(Options());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(WriteTask(*store, "t-1").ok());
  ASSERT_TRUE(store->CreateBackup().ok());
  // The live store's own directory is the most likely mistake.
  absl::StatusOr<BackupInfo> refused =
      RocksDbTaskStore::RestoreBackup(Options().backup_dir, 0, Options().path);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "not empty"))
      << refused.status();
  EXPECT_TRUE(store->GetTask("t-1").ok());
  EXPECT_EQ(RocksDbTaskStore::RestoreBackup(dir_.File("no-backups-here"), 0,
                                            dir_.File("target"))
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST_F(BackupTest, ADamagedBackupFileIsDetectedOnRestore) {
  std::unique_ptr<RocksDbTaskStore> store = Open(Options());
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(WriteTask(*store, absl::StrCat("t-", i)).ok());
  }
  ASSERT_TRUE(store->CreateBackup().ok());
  store.reset();
  // Flip one byte in the middle of every SST file of the backup.
  int damaged = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(Options().backup_dir)) {
    if (entry.path().extension() != ".sst") continue;
    const auto size = std::filesystem::file_size(entry.path());
    std::fstream file(entry.path(),
                      std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(static_cast<std::streamoff>(size / 2));
    char byte = 0;
    file.read(&byte, 1);
    file.seekp(static_cast<std::streamoff>(size / 2));
    byte = static_cast<char>(byte ^ 0x5a);
    file.write(&byte, 1);
    ++damaged;
  }
  ASSERT_GT(damaged, 0);
  absl::StatusOr<BackupInfo> restored = RocksDbTaskStore::RestoreBackup(
      Options().backup_dir, 0, dir_.File("restored"));
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kDataLoss)
      << restored.status();
  EXPECT_TRUE(absl::StrContains(restored.status().message(), "damaged"))
      << restored.status();
}

}  // namespace
}  // namespace tasktrail::store
