// The PostgreSQL store's foundations against a real, throwaway PostgreSQL
// cluster (tests/support/postgres_cluster.h): the connection's error codes
// for what a replica meets (a refused row, a serialization failure, a lost
// server), its prepared statements and what happens when the server's copy
// of one goes stale, the array values it sends, and the schema migrations
// replicas run at start-up (once, even when they start together; never over
// a newer schema; whole or not at all).
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "store/postgres/pg_committer.h"
#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_notify.h"
#include "store/postgres/pg_pool.h"
#include "store/postgres/pg_values.h"
#include "store/postgres/pg_write.h"
#include "store/postgres/schema.h"
#include "tests/support/postgres_cluster.h"

namespace tasktrail::store::postgres {
namespace {

using ::tasktrail::testing::ClusterUse;
using ::tasktrail::testing::PostgresCluster;

class PostgresTest : public ::testing::Test {
 protected:
  // Each test gets a database of its own, on the cluster Use() says.
  void SetUp() override {
    absl::StatusOr<testing::TestDatabase> database =
        PostgresCluster::FreshDatabase("test", Use());
    ASSERT_TRUE(database.ok()) << database.status();
    cluster_ = database->cluster;
    database_ = database->name;
    own_cluster_ = database->own_cluster;
  }

  virtual ClusterUse Use() const { return ClusterUse::kShared; }

  std::unique_ptr<PgConnection> Connect(bool prepare_statements = false) {
    absl::StatusOr<std::unique_ptr<PgConnection>> connection =
        PgConnection::Connect(cluster_->ConnInfo(database_),
                              prepare_statements);
    EXPECT_TRUE(connection.ok()) << connection.status().message();
    return connection.ok() ? std::move(*connection) : nullptr;
  }

  // An unprepared connection, after it made table t (id int PRIMARY KEY).
  std::unique_ptr<PgConnection> ConnectAndMakeTableT() {
    std::unique_ptr<PgConnection> connection = Connect();
    if (connection == nullptr) return nullptr;
    const absl::Status made =
        connection->Execute("CREATE TABLE t (id int PRIMARY KEY)", "making t");
    EXPECT_TRUE(made.ok()) << made;
    return made.ok() ? std::move(connection) : nullptr;
  }

  // The single value `sql` returns, or the error's message.
  static std::string Value(PgConnection& connection, const std::string& sql) {
    absl::StatusOr<PgRows> rows = connection.Query(sql, {}, "test query");
    if (!rows.ok()) return std::string(rows.status().message());
    if (rows->rows.empty() || rows->rows[0].empty()) return "(no rows)";
    return rows->rows[0][0].value_or("(null)");
  }

