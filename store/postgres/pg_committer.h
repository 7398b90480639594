// Committer: one commit thread of a PgTaskStore (pg_task_store.h). It
// applies its queue of writes (pg_write.h) in order, one transaction each,
// on a connection of the store's pool, calls each write's `done` with the
// result, and hands the notifications of each write committed to the
// Notifier (pg_notify.h).
//
// Thread safety: Enqueue may be called from any thread.
#ifndef TASKTRAIL_STORE_POSTGRES_PG_COMMITTER_H_
#define TASKTRAIL_STORE_POSTGRES_PG_COMMITTER_H_

#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "store/postgres/pg_notify.h"
#include "store/postgres/pg_pool.h"
#include "store/postgres/pg_write.h"

namespace tasktrail::store::postgres {

class Committer {
 public:
  Committer(ConnectionPool* pool, Notifier* notifier);

  // Applies what is queued, then stops.
  ~Committer();
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;

  // Queues `write`; `done` is called once with its result (its message
  // prefixed by `what` when it failed), from the commit thread.
  void Enqueue(std::unique_ptr<PgWrite> write, std::string what,
               absl::AnyInvocable<void(absl::Status)> done);

 private:
  struct Job {
    std::unique_ptr<PgWrite> write;
    std::string what;
    absl::AnyInvocable<void(absl::Status)> done;
  };

  void Run();
  // One transaction. A reused connection that turns out lost at BEGIN
  // (nothing sent yet) is replaced once.
  absl::Status Apply(const PgWrite& write);

  ConnectionPool* const pool_;
  Notifier* const notifier_;
  absl::Mutex mutex_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  // Last: started once the members above exist.
  std::thread thread_;
};

}  // namespace tasktrail::store::postgres

#endif  // TASKTRAIL_STORE_POSTGRES_PG_COMMITTER_H_
