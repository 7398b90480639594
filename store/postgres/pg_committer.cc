#include "store/postgres/pg_committer.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace tasktrail::store::postgres {

Committer::Committer(ConnectionPool* pool, Notifier* notifier)
    : pool_(pool), notifier_(notifier), thread_([this] { Run(); }) {}

Committer::~Committer() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

void Committer::Enqueue(std::unique_ptr<PgWrite> write, std::string what,
                        absl::AnyInvocable<void(absl::Status)> done) {
  absl::MutexLock lock(&mutex_);
  queue_.push_back({std::move(write), std::move(what), std::move(done)});
}

void Committer::Run() {
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(
          +[](Committer* committer)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(committer->mutex_) {
                 return committer->stopping_ || !committer->queue_.empty();
               },
          this));
      if (queue_.empty()) return;  // stopping, and drained
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    absl::Status status = Apply(*job.write);
    if (status.ok() && !job.write->notifications.empty()) {
      notifier_->Enqueue(std::move(job.write->notifications));
    }
    std::move(job.done)(NamingTheWork(job.what, status));
  }
}

absl::Status Committer::Apply(const PgWrite& write) {
  if (!write.invalid.ok()) return write.invalid;
  const absl::string_view begin =
      write.synchronous ? "BEGIN"
                        : "BEGIN; SET LOCAL synchronous_commit TO OFF";
  absl::StatusOr<ConnectionPool::Lease> lease = pool_->Acquire();
  if (!lease.ok()) return lease.status();
  absl::Status status =
      lease->connection().Execute(begin, "starting a transaction");
  if (!status.ok() && lease->reused() && !lease->connection().connected()) {
    lease->Discard();
    lease = pool_->Acquire(/*fresh=*/true);
    if (!lease.ok()) return lease.status();
    status = lease->connection().Execute(begin, "starting a transaction");
  }
  if (!status.ok()) {
    lease->Discard();
    return status;
  }
  PgConnection& connection = lease->connection();
  for (const Statement& statement : write.statements) {
    absl::StatusOr<PgRows> rows =
        connection.Query(statement.sql, statement.params, "writing");
    if (rows.ok() && rows->affected == 0 && !statement.conflict.empty()) {
      rows = absl::AbortedError(
          absl::StrCat(statement.conflict, "; re-read and retry"));
    }
    if (!rows.ok()) {
      if (!connection.Execute("ROLLBACK", "rolling back").ok()) {
        lease->Discard();
      }
      return rows.status().code() == absl::StatusCode::kAlreadyExists
                 ? absl::AbortedError(rows.status().message())
                 : rows.status();
    }
  }
  status = connection.Execute("COMMIT", "committing");
  if (!status.ok()) lease->Discard();
  return status;
}

}  // namespace tasktrail::store::postgres