  PostgresCluster* cluster_ = nullptr;
  std::string database_;
  std::shared_ptr<PostgresCluster> own_cluster_;
};

// Tests that stop the server, on a cluster of their own.
class PostgresOutageTest : public PostgresTest {
 protected:
  ClusterUse Use() const override { return ClusterUse::kOwn; }
};

TEST(SqlStateTest, EachClassMapsToTheCodeTheServiceActsOn) {
  struct Row {
    const char* sql_state;
    absl::StatusCode code;
  };
  const Row rows[] = {
      {"40001", absl::StatusCode::kAborted},  // serialization_failure
      {"40P01", absl::StatusCode::kAborted},  // deadlock_detected
      {"23505", absl::StatusCode::kAlreadyExists},
      {"23503", absl::StatusCode::kFailedPrecondition},  // foreign key
      {"23514", absl::StatusCode::kFailedPrecondition},  // check
      {"08006", absl::StatusCode::kUnavailable},         // connection_failure
      {"53300", absl::StatusCode::kUnavailable},         // too_many_connections
      {"57P01", absl::StatusCode::kUnavailable},         // admin_shutdown
      {"57P03", absl::StatusCode::kUnavailable},         // cannot_connect_now
      {"", absl::StatusCode::kUnavailable},
      {"42601", absl::StatusCode::kInternal},  // syntax_error
      {"42P01", absl::StatusCode::kInternal},  // undefined_table
      {"57014", absl::StatusCode::kInternal},  // query_canceled
  };
  for (const Row& row : rows) {
    EXPECT_EQ(StatusCodeFromSqlState(row.sql_state), row.code) << row.sql_state;
  }
  EXPECT_TRUE(IsRetryableTransactionError(absl::AbortedError("x")));
  EXPECT_FALSE(IsRetryableTransactionError(absl::UnavailableError("x")));
}

TEST_F(PostgresTest, ConnectionAnswersRowsAndNamesWhatFailed) {
  std::unique_ptr<PgConnection> connection = Connect();
  ASSERT_NE(connection, nullptr);
  ASSERT_TRUE(connection
                  ->Execute("CREATE TABLE t (id text PRIMARY KEY, note text)",
                            "making t")
                  .ok());
  absl::StatusOr<PgRows> inserted =
      connection->Query("INSERT INTO t VALUES ($1, $2), ($3, $4)",
                        {std::string("a"), std::string("it's \"quoted\""),
                         std::string("b"), absl::nullopt},
                        "inserting");
  ASSERT_TRUE(inserted.ok()) << inserted.status().message();
  EXPECT_EQ(inserted->affected, 2);
  absl::StatusOr<PgRows> rows =
      connection->Query("SELECT id, note FROM t ORDER BY id", {}, "reading");
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_EQ(rows->rows.size(), 2u);
  EXPECT_EQ(rows->rows[0][1], "it's \"quoted\"");
  EXPECT_EQ(rows->rows[1][1], absl::nullopt);

  absl::StatusOr<PgRows> again = connection->Query(
      "INSERT INTO t VALUES ($1, NULL)", {std::string("a")}, "inserting a");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::StartsWith(again.status().message(), "inserting a: "))
      << again.status().message();
  EXPECT_TRUE(absl::StrContains(again.status().message(), "SQLSTATE 23505"))
      << again.status().message();

  absl::Status bad = connection->Execute("SELEC 1", "a typo");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(bad.message(), "42601")) << bad.message();
  EXPECT_TRUE(connection->connected());
}

// The statements the server holds prepared for `connection`'s session.
std::string ServerPreparedCount(PgConnection& connection) {
  absl::StatusOr<PgRows> rows = connection.Query(
      "SELECT count(*) FROM pg_prepared_statements", {}, "counting");
  if (!rows.ok()) return std::string(rows.status().message());
  return rows->rows.at(0).at(0).value_or("(null)");
}

// Asserts that the flight and each of its statements succeeded.
void ExpectEveryAnswerOk(
    const absl::StatusOr<std::vector<absl::StatusOr<PgRows>>>& answers) {
  ASSERT_TRUE(answers.ok()) << answers.status();
  for (const absl::StatusOr<PgRows>& answer : *answers) {
    ASSERT_TRUE(answer.ok()) << answer.status();
  }
}

// Has the server drop every prepared statement of `pool`'s one connection
// (as a pooler's DEALLOCATE ALL would); returns how many it held.
std::string DeallocateAll(ConnectionPool& pool) {
  absl::StatusOr<ConnectionPool::Lease> lease = pool.Acquire();
  if (!lease.ok()) return std::string(lease.status().message());
  const std::string held = ServerPreparedCount(lease->connection());
  const absl::Status deallocated =
      lease->connection().Execute("DEALLOCATE ALL", "deallocating");
  return deallocated.ok() ? held : std::string(deallocated.message());
}

// Queues a write of `statement`; its answer lands in `answer`, then `done`
// is notified.
void EnqueueWrite(Committer& committer, Statement statement,
                  absl::Status* answer, absl::Notification* done) {
  auto write = std::make_unique<PgWrite>();
  write->statements.push_back(std::move(statement));
  committer.Enqueue(std::move(write), "writing", [=](absl::Status status) {
    *answer = std::move(status);
    done->Notify();
  });
}

// Commits a write of `statement` and returns its answer.
absl::Status CommitWrite(Committer& committer, Statement statement) {
  absl::Status answer;
  absl::Notification done;
  EnqueueWrite(committer, std::move(statement), &answer, &done);
  done.WaitForNotification();
  return answer;
}

