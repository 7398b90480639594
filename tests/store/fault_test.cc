// Faults under the store: disk full and I/O errors injected through a
// rocksdb::FileSystemWrapper (tests run as root, so permissions cannot make
// a write fail), and a corrupted data directory.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "service/tracker/tracker.h"
#include "store/rocksdb/rocksdb_task_store.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tracker_setup.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Fails every Append and Sync of files opened for writing once `failing` is
// set, as a full disk does.
class FullDiskFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  explicit FullDiskFileSystem(std::shared_ptr<std::atomic<bool>> failing)
      : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()),
        failing_(std::move(failing)) {}

  const char* Name() const override { return "FullDiskFileSystem"; }

  rocksdb::IOStatus NewWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* file,
      rocksdb::IODebugContext* debug) override {
    std::unique_ptr<rocksdb::FSWritableFile> real;
    rocksdb::IOStatus status =
        target()->NewWritableFile(name, options, &real, debug);
    if (status.ok()) file->reset(new FailingFile(std::move(real), failing_));
    return status;
  }

 private:
  class FailingFile final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    FailingFile(std::unique_ptr<rocksdb::FSWritableFile> real,
                std::shared_ptr<std::atomic<bool>> failing)
        : rocksdb::FSWritableFileOwnerWrapper(std::move(real)),
          failing_(std::move(failing)) {}

    rocksdb::IOStatus Append(const rocksdb::Slice& data,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* debug) override {
      if (failing_->load()) return NoSpace();
      return FSWritableFileOwnerWrapper::Append(data, options, debug);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data,
                             const rocksdb::IOOptions& options,
                             const rocksdb::DataVerificationInfo& info,
                             rocksdb::IODebugContext* debug) override {
      if (failing_->load()) return NoSpace();
      return FSWritableFileOwnerWrapper::Append(data, options, info, debug);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* debug) override {
      if (failing_->load()) return NoSpace();
      return FSWritableFileOwnerWrapper::Sync(options, debug);
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* debug) override {
      if (failing_->load()) return NoSpace();
      return FSWritableFileOwnerWrapper::Fsync(options, debug);
    }

   private:
    static rocksdb::IOStatus NoSpace() {
      return rocksdb::IOStatus::NoSpace("injected: no space left on device");
    }
    std::shared_ptr<std::atomic<bool>> failing_;
  };

  std::shared_ptr<std::atomic<bool>> failing_;
};

// A disk with room for `remaining` more bytes, shared by the files of a
// ByteBudgetFileSystem. It also records every call that writes to a file or
// syncs it (append, truncate, allocate, sync) made after the first append
// that it refused. Flush is not one: RocksDB hands a file every byte through
// Append, and Flush only asks the file system to pass on what it buffered
// itself (nothing, for the POSIX one); closing the database calls it on each
// open file.
class DiskBudget {
 public:
  static constexpr int64_t kUnlimited = std::numeric_limits<int64_t>::max();

  // Sets the room left from now on.
  void SetRemaining(int64_t bytes) { remaining_.store(bytes); }

  // Takes `bytes` from the room left; false (and nothing taken) when there
  // is not enough.
  bool Take(size_t bytes) {
    int64_t remaining = remaining_.load();
    while (remaining >= static_cast<int64_t>(bytes)) {
      if (remaining_.compare_exchange_weak(
              remaining, remaining - static_cast<int64_t>(bytes))) {
        return true;
      }
    }
    refused_.store(true);
    return false;
  }

  // Records `call` on `file` when an append was refused before it.
  void Record(const std::string& call, const std::string& file) {
    if (!refused_.load()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    after_refusal_.push_back(call + " " +
                             std::filesystem::path(file).filename().string());
  }

  bool refused() const { return refused_.load(); }
  // The calls recorded, as "Call file-name".
  std::vector<std::string> after_refusal() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return after_refusal_;
  }

 private:
  std::atomic<int64_t> remaining_{kUnlimited};
  std::atomic<bool> refused_{false};
  mutable std::mutex mutex_;
  std::vector<std::string> after_refusal_;
};

