// PgWrite: one change prepared by PgTaskStore (pg_task_store.h: Prepare,
// PrepareRaw, PreparePurge) and applied by a Committer (pg_committer.h): the
// statements of one write, the counters it adds to, and what to announce
// once it committed. The statements are built with the store; the counter
// additions of the writes committed together are merged into one statement
// (CounterAddsStatement) by the Committer.
#ifndef TASKTRAIL_STORE_POSTGRES_PG_WRITE_H_
#define TASKTRAIL_STORE_POSTGRES_PG_WRITE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
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

// The shard of a new transaction's counters: successive calls of this
// process take successive shards, starting at a random one (so that
// replicas do not walk in step). Thread-safe.
int NextCounterShard();

// An addition to one stats counter.
struct CounterAdd {
  int64_t unix_minute = 0;
  std::string model;
  std::string name;
  int64_t delta = 0;
};

// The statement that adds `adds` to their counters' rows of `shard`: one
// row per counter, the deltas of one counter summed, in the order of
// (minute, model, name), so that transactions adding to the same rows lock
// them in the same order. REQUIRES: `adds` is not empty.
Statement CounterAddsStatement(absl::Span<const CounterAdd> adds, int shard);

struct PgWrite final : PreparedWrite::Body {
  // The task written (its writes keep their order); empty for raw writes.
  std::string task_id;
  // False: committed with synchronous_commit off (audit, kBuffered).
  bool synchronous = true;
  std::vector<Statement> statements;
  // Counter additions applied after `statements`, in the same transaction,
  // merged with those of the writes committed with it. Additions commute
  // with everything but a set or delete of the same counter: a write that
  // sets or deletes a counter keeps its additions among `statements`, in
  // order (AddCounter).
  std::vector<CounterAdd> counter_adds;
  // Payloads sent on kNotifyChannel (pg_notify.h) once the transaction
  // committed (by the Notifier, not in the transaction).
  std::vector<std::string> notifications;
  // Set when a raw mutation cannot be applied here; Commit reports it.
  absl::Status invalid;

  // Adds `add` to counter_adds, or as a statement when the write sets or
  // deletes a counter (KeepCountersInOrder).
  void AddCounter(CounterAdd add);
  // Called before a statement that sets or deletes a counter: from then on
  // the write's additions are statements in order, the earlier ones first.
  void KeepCountersInOrder();

 private:
  bool counters_in_order_ = false;
  // The shard of the additions kept in order: one for all of them, so that
  // two writes never lock shards in opposite orders.
  int in_order_shard_ = 0;
};

}  // namespace tasktrail::store::postgres

#endif  // TASKTRAIL_STORE_POSTGRES_PG_WRITE_H_