TEST_F(PostgresTest, AStatementIsPreparedOnceAndThenOnlyExecuted) {
  std::unique_ptr<PgConnection> connection = Connect(/*prepare=*/true);
  ASSERT_NE(connection, nullptr);
  ASSERT_TRUE(
      connection->Execute("CREATE TABLE t (id int PRIMARY KEY)", "making t")
          .ok());
  constexpr char kInsert[] = "INSERT INTO t VALUES ($1)";
  constexpr char kCount[] = "SELECT count(*) FROM t WHERE id >= $1";
  for (int id = 0; id < 3; ++id) {
    ASSERT_TRUE(
        connection->Query(kInsert, {std::to_string(id)}, "inserting").ok());
  }
  // In one flight: the same new statement twice, then known ones.
  const PgParams ids[] = {{"10"}, {"11"}, {"12"}};
  const PgParams from_zero = {"0"};
  const std::vector<PgPipelineStatement> flight = {
      {"INSERT INTO t VALUES ($1 + 0)", &ids[0]},
      {"INSERT INTO t VALUES ($1 + 0)", &ids[1]},
      {kInsert, &ids[2]},
      {kCount, &from_zero},
  };
  absl::StatusOr<std::vector<absl::StatusOr<PgRows>>> answers =
      connection->RunPipeline(flight, "a flight");
  ASSERT_NO_FATAL_FAILURE(ExpectEveryAnswerOk(answers));
  EXPECT_EQ((*answers)[3]->rows.at(0).at(0), "6");
  EXPECT_EQ(ServerPreparedCount(*connection), "3");
  // Planned for each call: never prepared, even when new.
  absl::StatusOr<PgRows> each_call =
      connection->Query("SELECT count(*) FROM t WHERE id < $1", {"11"},
                        "counting", PgPlanning::kEachCall);
  ASSERT_TRUE(each_call.ok()) << each_call.status();
  EXPECT_EQ(each_call->rows.at(0).at(0), "4");
  EXPECT_EQ(ServerPreparedCount(*connection), "3");

  // Off: nothing is prepared, and everything still runs.
  std::unique_ptr<PgConnection> plain = Connect(/*prepare=*/false);
  ASSERT_NE(plain, nullptr);
  EXPECT_TRUE(plain->Query(kInsert, {std::string("20")}, "inserting").ok());
  const PgParams more_ids[] = {{"30"}, {"31"}};
  answers = plain->RunPipeline({{"INSERT INTO t VALUES ($1 + 0)", &more_ids[0]},
                                {kInsert, &more_ids[1]},
                                {kCount, &from_zero}},
                               "a flight");
  ASSERT_NO_FATAL_FAILURE(ExpectEveryAnswerOk(answers));
  EXPECT_EQ((*answers)[2]->rows.at(0).at(0), "9");
  EXPECT_EQ(ServerPreparedCount(*plain), "0");
}

