#include "store/postgres/pg_pool.h"

#include <memory>
#include <utility>

namespace tasktrail::store::postgres {

absl::StatusOr<ConnectionPool::Lease> ConnectionPool::Acquire(bool fresh) {
  mutex_.LockWhen(absl::Condition(
      +[](ConnectionPool* pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->mutex_) {
        return !pool->idle_.empty() || pool->open_ < pool->size_;
      },
      this));
  if (fresh && !idle_.empty() && open_ >= size_) {
    // Make room for a new connection: the idle ones may all be stale.
    idle_.erase(idle_.begin());
    --open_;
  }
  if (!fresh && !idle_.empty()) {
    std::unique_ptr<PgConnection> connection = std::move(idle_.back());
    idle_.pop_back();
    mutex_.Unlock();
    return Lease(this, std::move(connection), /*reused=*/true);
  }
  ++open_;
  mutex_.Unlock();
  absl::StatusOr<std::unique_ptr<PgConnection>> connection =
      PgConnection::Connect(conninfo_, prepare_statements_);
  if (!connection.ok()) {
    absl::MutexLock lock(&mutex_);
    --open_;
    return connection.status();
  }
  return Lease(this, *std::move(connection), /*reused=*/false);
}

absl::StatusOr<PgRows> ConnectionPool::Query(absl::string_view sql,
                                             const PgParams& params,
                                             absl::string_view what,
                                             PgPlanning planning) {
  absl::StatusOr<Lease> lease = Acquire();
  if (!lease.ok()) return NamingTheWork(what, lease.status());
  absl::StatusOr<PgRows> rows =
      lease->connection().Query(sql, params, what, planning);
  if (rows.ok() || lease->connection().connected()) return rows;
  lease->Discard();
  if (!lease->reused()) return rows;
  lease = Acquire(/*fresh=*/true);
  if (!lease.ok()) return NamingTheWork(what, lease.status());
  rows = lease->connection().Query(sql, params, what, planning);
  if (!rows.ok() && !lease->connection().connected()) lease->Discard();
  return rows;
}

void ConnectionPool::Release(std::unique_ptr<PgConnection> connection,
                             bool discard) {
  const bool keep = !discard && connection->connected();
  if (!keep) connection.reset();  // closed outside the lock
  absl::MutexLock lock(&mutex_);
  if (keep) {
    idle_.push_back(std::move(connection));
  } else {
    --open_;
  }
}

}  // namespace tasktrail::store::postgres
