// ConnectionPool: the connections of one PgTaskStore (pg_task_store.h), at
// most `size`, opened when needed and shared by its reads, its commit
// threads (pg_committer.h) and its notifier (pg_notify.h). A connection
// found lost after a call is dropped, so that the next call connects anew:
// the pool recovers by itself when the database returns.
//
// Thread safety: all methods are safe to call concurrently; a Lease is used
// by one thread at a time.
#ifndef TASKTRAIL_STORE_POSTGRES_PG_POOL_H_
#define TASKTRAIL_STORE_POSTGRES_PG_POOL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "store/postgres/pg_connection.h"

namespace tasktrail::store::postgres {

class ConnectionPool {
 public:
  // `prepare_statements`: as PgConnection::Connect's, for every connection.
  ConnectionPool(std::string conninfo, int size, bool prepare_statements)
      : conninfo_(std::move(conninfo)),
        size_(size),
        prepare_statements_(prepare_statements) {}

  // A connection, back in the pool when the lease ends (unless lost or
  // discarded).
  class Lease {
   public:
    Lease(ConnectionPool* pool, std::unique_ptr<PgConnection> connection,
          bool reused)
        : pool_(pool), connection_(std::move(connection)), reused_(reused) {}
    Lease(Lease&& other) noexcept
        : pool_(other.pool_),
          connection_(std::move(other.connection_)),
          reused_(other.reused_),
          discard_(other.discard_) {}
    Lease& operator=(Lease&& other) noexcept {
      if (this != &other) {
        ReturnConnection();
        pool_ = other.pool_;
        connection_ = std::move(other.connection_);
        reused_ = other.reused_;
        discard_ = other.discard_;
      }
      return *this;
    }
    ~Lease() { ReturnConnection(); }

    PgConnection& connection() { return *connection_; }
    // True when the connection served an earlier call (it may have been
    // closed by the server since).
    bool reused() const { return reused_; }
    // Closes the connection now instead of returning it (its state is
    // unknown), which frees its place in the pool for the next Acquire.
    // connection() must not be called afterwards.
    void Discard() {
      discard_ = true;
      ReturnConnection();
    }

   private:
    void ReturnConnection() {
      if (connection_ != nullptr) {
        pool_->Release(std::move(connection_), discard_);
      }
    }

    ConnectionPool* pool_;
    std::unique_ptr<PgConnection> connection_;
    bool reused_;
    bool discard_ = false;
  };

  // Waits for a free connection, or opens one; UNAVAILABLE when it cannot.
  // `fresh`: a new connection, closing an idle one to make room when the
  // pool is full (the idle ones may all be stale).
  absl::StatusOr<Lease> Acquire(bool fresh = false);

  // Runs one statement outside any transaction. A connection from the pool
  // that turns out lost (the server may have restarted since it was last
  // used), or whose prepared statement turns out stale (the statement did
  // not run; IsStalePreparedStatement), is replaced once and the statement
  // sent again.
  absl::StatusOr<PgRows> Query(absl::string_view sql, const PgParams& params,
                               absl::string_view what,
                               PgPlanning planning = PgPlanning::kPrepared);

 private:
  void Release(std::unique_ptr<PgConnection> connection, bool discard);

  const std::string conninfo_;
  const int size_;
  const bool prepare_statements_;
  absl::Mutex mutex_;
  std::vector<std::unique_ptr<PgConnection>> idle_ ABSL_GUARDED_BY(mutex_);
  int open_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace tasktrail::store::postgres

#endif  // TASKTRAIL_STORE_POSTGRES_PG_POOL_H_