TEST_F(PostgresTest, AFailedOrSkippedPreparationIsNotTakenForDone) {
  std::unique_ptr<PgConnection> connection = Connect(/*prepare=*/true);
  ASSERT_NE(connection, nullptr);
  ASSERT_TRUE(
      connection->Execute("CREATE TABLE t (id int PRIMARY KEY)", "making t")
          .ok());
  const PgParams one = {"1"};
  // A statement that does not parse fails with the parser's error, not as
  // skipped; the statement after it, new too, is skipped unprepared.
  absl::StatusOr<std::vector<absl::StatusOr<PgRows>>> answers =
      connection->RunPipeline(
          {{"SELEC $1", &one}, {"INSERT INTO t VALUES ($1)", &one}},
          "a flight");
  ASSERT_TRUE(answers.ok()) << answers.status();
  EXPECT_EQ((*answers)[0].status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains((*answers)[0].status().message(), "42601"))
      << (*answers)[0].status();
  EXPECT_EQ((*answers)[1].status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(ServerPreparedCount(*connection), "0");

  // Prepared inside a transaction that rolls back: it stays prepared (the
  // server keeps protocol-level statements across transactions) and runs.
  answers = connection->RunPipeline({{"BEGIN", nullptr},
                                     {"INSERT INTO t VALUES ($1)", &one},
                                     {"ROLLBACK", nullptr}},
                                    "rolled back");
  ASSERT_TRUE(answers.ok()) << answers.status();
  EXPECT_EQ(ServerPreparedCount(*connection), "1");
  absl::StatusOr<PgRows> inserted =
      connection->Query("INSERT INTO t VALUES ($1)", one, "inserting");
  ASSERT_TRUE(inserted.ok()) << inserted.status();
  EXPECT_EQ(inserted->affected, 1);
  EXPECT_EQ(Value(*connection, "SELECT count(*) FROM t"), "1");
  EXPECT_TRUE(connection->connected());
}

TEST_F(PostgresTest, StatementsBeyondThePreparedLimitStillRun) {
  std::unique_ptr<PgConnection> connection = Connect(/*prepare=*/true);
  ASSERT_NE(connection, nullptr);
  const size_t limit = PgConnection::kMaxPreparedStatements;
  for (size_t i = 0; i < limit + 3; ++i) {
    absl::StatusOr<PgRows> rows = connection->Query(
        absl::StrCat("SELECT $1::int + ", i), {std::string("1")}, "adding");
    ASSERT_TRUE(rows.ok()) << rows.status();
    EXPECT_EQ(rows->rows.at(0).at(0), std::to_string(i + 1));
  }
  EXPECT_EQ(ServerPreparedCount(*connection), std::to_string(limit));
}

TEST_F(PostgresTest, AStaleStatementIsUnavailableAndDropsItsConnection) {
  std::unique_ptr<PgConnection> connection = Connect(/*prepare=*/true);
  std::unique_ptr<PgConnection> other = Connect();
  ASSERT_NE(connection, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(
      connection->Execute("CREATE TABLE t (id int PRIMARY KEY)", "making t")
          .ok());
  constexpr char kInsert[] = "INSERT INTO t VALUES ($1)";
  ASSERT_TRUE(connection->Query(kInsert, {"1"}, "inserting").ok());
  // The server loses the statement (as after a pooler's DEALLOCATE ALL).
  ASSERT_TRUE(connection->Execute("DEALLOCATE ALL", "deallocating").ok());
  absl::StatusOr<PgRows> lost = connection->Query(kInsert, {"2"}, "inserting");
  EXPECT_EQ(lost.status().code(), absl::StatusCode::kUnavailable)
      << lost.status();
  EXPECT_TRUE(IsStalePreparedStatement(lost.status())) << lost.status();
  EXPECT_TRUE(absl::StrContains(lost.status().message(), "SQLSTATE 26000"))
      << lost.status();
  EXPECT_FALSE(connection->connected());
  EXPECT_EQ(Value(*other, "SELECT count(*) FROM t"), "1");

  // A column under a prepared statement changes type.
  connection = Connect(/*prepare=*/true);
  ASSERT_NE(connection, nullptr);
  constexpr char kSelect[] = "SELECT id FROM t WHERE id >= $1";
  ASSERT_TRUE(connection->Query(kSelect, {"0"}, "reading").ok());
  ASSERT_TRUE(
      other->Execute("ALTER TABLE t ALTER COLUMN id TYPE bigint", "altering")
          .ok());
  absl::StatusOr<PgRows> changed = connection->Query(kSelect, {"0"}, "reading");
  EXPECT_EQ(changed.status().code(), absl::StatusCode::kUnavailable)
      << changed.status();
  EXPECT_TRUE(IsStalePreparedStatement(changed.status())) << changed.status();
  EXPECT_TRUE(absl::StrContains(changed.status().message(), "SQLSTATE 0A000"))
      << changed.status();
  EXPECT_FALSE(connection->connected());

  // Other failures of a prepared statement are not taken for stale.
  connection = Connect(/*prepare=*/true);
  ASSERT_NE(connection, nullptr);
  ASSERT_TRUE(connection->Query(kInsert, {"3"}, "inserting").ok());
  absl::StatusOr<PgRows> duplicate =
      connection->Query(kInsert, {"3"}, "inserting");
  EXPECT_EQ(duplicate.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(IsStalePreparedStatement(duplicate.status()));
  EXPECT_TRUE(connection->connected());
  EXPECT_FALSE(IsStalePreparedStatement(absl::UnavailableError("lost")));
}

TEST_F(PostgresTest, ThePoolSendsAStaleStatementAgainOnANewConnection) {
  // One connection: the statement is sent again on its replacement.
  ConnectionPool pool(cluster_->ConnInfo(database_), /*size=*/1,
                      /*prepare_statements=*/true);
  std::unique_ptr<PgConnection> other = ConnectAndMakeTableT();
  ASSERT_NE(other, nullptr);
  constexpr char kInsert[] = "INSERT INTO t VALUES ($1)";
  constexpr char kSelect[] = "SELECT id FROM t WHERE id >= $1 ORDER BY id";
  ASSERT_TRUE(pool.Query(kInsert, {"1"}, "inserting").ok());
  ASSERT_TRUE(pool.Query(kSelect, {"0"}, "reading").ok());
  ASSERT_EQ(DeallocateAll(pool), "2");
  absl::StatusOr<PgRows> inserted = pool.Query(kInsert, {"2"}, "inserting");
  ASSERT_TRUE(inserted.ok()) << inserted.status();
  EXPECT_EQ(inserted->affected, 1);

  ASSERT_TRUE(pool.Query(kSelect, {"0"}, "reading").ok());
  ASSERT_TRUE(
      other->Execute("ALTER TABLE t ALTER COLUMN id TYPE bigint", "altering")
          .ok());
  absl::StatusOr<PgRows> read = pool.Query(kSelect, {"0"}, "reading");
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->rows.size(), 2u);
  EXPECT_EQ(read->rows[1][0], "2");
}

TEST_F(PostgresTest, ACommitThreadAppliesAgainAfterAStaleStatement) {
  ConnectionPool pool(cluster_->ConnInfo(database_), /*size=*/1,
                      /*prepare_statements=*/true);
  Notifier notifier(&pool);
  Committer committer(&pool, &notifier, /*max_batch_writes=*/1);
  std::unique_ptr<PgConnection> other = ConnectAndMakeTableT();
  ASSERT_NE(other, nullptr);
  const auto insert = [&](const std::string& id) {
    return CommitWrite(committer, {"INSERT INTO t VALUES ($1)", {id}, ""});
  };
  ASSERT_TRUE(insert("1").ok());
  ASSERT_EQ(DeallocateAll(pool), "1");
  EXPECT_TRUE(insert("2").ok());
  EXPECT_TRUE(insert("3").ok());
  EXPECT_EQ(Value(*other, "SELECT count(*) FROM t"), "3");
  EXPECT_EQ(committer.transactions(), 3);
}

TEST_F(PostgresTest, AStaleStatementBehindAConflictStillVoidsTheBatch) {
  ConnectionPool pool(cluster_->ConnInfo(database_), /*size=*/1,
                      /*prepare_statements=*/true);
  Notifier notifier(&pool);
  Committer committer(&pool, &notifier, /*max_batch_writes=*/2);
  std::unique_ptr<PgConnection> other = ConnectAndMakeTableT();
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(
      CommitWrite(committer, {"INSERT INTO t VALUES ($1)", {"1"}, ""}).ok());
  ASSERT_EQ(DeallocateAll(pool), "1");
  // The commit thread is held inside a write (no parameters: never
  // prepared) that waits for a lock, so that the two writes after it queue
  // up and are committed together: a conflict (no row changed, which the
  // server does not see as an error) ahead of the stale INSERT.
  ASSERT_TRUE(other->Execute("BEGIN", "beginning").ok());
  ASSERT_TRUE(other->Execute("LOCK TABLE t", "locking t").ok());
  absl::Status held, conflicting, stale;
  absl::Notification held_done, conflicting_done, stale_done;
  EnqueueWrite(committer, {"INSERT INTO t VALUES (100)", {}, ""}, &held,
               &held_done);
  // Awaits the commit thread's wait for the lock (the server offers no
  // notification of it).
  const std::string waiting_for_t =
      "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = "
      "'t'::regclass AND database = (SELECT oid FROM pg_database WHERE "
      "datname = current_database())";
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (Value(*other, waiting_for_t) == "0" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(Value(*other, waiting_for_t), "1");
  EnqueueWrite(committer,
               {"UPDATE t SET id = id WHERE id = $1", {"-1"}, "no row -1"},
               &conflicting, &conflicting_done);
  EnqueueWrite(committer, {"INSERT INTO t VALUES ($1)", {"2"}, ""}, &stale,
               &stale_done);
  ASSERT_TRUE(other->Execute("COMMIT", "committing").ok());
  held_done.WaitForNotification();
  conflicting_done.WaitForNotification();
  stale_done.WaitForNotification();
  EXPECT_TRUE(held.ok()) << held;
  EXPECT_EQ(conflicting.code(), absl::StatusCode::kAborted) << conflicting;
  // Sent again on a new connection, not UNAVAILABLE.
  EXPECT_TRUE(stale.ok()) << stale;
  EXPECT_EQ(Value(*other, "SELECT count(*) FROM t"), "3");
}

TEST_F(PostgresTest, AByteaArrayCarriesAnyBytes) {
  std::unique_ptr<PgConnection> connection = Connect(/*prepare=*/true);
  ASSERT_NE(connection, nullptr);
  const std::vector<std::string> values = {
      std::string("quote\"d"),
      std::string("back\\slash"),
      std::string("a,b"),
      std::string("{braces}"),
      std::string("\x00", 1),
      std::string("nul\x00mid", 7),
      std::string("\xff\x80\x7f"),
      std::string("NULL"),
      std::string(" "),
      std::string(""),
      std::string("\\x41"),
  };
  for (const std::vector<std::string>& array :
       {values, std::vector<std::string>{}, std::vector<std::string>{""}}) {
    absl::StatusOr<PgRows> rows = connection->Query(
        "SELECT value FROM unnest($1::bytea[]) WITH ORDINALITY AS a(value, i) "
        "ORDER BY i",
        {ByteaArray(array)}, "unnesting");
    ASSERT_TRUE(rows.ok()) << rows.status();
    ASSERT_EQ(rows->rows.size(), array.size());
    for (size_t i = 0; i < array.size(); ++i) {
      absl::StatusOr<std::string> value =
          FromBytea(rows->rows[i][0], "reading");
      ASSERT_TRUE(value.ok()) << value.status();
      EXPECT_EQ(*value, array[i]) << "element " << i;
    }
  }
}

TEST_F(PostgresTest, WriteSkewUnderSerializableIsAbortedForARetry) {
  std::unique_ptr<PgConnection> first = Connect();
  std::unique_ptr<PgConnection> second = Connect();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(first->Execute("CREATE TABLE t (x int)", "making t").ok());
  // Each transaction reads what the other writes: one of them must fail.
  for (PgConnection* connection : {first.get(), second.get()}) {
    ASSERT_TRUE(connection
                    ->Execute("BEGIN ISOLATION LEVEL SERIALIZABLE; "
                              "SELECT count(*) FROM t",
                              "reading t")
                    .ok());
  }
  ASSERT_TRUE(first->Execute("INSERT INTO t VALUES (1)", "first insert").ok());
  absl::Status second_insert =
      second->Execute("INSERT INTO t VALUES (2)", "second insert");
  ASSERT_TRUE(first->Execute("COMMIT", "first commit").ok());
  absl::Status second_commit = second_insert.ok()
                                   ? second->Execute("COMMIT", "second commit")
                                   : second_insert;
  EXPECT_EQ(second_commit.code(), absl::StatusCode::kAborted)
      << second_commit.message();
  EXPECT_TRUE(IsRetryableTransactionError(second_commit));
  EXPECT_TRUE(absl::StrContains(second_commit.message(), "40001"))
      << second_commit.message();
}

TEST_F(PostgresOutageTest,
       LostServerIsUnavailableAndAStoppedOneRefusesToConnect) {
  std::unique_ptr<PgConnection> connection = Connect();
  ASSERT_NE(connection, nullptr);
  ASSERT_TRUE(cluster_->Stop().ok());
  absl::Status lost = connection->Execute("SELECT 1", "after the stop");
  EXPECT_EQ(lost.code(), absl::StatusCode::kUnavailable) << lost.message();
  EXPECT_FALSE(connection->connected());

  absl::StatusOr<std::unique_ptr<PgConnection>> refused =
      PgConnection::Connect(cluster_->ConnInfo(database_));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StartsWith(refused.status().message(),
                               "connecting to PostgreSQL: "))
      << refused.status().message();

  ASSERT_TRUE(cluster_->Restart().ok());
  std::unique_ptr<PgConnection> again = Connect();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(Value(*again, "SELECT 1"), "1");
}

TEST_F(PostgresTest, MigrationCreatesTheSchemaOnceAndIsIdempotent) {
  std::unique_ptr<PgConnection> connection = Connect();
  ASSERT_NE(connection, nullptr);
  absl::StatusOr<int> before = ReadSchemaVersion(*connection);
  ASSERT_TRUE(before.ok()) << before.status().message();
  EXPECT_EQ(*before, 0);

  absl::StatusOr<MigrationResult> first = MigrateSchema(*connection);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->from_version, 0);
  EXPECT_EQ(first->to_version, KnownSchemaVersion());
  absl::StatusOr<MigrationResult> second = MigrateSchema(*connection);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->from_version, KnownSchemaVersion());
  EXPECT_EQ(second->to_version, KnownSchemaVersion());
  EXPECT_EQ(*ReadSchemaVersion(*connection), KnownSchemaVersion());

  // The tables the store needs are there, in the tasktrail schema.
  for (const char* table :
       {"tasks", "task_events", "event_ids", "dedup_records", "stats_counters",
        "queue_wait_samples", "audit_entries"}) {
    EXPECT_EQ(Value(*connection, absl::StrCat("SELECT to_regclass('tasktrail.",
                                              table, "') IS NOT NULL")),
              "t")
        << table;
  }
  EXPECT_EQ(
      Value(*connection, "SELECT count(*) FROM tasktrail.schema_migrations"),
      std::to_string(SchemaMigrations().size()));
}

