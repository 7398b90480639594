// Tests of CommitQueue: grouping, order, failure and shutdown. The Apply
// function stands in for the database so that a write can be held in
// progress while others queue behind it; TaskStore's tests cover the queue
// on a real RocksDB.

#include "store/rocksdb/commit_queue.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/write_batch.h"

namespace tasktrail::store {
namespace {

using ::testing::ElementsAre;

// Collects the keys of a batch's Put records, in order.
class KeyCollector : public rocksdb::WriteBatch::Handler {
 public:
  rocksdb::Status PutCF(uint32_t, const rocksdb::Slice& key,
                        const rocksdb::Slice&) override {
    keys.push_back(key.ToString());
    return rocksdb::Status::OK();
  }
  std::vector<std::string> keys;
};

std::unique_ptr<rocksdb::WriteBatch> BatchOf(
    const std::vector<std::string>& keys) {
  auto batch = std::make_unique<rocksdb::WriteBatch>();
  for (const std::string& key : keys) batch->Put(key, "value");
  return batch;
}

// What the queue asked the database to write.
struct AppliedWrite {
  std::vector<std::string> keys;
  uint32_t count = 0;
  bool sync = false;
};

// An Apply that records each write and holds the first one until released.
class HeldDatabase {
 public:
  CommitQueue::Apply AsApply() {
    return [this](rocksdb::WriteBatch* batch, bool sync) {
      KeyCollector collector;
      EXPECT_TRUE(batch->Iterate(&collector).ok());
      bool first = false;
      {
        absl::MutexLock lock(&mutex_);
        writes_.push_back({collector.keys, batch->Count(), sync});
        first = writes_.size() == 1;
      }
      if (first) {
        first_started_.Notify();
        release_.WaitForNotification();
      }
      absl::MutexLock lock(&mutex_);
      return next_status_;
    };
  }

  void AwaitFirstWrite() { first_started_.WaitForNotification(); }
  void Release() { release_.Notify(); }
  void FailWith(absl::Status status) {
    absl::MutexLock lock(&mutex_);
    next_status_ = std::move(status);
  }
  std::vector<AppliedWrite> writes() {
    absl::MutexLock lock(&mutex_);
    return writes_;
  }

 private:
  absl::Notification first_started_;
  absl::Notification release_;
  absl::Mutex mutex_;
  std::vector<AppliedWrite> writes_ ABSL_GUARDED_BY(mutex_);
  absl::Status next_status_ ABSL_GUARDED_BY(mutex_);
};

// Records callback results in the order the callbacks ran.
class Answers {
 public:
  CommitQueue::Callback For(std::string name) {
    return [this, name](absl::Status status) {
      absl::MutexLock lock(&mutex_);
      names_.push_back(name);
      statuses_.push_back(std::move(status));
    };
  }
  void AwaitCount(size_t count) {
    absl::MutexLock lock(&mutex_);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return names_.size() >= count;
    };
    mutex_.Await(absl::Condition(&reached));
  }
  std::vector<std::string> names() {
    absl::MutexLock lock(&mutex_);
    return names_;
  }
  std::vector<absl::StatusCode> codes() {
    absl::MutexLock lock(&mutex_);
    std::vector<absl::StatusCode> codes;
    for (const absl::Status& status : statuses_) codes.push_back(status.code());
    return codes;
  }

