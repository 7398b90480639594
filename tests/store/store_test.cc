// Tests of what only the RocksDB task store has (its directory, format
// version, raw column families, group commit, and an index scan meeting a
// task deleted behind its index entry), on a real RocksDB in a
// fresh temporary directory per test. The TaskStore contract both stores
// share is tested in the conformance suite (conformance.h).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "store/keys.h"
#include "store/rocksdb/rocksdb_task_store.h"
#include "tasktrail/v1/task.pb.h"
#include "tests/store/scan_ids.h"
#include "tests/support/temp_dir.h"

namespace tasktrail::store {
namespace {

using ::google::protobuf::TextFormat;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class TaskStoreTest : public ::testing::Test {
 protected:
  StoreOptions Options() const {
    StoreOptions options;
    options.path = path_;
    options.block_cache_mb = 8;
    return options;
  }

  std::unique_ptr<RocksDbTaskStore> OpenStore() {
    absl::StatusOr<std::unique_ptr<RocksDbTaskStore>> store =
        RocksDbTaskStore::Open(Options());
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  testing::TempDir dir_{"store-test"};
  // A directory that does not exist yet: Open must create it.
  std::string path_ = dir_.File("db");
};

v1::Task ParseTask(const std::string& text) {
  v1::Task task;
  EXPECT_TRUE(TextFormat::ParseFromString(text, &task)) << text;
  return task;
}

// ---------------------------------------------------------------------------
// Open
// ---------------------------------------------------------------------------

TEST_F(TaskStoreTest, OpenCreatesTheDirectoryWithAFormatVersion) {
  ASSERT_FALSE(std::filesystem::exists(path_));
  {
    std::unique_ptr<RocksDbTaskStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    EXPECT_TRUE(std::filesystem::is_directory(path_));
    absl::StatusOr<absl::optional<std::string>> version =
        store->GetRaw(ColumnFamily::kMeta, kFormatVersionKey);
    ASSERT_TRUE(version.ok()) << version.status();
    ASSERT_TRUE(version->has_value());
    EXPECT_EQ(**version, kFormatVersion);
  }
  // Reopening the same directory works and keeps the version.
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<absl::optional<std::string>> version =
      store->GetRaw(ColumnFamily::kMeta, kFormatVersionKey);
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(version->value_or("<absent>"), kFormatVersion);
}

TEST_F(TaskStoreTest, SecondOpenOfAnOpenStoreIsRefused) {
  std::unique_ptr<RocksDbTaskStore> first = OpenStore();
  ASSERT_NE(first, nullptr);
  absl::StatusOr<std::unique_ptr<RocksDbTaskStore>> second =
      RocksDbTaskStore::Open(Options());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition)
      << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("already in use"));

  // Once the first one is closed, the directory can be opened again.
  first.reset();
  EXPECT_NE(OpenStore(), nullptr);
}

TEST_F(TaskStoreTest, UnknownFormatVersionIsRefused) {
  {
    std::unique_ptr<RocksDbTaskStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(
        store
            ->WriteRaw({{ColumnFamily::kMeta, std::string(kFormatVersionKey),
                         std::string("999")}})
            .ok());
  }
  absl::StatusOr<std::unique_ptr<RocksDbTaskStore>> store =
      RocksDbTaskStore::Open(Options());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("999"));
}

constexpr char kTask[] = R"(
  task_id: "T0001" account_id: "acct-1" model: "veo-3" state: TASK_STATE_QUEUED
  create_time { seconds: 1700000000 } charge_units: 5 request_id: "req-1"
  params { prompt: "a cat on a skateboard" duration_seconds: 8 }
  last_event_seq: 2)";

// ---------------------------------------------------------------------------
// Atomic extra mutations
// ---------------------------------------------------------------------------

