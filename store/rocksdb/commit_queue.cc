#include "store/rocksdb/commit_queue.h"

#include <pthread.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "rocksdb/write_batch.h"

namespace tasktrail::store {
namespace {

// A WriteBatch's representation is the WAL record format: a 12-byte header
// (fixed64 sequence number, fixed32 record count, both little-endian) and the
// records. Concatenating the records of several batches under one header is
// how RocksDB itself merges a write group (WriteBatchInternal::Append).
constexpr size_t kHeaderBytes = 12;
constexpr size_t kCountOffset = 8;

// One batch holding the records of all `batches`, in order.
std::unique_ptr<rocksdb::WriteBatch> Merge(
    const std::vector<rocksdb::WriteBatch*>& batches) {
  size_t bytes = kHeaderBytes;
  for (const rocksdb::WriteBatch* batch : batches) {
    bytes += batch->GetDataSize() - kHeaderBytes;
  }
  std::string rep;
  rep.reserve(bytes);
  rep.append(kHeaderBytes, '\0');
  uint32_t count = 0;
  for (const rocksdb::WriteBatch* batch : batches) {
    rep.append(batch->Data(), kHeaderBytes, std::string::npos);
    count += batch->Count();
  }
  for (size_t i = 0; i < 4; ++i) {
    rep[kCountOffset + i] = static_cast<char>((count >> (8 * i)) & 0xff);
  }
  return std::make_unique<rocksdb::WriteBatch>(std::move(rep));
}

}  // namespace

CommitQueue::CommitQueue(Apply apply, Observe observe)
    : apply_(std::move(apply)),
      observe_(std::move(observe)),
      thread_([this] { Run(); }) {}

CommitQueue::~CommitQueue() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

void CommitQueue::Enqueue(std::unique_ptr<rocksdb::WriteBatch> batch, bool sync,
                          Callback done) {
  absl::MutexLock lock(&mutex_);
  queue_.push_back(Entry{std::move(batch), sync, std::move(done)});
}

CommitQueue::Counts CommitQueue::counts() const {
  absl::MutexLock lock(&mutex_);
  return counts_;
}

void CommitQueue::Run() {
  pthread_setname_np(pthread_self(), "tt-commit");
  std::vector<Entry> group;
  std::vector<rocksdb::WriteBatch*> batches;
  while (true) {
    group.clear();
    {
      absl::MutexLock lock(&mutex_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
        return stopping_ || !queue_.empty();
      };
      mutex_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping and drained
      size_t bytes = 0;
      while (!queue_.empty() && group.size() < kMaxGroupBatches &&
             (group.empty() ||
              bytes + queue_.front().batch->GetDataSize() <= kMaxGroupBytes)) {
        bytes += queue_.front().batch->GetDataSize();
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      counts_.writes += group.size();
      ++counts_.groups;
    }
    bool sync = false;
    batches.clear();
    for (const Entry& entry : group) {
      sync = sync || entry.sync;
      batches.push_back(entry.batch.get());
    }
    absl::Status status;
    const auto started = std::chrono::steady_clock::now();
    if (group.size() == 1) {
      status = apply_(group.front().batch.get(), sync);
    } else {
      std::unique_ptr<rocksdb::WriteBatch> merged = Merge(batches);
      status = apply_(merged.get(), sync);
    }
    if (observe_ != nullptr) {
      observe_(group.size(), std::chrono::duration<double>(
                                 std::chrono::steady_clock::now() - started)
                                 .count());
    }
    for (Entry& entry : group) std::move(entry.done)(status);
  }
}

}  // namespace tasktrail::store