// Refuses an append that does not fit the budget with ENOSPC, as a full disk
// does, and passes every other call on to the real file system unchanged
// (reads, syncs, and appends while there is room).
class ByteBudgetFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  explicit ByteBudgetFileSystem(std::shared_ptr<DiskBudget> budget)
      : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()),
        budget_(std::move(budget)) {}

  const char* Name() const override { return "ByteBudgetFileSystem"; }

  rocksdb::IOStatus NewWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* file,
      rocksdb::IODebugContext* debug) override {
    std::unique_ptr<rocksdb::FSWritableFile> real;
    rocksdb::IOStatus status =
        target()->NewWritableFile(name, options, &real, debug);
    if (status.ok()) file->reset(new File(std::move(real), name, budget_));
    return status;
  }

  rocksdb::IOStatus ReopenWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* file,
      rocksdb::IODebugContext* debug) override {
    std::unique_ptr<rocksdb::FSWritableFile> real;
    rocksdb::IOStatus status =
        target()->ReopenWritableFile(name, options, &real, debug);
    if (status.ok()) file->reset(new File(std::move(real), name, budget_));
    return status;
  }

 private:
  class File final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> real, std::string name,
         std::shared_ptr<DiskBudget> budget)
        : rocksdb::FSWritableFileOwnerWrapper(std::move(real)),
          name_(std::move(name)),
          budget_(std::move(budget)) {}

    rocksdb::IOStatus Append(const rocksdb::Slice& data,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* debug) override {
      budget_->Record("Append", name_);
      if (!budget_->Take(data.size())) return NoSpace();
      return FSWritableFileOwnerWrapper::Append(data, options, debug);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data,
                             const rocksdb::IOOptions& options,
                             const rocksdb::DataVerificationInfo& info,
                             rocksdb::IODebugContext* debug) override {
      budget_->Record("Append", name_);
      if (!budget_->Take(data.size())) return NoSpace();
      return FSWritableFileOwnerWrapper::Append(data, options, info, debug);
    }
    rocksdb::IOStatus PositionedAppend(
        const rocksdb::Slice& data, uint64_t offset,
        const rocksdb::IOOptions& options,
        rocksdb::IODebugContext* debug) override {
      budget_->Record("PositionedAppend", name_);
      if (!budget_->Take(data.size())) return NoSpace();
      return FSWritableFileOwnerWrapper::PositionedAppend(data, offset, options,
                                                          debug);
    }
    rocksdb::IOStatus PositionedAppend(
        const rocksdb::Slice& data, uint64_t offset,
        const rocksdb::IOOptions& options,
        const rocksdb::DataVerificationInfo& info,
        rocksdb::IODebugContext* debug) override {
      budget_->Record("PositionedAppend", name_);
      if (!budget_->Take(data.size())) return NoSpace();
      return FSWritableFileOwnerWrapper::PositionedAppend(data, offset, options,
                                                          info, debug);
    }
    rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* debug) override {
      budget_->Record("Truncate", name_);
      return FSWritableFileOwnerWrapper::Truncate(size, options, debug);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* debug) override {
      budget_->Record("Sync", name_);
      return FSWritableFileOwnerWrapper::Sync(options, debug);
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* debug) override {
      budget_->Record("Fsync", name_);
      return FSWritableFileOwnerWrapper::Fsync(options, debug);
    }
    rocksdb::IOStatus RangeSync(uint64_t offset, uint64_t nbytes,
                                const rocksdb::IOOptions& options,
                                rocksdb::IODebugContext* debug) override {
      budget_->Record("RangeSync", name_);
      return FSWritableFileOwnerWrapper::RangeSync(offset, nbytes, options,
                                                   debug);
    }
    rocksdb::IOStatus Allocate(uint64_t offset, uint64_t len,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* debug) override {
      budget_->Record("Allocate", name_);
      return FSWritableFileOwnerWrapper::Allocate(offset, len, options, debug);
    }

   private:
    static rocksdb::IOStatus NoSpace() {
      return rocksdb::IOStatus::NoSpace("budget: no space left on device");
    }
    const std::string name_;
    const std::shared_ptr<DiskBudget> budget_;
  };

  std::shared_ptr<DiskBudget> budget_;
};