TEST_F(PostgresTest, AVersion1SchemaWithTasksGainsTheRouteColumn) {
  std::unique_ptr<PgConnection> connection = Connect();
  ASSERT_NE(connection, nullptr);
  absl::StatusOr<MigrationResult> first =
      MigrateSchema(*connection, SchemaMigrations().subspan(0, 1));
  ASSERT_TRUE(first.ok()) << first.status().message();
  ASSERT_EQ(first->to_version, 1);
  ASSERT_TRUE(connection
                  ->Execute("INSERT INTO tasktrail.tasks (task_id, "
                            "account_id, model, state, create_time, "
                            "update_time, last_seq, snapshot) VALUES ('T1', "
                            "'acct', 'kling', 2, now(), now(), 1, '')",
                            "a task of version 1")
                  .ok());
  absl::StatusOr<MigrationResult> second = MigrateSchema(*connection);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->from_version, 1);
  EXPECT_EQ(second->to_version, KnownSchemaVersion());
  EXPECT_EQ(Value(*connection,
                  "SELECT route = '' FROM tasktrail.tasks WHERE task_id = "
                  "'T1'"),
            "t");
  EXPECT_EQ(Value(*connection,
                  "SELECT to_regclass('tasktrail.tasks_by_route') IS NOT NULL"),
            "t");
}

