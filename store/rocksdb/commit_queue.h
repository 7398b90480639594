// CommitQueue: group commit without blocked threads. Callers queue a
// prepared WriteBatch with a callback and return at once. One thread takes
// everything queued since its previous write, applies it as a single
// WriteBatch (one WAL record, one fsync), and then reports that write's
// status to each caller's callback.
//
// RocksDB groups concurrent writers on its own, but every follower in its
// write group is a thread parked until the leader's fsync returns. On a small
// machine those parked threads and their wake-ups cost as much CPU as the
// write itself; here nobody waits for the disk but the queue's thread.
//
// Atomicity: each queued batch is applied whole or not at all, and batches of
// one group succeed or fail together (they are one WriteBatch).
// Order: batches are applied in the order Enqueue was called.
//
// The queue's thread is named "tt-commit" (as `top -H` and `perf` show it).
//
// Thread safety: Enqueue may be called from any thread, including from a
// callback. Callbacks run on the queue's thread, one at a time, in queue
// order; a callback must not wait for a later queued write (that write waits
// for the callback to return).
#ifndef TASKTRAIL_STORE_COMMIT_QUEUE_H_
#define TASKTRAIL_STORE_COMMIT_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace rocksdb {
class WriteBatch;
}  // namespace rocksdb

namespace tasktrail::store {

class CommitQueue {
 public:
  // Called with the status of the write that contained the caller's batch.
  using Callback = absl::AnyInvocable<void(absl::Status)>;
  // Writes one batch (the merge of a group) to the database, with an fsync
  // when `sync`. Runs on the queue's thread only.
  using Apply =
      absl::AnyInvocable<absl::Status(rocksdb::WriteBatch* batch, bool sync)>;

  // Bounds on one group, so that a burst cannot build one huge write.
  static constexpr size_t kMaxGroupBatches = 512;
  static constexpr size_t kMaxGroupBytes = 4 << 20;

  // Called after each group is applied (whatever its status) with the
  // number of batches it held and the seconds the Apply took (the write and
  // its fsync). Runs on the queue's thread; must not block.
  using Observe = absl::AnyInvocable<void(size_t batches, double seconds)>;

  // `observe` may be empty.
  explicit CommitQueue(Apply apply, Observe observe = nullptr);

  // Applies everything already queued (callbacks included), then joins the
  // thread. REQUIRES: no Enqueue concurrent with or after destruction.
  ~CommitQueue();

  CommitQueue(const CommitQueue&) = delete;
  CommitQueue& operator=(const CommitQueue&) = delete;

  // Queues `batch`; `done` is called exactly once, from the queue's thread,
  // after the batch was written (OK) or failed to be (the Apply's error).
  // The group is synced when any of its batches asked for `sync`.
  void Enqueue(std::unique_ptr<rocksdb::WriteBatch> batch, bool sync,
               Callback done);

  // Batches (writes) applied so far and the groups they were applied in,
  // one fsync each: how well writes are grouped (tasktraild logs them when
  // it stops).
  struct Counts {
    uint64_t writes = 0;
    uint64_t groups = 0;
  };
  Counts counts() const;

 private:
  struct Entry {
    std::unique_ptr<rocksdb::WriteBatch> batch;
    bool sync = false;
    Callback done;
  };

  void Run();

  Apply apply_;
  Observe observe_;
  mutable absl::Mutex mutex_;
  std::deque<Entry> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  Counts counts_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;
};

}  // namespace tasktrail::store

#endif  // TASKTRAIL_STORE_COMMIT_QUEUE_H_
