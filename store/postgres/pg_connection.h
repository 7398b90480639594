// PgConnection: one libpq connection to PostgreSQL, with the database's
// errors translated into absl::Status codes the service can act on. The
// PostgreSQL store is built on it; nothing above the store sees libpq.
//
// Error codes (from the SQLSTATE the server sends, see StatusFromSqlState):
//   ABORTED         serialization failure or deadlock (40001, 40P01): the
//                   transaction was rolled back and may be retried as a whole
//   ALREADY_EXISTS  a unique constraint refused a row (23505)
//   FAILED_PRECONDITION  another integrity constraint refused it (class 23)
//   UNAVAILABLE     the connection is lost, the server is shutting down,
//                   starting or out of connections (classes 08 and 53,
//                   57P01-57P03), or there was no answer at all; also a
//                   statement run as a prepared statement whose copy on the
//                   server is gone or no longer fits its tables (26000, or
//                   0A000 "cached plan must not change result type";
//                   IsStalePreparedStatement): it did not run
//   INTERNAL        anything else (a bug in a statement, say)
// Every message names what was being done and carries the SQLSTATE.
//
// Thread safety: a connection is used by one thread at a time (libpq's
// rule); different connections may be used concurrently.
#ifndef TASKTRAIL_STORE_POSTGRES_PG_CONNECTION_H_
#define TASKTRAIL_STORE_POSTGRES_PG_CONNECTION_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"

struct pg_conn;

namespace tasktrail::store::postgres {

// The status code for a SQLSTATE (five characters; "" when the server sent
// none), as listed above.
absl::StatusCode StatusCodeFromSqlState(absl::string_view sql_state);

// True for the errors a transaction is retried after (ABORTED).
bool IsRetryableTransactionError(const absl::Status& status);

// True for the failure of a statement RunPipeline ran as a prepared
// statement that the server no longer holds (SQLSTATE 26000, such as after a
// pooler or DEALLOCATE lost it) or can no longer run as prepared (0A000
// "cached plan must not change result type": a column under it changed
// type). The statement did not run, so the transaction it was in cannot
// have committed; its connection is no longer connected() and a new one
// prepares the statement afresh. UNAVAILABLE; the mark does not survive
// NamingTheWork.
bool IsStalePreparedStatement(const absl::Status& status);

// `status` with its message prefixed by `what` ("what: message"); OK stays
// OK.
absl::Status NamingTheWork(absl::string_view what, const absl::Status& status);

// The parameters of a statement ($1, $2, ...) in PostgreSQL's text form;
// nullopt is NULL.
using PgParams = std::vector<absl::optional<std::string>>;

// The rows a statement returned, each value as PostgreSQL's text form
// (nullopt for NULL), and the rows it changed.
struct PgRows {
  std::vector<std::vector<absl::optional<std::string>>> rows;
  int64_t affected = 0;
};

// How a statement with parameters is planned on a connection that prepares
// statements (PgConnection::Connect).
enum class PgPlanning {
  // Prepared once: PostgreSQL may then keep one generic plan for every call.
  kPrepared,
  // Unnamed, planned for each call's values: for a statement whose best
  // plan depends on them, such as a paged scan with an optional bound
  // ("$1 IS NULL OR task_id > $1 ... LIMIT"), whose generic plan cannot use
  // the bound as an index range and reads every row before it.
  kEachCall,
};

// One statement of a pipeline (PgConnection::RunPipeline): its SQL and its
// parameters, both borrowed for the call, and how it is planned.
struct PgPipelineStatement {
  absl::string_view sql;
  const PgParams* params = nullptr;  // nullptr: none
  PgPlanning planning = PgPlanning::kPrepared;
};

// A notification a LISTENing connection received (NOTIFY, pg_notify).
struct PgNotification {
  std::string channel;
  std::string payload;
};

class PgConnection {
 public:
  // Connects with `conninfo`: a libpq URI (postgresql://...) or key=value
  // string; a password may come from PGPASSWORD or ~/.pgpass, as libpq reads
  // them. UNAVAILABLE with the server's or libpq's reason when it cannot.
  //
  // `prepare_statements`: Query and RunPipeline prepare each distinct
  // statement with at least one parameter once on this connection (a named
  // prepared statement, protocol level) and then only bind and execute it, so
  // that the server parses it once per connection instead of once per call and
  // may keep a generic plan (its plan cache decides); up to
  // kMaxPreparedStatements of them, later ones run unprepared.
  // Off: every statement is sent unnamed (for a pooler that does not keep
  // prepared statements, such as PgBouncer before 1.21 in transaction
  // mode).
  static absl::StatusOr<std::unique_ptr<PgConnection>> Connect(
      const std::string& conninfo, bool prepare_statements = false);

