// Faults under the store: disk full and I/O errors injected through a
// rocksdb::FileSystemWrapper (tests run as root, so permissions cannot make
// a write fail), and a corrupted data directory.
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "service/tracker/tracker.h"
#include "store/task_store.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;

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

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        std::filesystem::temp_directory_path().string() + "/fault-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  store::StoreOptions Options(bool faulty) {
    store::StoreOptions options;
    options.path = dir_;
    if (faulty) {
      options.env = std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(
          std::make_shared<FullDiskFileSystem>(failing_)));
    }
    options.on_failure = [this](const absl::Status& status) {
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

  std::string dir_;
  std::shared_ptr<std::atomic<bool>> failing_ =
      std::make_shared<std::atomic<bool>>(false);
  int failures_reported_ = 0;
  std::string last_failure_;
  CatalogHolder catalog_{Catalog::BuiltIn()};
  EventHub hub_;
};

TEST_F(FaultTest, AFullDiskIsUnavailableAndNothingHalfWrittenSurvives) {
  std::string acknowledged;
  {
    auto store = store::TaskStore::Open(Options(/*faulty=*/true));
    ASSERT_TRUE(store.ok()) << store.status();
    Tracker tracker(store->get(), &catalog_, SystemClock::Get(), &hub_);
    auto first = AwaitWrite(tracker, &Tracker::SubmitTask,
                            Submit("before the disk filled"), "");
    ASSERT_TRUE(first.ok()) << first.status();
    acknowledged = first->task().task_id();

    failing_->store(true);
    auto refused = AwaitWrite(tracker, &Tracker::SubmitTask,
                              Submit("after the disk filled"), "");
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(refused.status().message(), HasSubstr("space"));
    EXPECT_TRUE((*store)->failed());
    EXPECT_EQ(failures_reported_, 1);

    // Once failed, the store refuses writes even if the disk recovers, so a
    // half-applied state is never built on; reads still answer.
    failing_->store(false);
    auto later = AwaitWrite(tracker, &Tracker::SubmitTask,
                            Submit("disk has room again"), "");
    EXPECT_EQ(later.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(failures_reported_, 1);
    v1::GetTaskRequest get;
    get.set_task_id(acknowledged);
    EXPECT_TRUE(tracker.GetTask(get).ok());
  }
  // A restart on a healthy disk has the acknowledged task and nothing else.
  auto store = store::TaskStore::Open(Options(/*faulty=*/false));
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

TEST_F(FaultTest, ACorruptedDirectoryFailsToOpenWithAClearError) {
  {
    auto store = store::TaskStore::Open(Options(/*faulty=*/false));
    ASSERT_TRUE(store.ok());
  }
  // CURRENT names the manifest; garbage there is a corrupted directory.
  {
    std::ofstream current(dir_ + "/CURRENT", std::ios::trunc);
    current << "MANIFEST-999999\n";
  }
  auto reopened = store::TaskStore::Open(Options(/*faulty=*/false));
  ASSERT_FALSE(reopened.ok());
  EXPECT_NE(reopened.status().code(), absl::StatusCode::kOk);
  EXPECT_THAT(reopened.status().message(), HasSubstr(dir_));
}

TEST_F(FaultTest, AFullDiskAtOpenFailsWithAClearError) {
  failing_->store(true);
  auto store = store::TaskStore::Open(Options(/*faulty=*/true));
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("space"));
}

}  // namespace
}  // namespace tasktrail