TEST_F(PostgresTest, AVersion2CounterKeepsItsValueOnceSharded) {
  std::unique_ptr<PgConnection> connection = Connect();
  ASSERT_NE(connection, nullptr);
  absl::StatusOr<MigrationResult> first =
      MigrateSchema(*connection, SchemaMigrations().subspan(0, 2));
  ASSERT_TRUE(first.ok()) << first.status().message();
  ASSERT_EQ(first->to_version, 2);
  ASSERT_TRUE(
      connection
          ->Execute("INSERT INTO tasktrail.stats_counters (unix_minute, "
                    "model, name, value) VALUES (100, 'kling', "
                    "'state:FAILED', 7)",
                    "a counter of version 2")
          .ok());
  absl::StatusOr<MigrationResult> second = MigrateSchema(*connection);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->from_version, 2);
  // Increments from other shards add to it; the sum is the counter.
  ASSERT_TRUE(
      connection
          ->Execute("INSERT INTO tasktrail.stats_counters (unix_minute, "
                    "model, name, value, shard) VALUES (100, 'kling', "
                    "'state:FAILED', 5, 3)",
                    "an increment on shard 3")
          .ok());
  EXPECT_EQ(Value(*connection,
                  "SELECT sum(value) FROM tasktrail.stats_counters WHERE "
                  "unix_minute = 100 AND model = 'kling'"),
            "12");
}