  // The most statements one connection prepares (prepare_statements).
  static constexpr size_t kMaxPreparedStatements = 256;

  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs `sql`, one or more statements without parameters (in one implicit
  // transaction unless they contain their own BEGIN/COMMIT). `what` names
  // the work in an error.
  absl::Status Execute(absl::string_view sql, absl::string_view what);

  // Runs one statement with text parameters ($1, $2, ...; nullopt is NULL)
  // and returns its rows: RunPipeline with that one statement, whose rows
  // may be many (nothing is left to send while they are read).
  absl::StatusOr<PgRows> Query(absl::string_view sql, const PgParams& params,
                               absl::string_view what,
                               PgPlanning planning = PgPlanning::kPrepared);

  // Sends `statements` in one flight (libpq pipeline mode), then a sync
  // point, and returns the result of each, in order: its rows, or its error
  // as Query's; CANCELLED for a statement the server skipped because an
  // earlier one of the flight failed. Inside an open transaction block the
  // statements stay in it (a failure leaves the block aborted until
  // ROLLBACK or ROLLBACK TO SAVEPOINT); outside one, those up to the sync
  // form one implicit transaction. UNAVAILABLE, without results, when the
  // connection is lost before every result arrived (the statements may or
  // may not have run); the connection is then no longer connected(). A
  // statement that fails because the server's copy of its prepared
  // statement is stale (IsStalePreparedStatement) fails the flight as any
  // error does, and leaves the connection no longer connected(): its
  // prepared statements cannot be trusted.
  // REQUIRES: with more than one statement, the results are small (writes,
  // or a few rows): they are read once every statement is sent, so large
  // ones could stall both ends.
  absl::StatusOr<std::vector<absl::StatusOr<PgRows>>> RunPipeline(
      absl::Span<const PgPipelineStatement> statements, absl::string_view what);

  // Waits up to `timeout` for notifications on the channels this
  // connection LISTENs to and returns those received (none when the time
  // passed first). UNAVAILABLE once the connection is lost.
  absl::StatusOr<std::vector<PgNotification>> AwaitNotifications(
      absl::Duration timeout);

  // Reads, without waiting, what the server sent while the connection was
  // idle; false when that shows the connection closed (the server
  // restarted or ended it since it was last used).
  bool CheckAlive();

  // False once the connection is known to be lost, or left in a state it
  // cannot be used in (a pipeline cut short); a new one is needed.
  bool connected() const;

 private:
  PgConnection(pg_conn* connection, bool prepare_statements)
      : connection_(connection), prepare_statements_(prepare_statements) {}

  // How RunPipeline sent one statement.
  struct SentStatement {
    // Sent after a Parse that prepares it under this name (its result comes
    // first); empty when it was prepared before, or is not prepared.
    std::string prepared_as;
    // Executed by the name of a prepared statement (new or not).
    bool by_name = false;
  };

  // The name `sql` is prepared under on this connection, or null.
  const std::string* PreparedName(absl::string_view sql) const;
  // A name never used on this connection for the next statement to
  // prepare, or nullopt when this connection prepares no more (off, or
  // kMaxPreparedStatements reached counting `pending` not yet confirmed).
  absl::optional<std::string> NextPreparedName(size_t pending);

  // Reads the results of RunPipeline's `sent` statements (and the Parse
  // before each that has one) and its sync point; UNAVAILABLE when they do
  // not all arrive. Records the statements prepared; marks the connection
  // broken when one executed by name turns out stale.
  absl::StatusOr<std::vector<absl::StatusOr<PgRows>>> ReadPipelineResults(
      absl::Span<const PgPipelineStatement> statements,
      absl::Span<const SentStatement> sent, absl::string_view what);

  pg_conn* connection_;
  const bool prepare_statements_;
  // SQL text -> the name it is prepared under on this connection.
  absl::flat_hash_map<std::string, std::string> prepared_;
  // Names handed out so far, prepared or not.
  uint64_t names_used_ = 0;
  // Set when a pipeline could not be completed, or a statement executed by
  // name turned out stale on the server.
  bool broken_ = false;
};

}  // namespace tasktrail::store::postgres

#endif  // TASKTRAIL_STORE_POSTGRES_PG_CONNECTION_H_
