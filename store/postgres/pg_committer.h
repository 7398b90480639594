// Committer: one commit thread of a PgTaskStore (pg_task_store.h), with
// group commit. It takes the writes (pg_write.h) queued to it in order, up
// to `max_batch_writes` at a time, and commits them in one transaction on
// a connection of the store's pool, so that one WAL flush serves them all;
// each write's statements go out in one flight (libpq pipeline mode).
//
// Each write of a batch still applies whole or not at all, and alone:
//   - every write runs inside a savepoint of its own (when the batch has
//     more than one). A write that fails (a conflict: a statement with
//     conflict text changed no row; or an error: a unique violation,
//     serialization failure or deadlock are ABORTED, others as the
//     database reported them) is rolled back to its savepoint and answered
//     with its failure; the writes after it are sent again and the batch
//     goes on;
//   - the counter additions of the writes left are merged into one
//     statement after them (CounterAddsStatement), on one shard per batch;
//     if it fails (a deadlock, say) the whole batch is rolled back and each
//     of its writes answered with that failure (ABORTED: re-read, retry);
//   - the batch then commits: every write left answers OK once COMMIT is
//     done, the failure of COMMIT otherwise (UNAVAILABLE when its answer
//     is lost: the writes may or may not have applied).
// A connection lost before COMMIT was sent applies nothing: every write of
// the batch answers UNAVAILABLE. A pooled connection found closed by the
// server before the batch is sent (a restart since it was last used) is
// replaced first. A statement whose prepared copy on the server turns out
// stale (IsStalePreparedStatement: it did not run, and nothing of the batch
// committed) voids the transaction: the batch is applied once more, from
// the start, on a new connection; a second stale statement answers the
// writes left with UNAVAILABLE.
// `done` of each write is called exactly once, after its batch ended, in
// queue order; the notifications of the writes committed go to the
// Notifier then.
//
// Durability: a batch holds writes of one kind, the longest run at the head
// of the queue with the same PgWrite::synchronous; a batch of
// non-synchronous writes commits with synchronous_commit off.
//
// Thread safety: Enqueue and the counters may be called from any thread.
#ifndef TASKTRAIL_STORE_POSTGRES_PG_COMMITTER_H_
#define TASKTRAIL_STORE_POSTGRES_PG_COMMITTER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "store/postgres/pg_notify.h"
#include "store/postgres/pg_pool.h"
#include "store/postgres/pg_write.h"

namespace tasktrail::store::postgres {

class Committer {
 public:
  // REQUIRES: max_batch_writes >= 1.
  Committer(ConnectionPool* pool, Notifier* notifier, int max_batch_writes);

  // Applies what is queued, then stops.
  ~Committer();
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;

  // Queues `write`; `done` is called once with its result (its message
  // prefixed by `what` when it failed), from the commit thread.
  void Enqueue(std::unique_ptr<PgWrite> write, std::string what,
               absl::AnyInvocable<void(absl::Status)> done);

  // The committer whose thread calls this, or null on any other thread.
  static Committer* Current();

  // Applies `write` on the calling thread, which must be a committer's
  // (Current() not null), as a batch of its own, and calls `done` there:
  // for a write made by a completion that runs on a commit thread (the
  // audit entry of an audited write waits for its write), which, queued to
  // a committer, could wait for itself or for a committer waiting for it.
  void ApplyNow(std::unique_ptr<PgWrite> write, std::string what,
                absl::AnyInvocable<void(absl::Status)> done);

  // Transactions committed, and the writes they committed, so far.
  int64_t transactions() const {
    return transactions_.load(std::memory_order_relaxed);
  }
  int64_t writes() const { return writes_.load(std::memory_order_relaxed); }

 private:
  struct Job {
    std::unique_ptr<PgWrite> write;
    std::string what;
    absl::AnyInvocable<void(absl::Status)> done;
  };
  void Run();

  // Applies `batch`, hands the notifications of the writes committed to the
  // Notifier and calls each write's `done`, in order.
  void Process(std::vector<Job> batch);
  // Waits for work; returns the next batch, or nothing once stopping and
  // drained.
  std::vector<Job> TakeBatch();
  // Applies `batch` and returns the result of each write.
  std::vector<absl::Status> Apply(absl::Span<const Job> batch);
  // One transaction of the writes of `batch` whose `results` are OK, on the
  // connection of `lease` (discarded when its state is unknown); sets the
  // results of those that fail, all of them when the transaction does
  // (every one left to a stale prepared statement's failure, when that
  // voided it).
  void Transact(ConnectionPool::Lease& lease, absl::Span<const Job> batch,
                std::vector<absl::Status>& results);

  ConnectionPool* const pool_;
  Notifier* const notifier_;
  const size_t max_batch_writes_;
  std::atomic<int64_t> transactions_{0};
  std::atomic<int64_t> writes_{0};
  absl::Mutex mutex_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  inline static thread_local Committer* current_ = nullptr;
  // Last: started once the members above exist.
  std::thread thread_;
};

}  // namespace tasktrail::store::postgres

#endif  // TASKTRAIL_STORE_POSTGRES_PG_COMMITTER_H_