class FaultTest : public ::testing::Test {
 protected:
  store::StoreOptions Options(bool faulty) {
    store::StoreOptions options;
    options.path = dir_.path();
    if (faulty) {
      options.env = std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(
          std::make_shared<FullDiskFileSystem>(failing_)));
    }
    return WithFailureHook(std::move(options));
  }

  // Options on a ByteBudgetFileSystem drawing on `budget_`.
  store::StoreOptions BudgetOptions() {
    store::StoreOptions options;
    options.path = dir_.path();
    options.env = std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(
        std::make_shared<ByteBudgetFileSystem>(budget_)));
    return WithFailureHook(std::move(options));
  }

  store::StoreOptions WithFailureHook(store::StoreOptions options) {
    // Called on the commit thread or a RocksDB thread.
    options.on_failure = [this](const absl::Status& status) {
      std::lock_guard<std::mutex> lock(failure_mutex_);
      ++failures_reported_;
      last_failure_ = std::string(status.message());
    };
    return options;
  }

  static v1::SubmitTaskRequest Submit(const std::string& prompt) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct");
    request.set_model("veo-3");
    request.mutable_params()->set_prompt(prompt);
    return request;
  }

  testing::TempDir dir_{"fault-test"};
  std::shared_ptr<std::atomic<bool>> failing_ =
      std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<DiskBudget> budget_ = std::make_shared<DiskBudget>();
  int failures_reported() {
    std::lock_guard<std::mutex> lock(failure_mutex_);
    return failures_reported_;
  }
  std::string last_failure() {
    std::lock_guard<std::mutex> lock(failure_mutex_);
    return last_failure_;
  }

  std::mutex failure_mutex_;
  int failures_reported_ = 0;
  std::string last_failure_;
  CatalogHolder catalog_{Catalog::BuiltIn()};
  EventHub hub_;
};

TEST_F(FaultTest, AFullDiskIsUnavailableAndNothingHalfWrittenSurvives) {
  std::string acknowledged;
  {
    auto opened = testing::OpenTracker(Options(/*faulty=*/true), &catalog_,
                                       SystemClock::Get(), &hub_);
    ASSERT_TRUE(opened.ok()) << opened.status();
    store::RocksDbTaskStore* store = opened->store.get();
    Tracker& tracker = *opened->tracker;
    auto first = AwaitWrite(tracker, &Tracker::SubmitTask,
                            Submit("before the disk filled"), "");
    ASSERT_TRUE(first.ok()) << first.status();
    acknowledged = first->task().task_id();

    failing_->store(true);
    auto refused = AwaitWrite(tracker, &Tracker::SubmitTask,
                              Submit("after the disk filled"), "");
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(refused.status().message(), HasSubstr("space"));
    EXPECT_TRUE(store->failed());
    EXPECT_EQ(failures_reported(), 1);

    // Once failed, the store refuses writes even if the disk recovers, so a
    // half-applied state is never built on; reads still answer.
    failing_->store(false);
    auto later = AwaitWrite(tracker, &Tracker::SubmitTask,
                            Submit("disk has room again"), "");
    EXPECT_EQ(later.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(failures_reported(), 1);
    v1::GetTaskRequest get;
    get.set_task_id(acknowledged);
    EXPECT_TRUE(tracker.GetTask(get).ok());
  }
  // A restart on a healthy disk has the acknowledged task and nothing else.
  auto store = store::RocksDbTaskStore::Open(Options(/*faulty=*/false));
  ASSERT_TRUE(store.ok()) << store.status();
  int tasks = 0;
  ASSERT_TRUE((*store)
                  ->Scan(store::TaskScan(),
                         [&](const v1::Task& task) {
                           ++tasks;
                           EXPECT_EQ(task.task_id(), acknowledged);
                           return true;
                         })
                  .ok());
  EXPECT_EQ(tasks, 1);
  auto events = (*store)->ReadEvents(acknowledged, 0, 10);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 1u);
}

