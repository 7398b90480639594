// PgWrite: one change prepared by PgTaskStore (pg_task_store.h: Prepare,
// PrepareRaw, PreparePurge) and applied by a Committer (pg_committer.h): the
// statements of one transaction and what to announce once it committed.
// The statements themselves are built with the store.
#ifndef TASKTRAIL_STORE_POSTGRES_PG_WRITE_H_
#define TASKTRAIL_STORE_POSTGRES_PG_WRITE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "store/postgres/pg_connection.h"
#include "store/task_store.h"

namespace tasktrail::store::postgres {

// One statement of a write. When `conflict` is set, changing no row means
// the write's premise no longer holds: the write is ABORTED with it.
struct Statement {
  std::string sql;
  PgParams params;
  std::string conflict;
};

// Each stats counter is the sum of up to this many rows (schema version
// 3): a transaction adds to one of them, so that concurrent writes of one
// model seldom wait for each other's row locks, held until their commits.
constexpr int kCounterShards = 16;

// The shard of a new write's counters: successive writes of this process
// take successive shards, starting at a random one (so that replicas do not
// walk in step). Thread-safe.
int NextCounterShard();

struct PgWrite final : PreparedWrite::Body {
  // The row of each counter this write adds to (all of its counters take
  // the same shard, so two writes never lock shards in opposite orders).
  int counter_shard = NextCounterShard();
  // The task written (its writes keep their order); empty for raw writes.
  std::string task_id;
  // False: committed with synchronous_commit off (audit, kBuffered).
  bool synchronous = true;
  std::vector<Statement> statements;
  // Payloads sent on kNotifyChannel (pg_notify.h) once the transaction
  // committed (by the Notifier, not in the transaction).
  std::vector<std::string> notifications;
  // Set when a raw mutation cannot be applied here; Commit reports it.
  absl::Status invalid;
};

}  // namespace tasktrail::store::postgres

#endif  // TASKTRAIL_STORE_POSTGRES_PG_WRITE_H_