TEST_F(PostgresTest, ReplicasStartingTogetherMigrateOnce) {
  constexpr int kReplicas = 8;
  std::vector<absl::StatusOr<MigrationResult>> results(
      kReplicas, absl::UnknownError("not run"));
  std::vector<std::unique_ptr<PgConnection>> connections;
  for (int i = 0; i < kReplicas; ++i) {
    connections.push_back(Connect());
    ASSERT_NE(connections.back(), nullptr);
  }
  std::vector<std::thread> replicas;
  for (int i = 0; i < kReplicas; ++i) {
    replicas.emplace_back(
        [&, i] { results[i] = MigrateSchema(*connections[i]); });
  }
  for (std::thread& replica : replicas) replica.join();
  int migrated = 0;
  for (const absl::StatusOr<MigrationResult>& result : results) {
    ASSERT_TRUE(result.ok()) << result.status().message();
    EXPECT_EQ(result->to_version, KnownSchemaVersion());
    if (result->from_version == 0) ++migrated;
  }
  EXPECT_EQ(migrated, 1) << "exactly one replica applies the migrations";
  EXPECT_EQ(Value(*connections[0],
                  "SELECT count(*) FROM tasktrail.schema_migrations"),
            std::to_string(SchemaMigrations().size()));
}

TEST_F(PostgresTest, ANewerSchemaIsRefusedNamingBothVersions) {
  std::unique_ptr<PgConnection> connection = Connect();
  ASSERT_NE(connection, nullptr);
  ASSERT_TRUE(MigrateSchema(*connection).ok());
  const int newer = KnownSchemaVersion() + 1;
  ASSERT_TRUE(connection
                  ->Execute(absl::StrCat("INSERT INTO tasktrail.schema_"
                                         "migrations (version, description) "
                                         "VALUES (",
                                         newer, ", 'from a newer build')"),
                            "pretending a newer build migrated")
                  .ok());
  absl::StatusOr<MigrationResult> refused = MigrateSchema(*connection);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(refused.status().message(),
                                absl::StrCat("version ", newer)))
      << refused.status().message();
  EXPECT_TRUE(absl::StrContains(
      refused.status().message(),
      absl::StrCat("knows (version ", KnownSchemaVersion(), ")")))
      << refused.status().message();
  EXPECT_TRUE(connection->connected()) << "the refusal rolled back cleanly";
  EXPECT_EQ(*ReadSchemaVersion(*connection), newer);
}

TEST_F(PostgresTest, AFailingMigrationLeavesNothingBehind) {
  std::unique_ptr<PgConnection> connection = Connect();
  ASSERT_NE(connection, nullptr);
  const Migration broken[] = {
      SchemaMigrations()[0],
      {2, "half done",
       "CREATE TABLE tasktrail.half_done (x int); "
       "SELECT no_such_function();"},
  };
  absl::StatusOr<MigrationResult> failed = MigrateSchema(*connection, broken);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(failed.status().message(),
                                "schema migration 2 (half done)"))
      << failed.status().message();
  EXPECT_EQ(*ReadSchemaVersion(*connection), 0);
  EXPECT_EQ(Value(*connection, "SELECT to_regclass('tasktrail.half_done')"),
            "(null)");
  EXPECT_EQ(Value(*connection, "SELECT to_regclass('tasktrail.tasks')"),
            "(null)");

  absl::StatusOr<MigrationResult> fixed = MigrateSchema(*connection);
  ASSERT_TRUE(fixed.ok()) << fixed.status().message();
  EXPECT_EQ(fixed->to_version, KnownSchemaVersion());
}

}  // namespace
}  // namespace tasktrail::store::postgres