// Writes queued behind the one the disk refuses are refused without reaching
// RocksDB, and RocksDB does not retry on its own (not even once the disk has
// room again): after the first refused append nothing is appended, flushed
// or synced to any file, closing the store included.
TEST_F(FaultTest, NothingIsWrittenAfterTheDiskRefusedAnAppend) {
  constexpr int kWrites = 64;
  std::vector<absl::Status> results(kWrites);
  {
    auto store = store::RocksDbTaskStore::Open(BudgetOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    // Two writes while there is room; then room for about one more, and the
    // rest queued at once so that they are applied in groups: the group
    // that fails, then groups already queued behind it.
    for (int i = 0; i < 2; ++i) {
      results[i] = (*store)->WriteRaw(
          {{store::ColumnFamily::kMeta, "fault-" + std::to_string(i),
            std::string(4096, 'x')}});
      ASSERT_TRUE(results[i].ok()) << results[i];
    }
    budget_->SetRemaining(6 << 10);
    std::vector<absl::Notification> done(kWrites);
    for (int i = 2; i < kWrites; ++i) {
      (*store)->Commit((*store)->PrepareRaw({{store::ColumnFamily::kMeta,
                                              "fault-" + std::to_string(i),
                                              std::string(4096, 'x')}}),
                       [&results, &done, i](absl::Status status) {
                         results[i] = std::move(status);
                         done[i].Notify();
                       });
    }
    for (int i = 2; i < kWrites; ++i) done[i].WaitForNotification();
    ASSERT_TRUE(budget_->refused());
    int first_refused = 0;
    while (results[first_refused].ok()) ++first_refused;
    EXPECT_THAT(results[first_refused].message(), HasSubstr("space"));
    for (int i = first_refused; i < kWrites; ++i) {
      EXPECT_EQ(results[i].code(), absl::StatusCode::kUnavailable) << i;
    }
    EXPECT_TRUE((*store)->failed());
    EXPECT_EQ(failures_reported(), 1);
    EXPECT_THAT(last_failure(), HasSubstr("space"));

    // The disk has room again; the store still refuses writes and answers
    // reads.
    budget_->SetRemaining(DiskBudget::kUnlimited);
    EXPECT_EQ((*store)
                  ->WriteRaw({{store::ColumnFamily::kMeta, "fault-later", "x"}})
                  .code(),
              absl::StatusCode::kUnavailable);
    EXPECT_EQ((*store)
                  ->WriteRaw({{store::ColumnFamily::kMeta, "fault-later", "x"}},
                             store::TaskStore::Durability::kBuffered)
                  .code(),
              absl::StatusCode::kUnavailable);
    EXPECT_EQ((*store)->Compact(store::ColumnFamily::kMeta).code(),
              absl::StatusCode::kUnavailable);
    auto read = (*store)->GetRaw(store::ColumnFamily::kMeta, "fault-0");
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_TRUE(read->has_value());
  }
  EXPECT_THAT(budget_->after_refusal(), IsEmpty());

  // Reopened, the store has exactly the writes reported OK.
  auto store = store::RocksDbTaskStore::Open(BudgetOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < kWrites; ++i) {
    auto read = (*store)->GetRaw(store::ColumnFamily::kMeta,
                                 "fault-" + std::to_string(i));
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->has_value(), results[i].ok()) << i;
  }
}

// A flush (or compaction) that the disk refuses leaves the store failed as a
// refused commit does: reported once, writes refused, reads answered.
TEST_F(FaultTest, ARefusedFlushLeavesTheStoreFailed) {
  std::string acknowledged;
  {
    auto store = store::RocksDbTaskStore::Open(BudgetOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    Tracker tracker(store->get(), &catalog_, SystemClock::Get(), &hub_);
    auto first = AwaitWrite(tracker, &Tracker::SubmitTask,
                            Submit("before the disk filled"), "");
    ASSERT_TRUE(first.ok()) << first.status();
    acknowledged = first->task().task_id();

    // Compacting flushes the memtable to a new table file first.
    budget_->SetRemaining(0);
    EXPECT_FALSE((*store)->Compact(store::ColumnFamily::kTasks).ok());
    ASSERT_TRUE(budget_->refused());
    EXPECT_TRUE((*store)->failed());
    EXPECT_EQ(failures_reported(), 1);
    EXPECT_THAT(last_failure(), HasSubstr("space"));

    budget_->SetRemaining(DiskBudget::kUnlimited);
    auto refused = AwaitWrite(tracker, &Tracker::SubmitTask,
                              Submit("after the flush failed"), "");
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(refused.status().message(), HasSubstr("refuses writes"));
    v1::GetTaskRequest get;
    get.set_task_id(acknowledged);
    EXPECT_TRUE(tracker.GetTask(get).ok());
  }
  EXPECT_THAT(budget_->after_refusal(), IsEmpty());

  auto store = store::RocksDbTaskStore::Open(BudgetOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->GetTask(acknowledged).ok());
}

TEST_F(FaultTest, ACorruptedDirectoryFailsToOpenWithAClearError) {
  {
    auto store = store::RocksDbTaskStore::Open(Options(/*faulty=*/false));
    ASSERT_TRUE(store.ok());
  }
  // CURRENT names the manifest; garbage there is a corrupted directory.
  {
    std::ofstream current(dir_.File("CURRENT"), std::ios::trunc);
    current << "MANIFEST-999999\n";
  }
  auto reopened = store::RocksDbTaskStore::Open(Options(/*faulty=*/false));
  ASSERT_FALSE(reopened.ok());
  EXPECT_NE(reopened.status().code(), absl::StatusCode::kOk);
  EXPECT_THAT(reopened.status().message(), HasSubstr(dir_.path()));
}

TEST_F(FaultTest, AFullDiskAtOpenFailsWithAClearError) {
  failing_->store(true);
  auto store = store::RocksDbTaskStore::Open(Options(/*faulty=*/true));
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("space"));
}

}  // namespace
}  // namespace tasktrail