 private:
  absl::Mutex mutex_;
  std::vector<std::string> names_ ABSL_GUARDED_BY(mutex_);
  std::vector<absl::Status> statuses_ ABSL_GUARDED_BY(mutex_);
};

// Queues one batch, waits until the database holds it in progress, then
// queues `count` one-key batches ("k0", "k1", ...) behind it.
void QueueBehindAHeldWrite(CommitQueue& queue, HeldDatabase& database,
                           Answers& answers, size_t count) {
  queue.Enqueue(BatchOf({"first"}), /*sync=*/true, answers.For("first"));
  database.AwaitFirstWrite();
  for (size_t i = 0; i < count; ++i) {
    queue.Enqueue(BatchOf({absl::StrCat("k", i)}), /*sync=*/true,
                  answers.For(absl::StrCat(i)));
  }
}

TEST(CommitQueueTest, BatchesQueuedDuringAWriteAreWrittenTogetherInOrder) {
  HeldDatabase database;
  Answers answers;
  CommitQueue queue(database.AsApply());
  queue.Enqueue(BatchOf({"a"}), /*sync=*/false, answers.For("a"));
  database.AwaitFirstWrite();
  queue.Enqueue(BatchOf({"b1", "b2"}), /*sync=*/false, answers.For("b"));
  queue.Enqueue(BatchOf({"c1", "c2"}), /*sync=*/true, answers.For("c"));
  queue.Enqueue(BatchOf({"d1"}), /*sync=*/false, answers.For("d"));
  database.Release();
  answers.AwaitCount(4);

  const std::vector<AppliedWrite> writes = database.writes();
  ASSERT_EQ(writes.size(), 2u);
  EXPECT_THAT(writes[0].keys, ElementsAre("a"));
  EXPECT_FALSE(writes[0].sync);
  // One write for the three batches that queued: their records in order, a
  // header that counts them all, and an fsync because one batch asked.
  EXPECT_THAT(writes[1].keys, ElementsAre("b1", "b2", "c1", "c2", "d1"));
  EXPECT_EQ(writes[1].count, 5u);
  EXPECT_TRUE(writes[1].sync);
  EXPECT_THAT(answers.names(), ElementsAre("a", "b", "c", "d"));
  EXPECT_THAT(answers.codes(),
              ElementsAre(absl::StatusCode::kOk, absl::StatusCode::kOk,
                          absl::StatusCode::kOk, absl::StatusCode::kOk));
  const CommitQueue::Counts counts = queue.counts();
  EXPECT_EQ(counts.writes, 4u);
  EXPECT_EQ(counts.groups, 2u);
}

TEST(CommitQueueTest, AFailedWriteFailsEveryBatchOfItsGroupOnly) {
  HeldDatabase database;
  Answers answers;
  CommitQueue queue(database.AsApply());
  queue.Enqueue(BatchOf({"a"}), /*sync=*/true, answers.For("a"));
  database.AwaitFirstWrite();
  database.FailWith(absl::UnavailableError("disk full"));
  queue.Enqueue(BatchOf({"b"}), /*sync=*/true, answers.For("b"));
  queue.Enqueue(BatchOf({"c"}), /*sync=*/true, answers.For("c"));
  database.Release();
  answers.AwaitCount(3);
  // The held write ran into the failure too (its status is read after it
  // was released); every batch written with it was told.
  EXPECT_THAT(answers.codes(), ElementsAre(absl::StatusCode::kUnavailable,
                                           absl::StatusCode::kUnavailable,
                                           absl::StatusCode::kUnavailable));

  database.FailWith(absl::OkStatus());
  queue.Enqueue(BatchOf({"d"}), /*sync=*/true, answers.For("d"));
  answers.AwaitCount(4);
  EXPECT_EQ(answers.codes().back(), absl::StatusCode::kOk);
}

TEST(CommitQueueTest, DestructionWritesAndAnswersEverythingQueued) {
  HeldDatabase database;
  Answers answers;
  {
    CommitQueue queue(database.AsApply());
    QueueBehindAHeldWrite(queue, database, answers, 100);
    database.Release();
  }
  EXPECT_EQ(answers.names().size(), 101u);
  size_t keys = 0;
  for (const AppliedWrite& write : database.writes()) keys += write.count;
  EXPECT_EQ(keys, 101u);
}

TEST(CommitQueueTest, AGroupIsBoundedInBatches) {
  HeldDatabase database;
  Answers answers;
  CommitQueue queue(database.AsApply());
  const size_t queued = CommitQueue::kMaxGroupBatches + 10;
  QueueBehindAHeldWrite(queue, database, answers, queued);
  database.Release();
  answers.AwaitCount(queued + 1);
  const std::vector<AppliedWrite> writes = database.writes();
  ASSERT_EQ(writes.size(), 3u);
  EXPECT_EQ(writes[1].count, CommitQueue::kMaxGroupBatches);
  EXPECT_EQ(writes[2].count, 10u);
  EXPECT_EQ(writes[2].keys.back(), absl::StrCat("k", queued - 1));
}

}  // namespace
}  // namespace tasktrail::store