TEST_F(TaskStoreTest, ExtraMutationsCommitWithTheTask) {
  const std::string dedup_key = DedupKey("acct-1/content", "fingerprint-1");
  const std::string stale_key = DedupKey("acct-1/request", "old-req");
  {
    std::unique_ptr<RocksDbTaskStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store
                    ->WriteRaw({{ColumnFamily::kDedup, stale_key,
                                 std::string("T0000")}})
                    .ok());
    const v1::Task task = ParseTask(kTask);
    TaskWrite write;
    write.task = &task;
    write.extra = {
        {ColumnFamily::kDedup, dedup_key, std::string("T0001")},
        {ColumnFamily::kCounters, "submits/veo-3", std::string("1")},
        {ColumnFamily::kDedup, stale_key, absl::nullopt},  // a delete
    };
    ASSERT_TRUE(store->Write(write).ok());
  }
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->GetTask("T0001").ok());
  auto dedup = store->GetRaw(ColumnFamily::kDedup, dedup_key);
  ASSERT_TRUE(dedup.ok()) << dedup.status();
  EXPECT_EQ(dedup->value_or("<absent>"), "T0001");
  auto counter = store->GetRaw(ColumnFamily::kCounters, "submits/veo-3");
  ASSERT_TRUE(counter.ok()) << counter.status();
  EXPECT_EQ(counter->value_or("<absent>"), "1");
  auto stale = store->GetRaw(ColumnFamily::kDedup, stale_key);
  ASSERT_TRUE(stale.ok()) << stale.status();
  EXPECT_FALSE(stale->has_value());
  // Families are separate key spaces.
  auto wrong_family = store->GetRaw(ColumnFamily::kCounters, dedup_key);
  ASSERT_TRUE(wrong_family.ok()) << wrong_family.status();
  EXPECT_FALSE(wrong_family->has_value());

  std::vector<std::string> keys;
  ASSERT_TRUE(store
                  ->ScanRaw(ColumnFamily::kDedup,
                            DedupKey("acct-1/content", ""),
                            [&](absl::string_view key, absl::string_view) {
                              keys.emplace_back(key);
                              return true;
                            })
                  .ok());
  EXPECT_THAT(keys, ElementsAre(dedup_key));
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

TEST_F(TaskStoreTest, CommitAnswersInOrderOnceTheWriteIsReadable) {
  // One thread commits without waiting: the writes queue behind each
  // other's fsyncs and are grouped. Each answer comes after its write is
  // readable, in commit order, and every write survives a reopen.
  constexpr int kWrites = 300;
  {
    std::unique_ptr<RocksDbTaskStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    absl::Mutex mutex;
    std::vector<int> answered;
    int readable = 0;
    for (int i = 0; i < kWrites; ++i) {
      v1::Task task;
      task.set_task_id(absl::StrFormat("C%04d", i));
      task.set_state(v1::TASK_STATE_SUBMITTED);
      TaskWrite write;
      write.task = &task;
      absl::StatusOr<PreparedWrite> prepared = store->Prepare(write);
      ASSERT_TRUE(prepared.ok()) << prepared.status();
      store->Commit(*std::move(prepared),
                    [&, i, id = task.task_id()](absl::Status status) {
                      EXPECT_TRUE(status.ok()) << status;
                      const bool found = store->GetTask(id).ok();
                      absl::MutexLock lock(&mutex);
                      answered.push_back(i);
                      if (found) ++readable;
                    });
    }
    absl::MutexLock lock(&mutex);
    auto all_answered = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
      return answered.size() == static_cast<size_t>(kWrites);
    };
    mutex.Await(absl::Condition(&all_answered));
    EXPECT_TRUE(std::is_sorted(answered.begin(), answered.end()));
    EXPECT_EQ(readable, kWrites);
  }
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  TaskScan all;
  all.index = ScanIndex::kAll;
  all.max_visits = 100000;
  EXPECT_EQ(ScanIds(*store, all).size(), static_cast<size_t>(kWrites));
}

// ---------------------------------------------------------------------------
// Index scans
// ---------------------------------------------------------------------------

// A purge deletes a task's snapshot and index entries in one batch, but an
// index scan reads the entry and the snapshot apart: a task purged in
// between is one the scan no longer has, not a failure of the scan. The
// snapshot alone is deleted here to stand for that moment.
TEST_F(TaskStoreTest, IndexScanSkipsAnEntryWhoseTaskIsGone) {
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (const char* task_id : {"T0001", "T0002", "T0003"}) {
    v1::Task task = ParseTask(kTask);
    task.set_task_id(task_id);
    task.set_account_id("acct-gone");
    TaskWrite write;
    write.task = &task;
    ASSERT_TRUE(store->Write(write).ok());
  }
  ASSERT_TRUE(
      store->WriteRaw({{ColumnFamily::kTasks, "T0002", absl::nullopt}}).ok());
  TaskScan scan;
  scan.index = ScanIndex::kAccount;
  scan.value = "acct-gone";
  for (const bool oldest_first : {true, false}) {
    scan.oldest_first = oldest_first;
    std::vector<std::string> expected = {"T0001", "T0003"};
    if (!oldest_first) std::reverse(expected.begin(), expected.end());
    EXPECT_EQ(ScanIds(*store, scan), expected);
  }
}

}  // namespace
}  // namespace tasktrail::store
