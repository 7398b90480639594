// The throwaway PostgreSQL cluster the PostgreSQL store's tests run on
// (tests/support/postgres_cluster.h), reached through libpq as the store
// reaches it: committed rows survive a stop and a restart on the same port,
// and a connection made while the server is down fails instead of hanging.
#include "tests/support/postgres_cluster.h"

#include <libpq-fe.h>

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace tasktrail::testing {
namespace {

struct ConnectionCloser {
  void operator()(PGconn* connection) const { PQfinish(connection); }
};
using Connection = std::unique_ptr<PGconn, ConnectionCloser>;

// Runs `sql` on a new connection; returns the first column of the first row
// ("" when there is none), or "error: ..." when connecting or running fails.
std::string QueryOnce(const std::string& conninfo, const std::string& sql) {
  Connection connection(PQconnectdb(conninfo.c_str()));
  if (PQstatus(connection.get()) != CONNECTION_OK) {
    return std::string("error: ") + PQerrorMessage(connection.get());
  }
  PGresult* result = PQexec(connection.get(), sql.c_str());
  std::string answer;
  const ExecStatusType status = PQresultStatus(result);
  if (status == PGRES_TUPLES_OK) {
    if (PQntuples(result) > 0) answer = PQgetvalue(result, 0, 0);
  } else if (status != PGRES_COMMAND_OK) {
    answer = std::string("error: ") + PQresultErrorMessage(result);
  }
  PQclear(result);
  return answer;
}

TEST(PostgresClusterTest, CommittedRowsSurviveAStopAndARestart) {
  absl::StatusOr<std::unique_ptr<PostgresCluster>> started =
      PostgresCluster::Start();
  if (started.status().code() == absl::StatusCode::kFailedPrecondition) {
    GTEST_SKIP() << "no PostgreSQL here: " << started.status().message();
  }
  ASSERT_TRUE(started.ok()) << started.status().message();
  PostgresCluster& cluster = **started;
  const std::string conninfo = cluster.ConnInfo();

  EXPECT_EQ(QueryOnce(conninfo, "SHOW server_version_num").substr(0, 2), "15")
      << "the cluster runs the Debian 12 server";
  EXPECT_EQ(
      QueryOnce(conninfo, "CREATE TABLE evidence (id text PRIMARY KEY, n int)"),
      "");
  EXPECT_EQ(QueryOnce(conninfo, "INSERT INTO evidence VALUES ('t1', 7)"), "");

  ASSERT_TRUE(cluster.Stop().ok());
  EXPECT_FALSE(cluster.running());
  EXPECT_EQ(QueryOnce(conninfo, "SELECT 1").substr(0, 7), "error: ");

  ASSERT_TRUE(cluster.Restart().ok());
  EXPECT_EQ(QueryOnce(conninfo, "SELECT n FROM evidence WHERE id = 't1'"), "7");
  absl::StatusOr<std::string> listed =
      cluster.Psql("SELECT count(*) FROM evidence");
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  EXPECT_EQ(*listed, "1\n");
}

TEST(PostgresClusterTest, TwoClustersRunSideBySideOnTheirOwnPorts) {
  absl::StatusOr<std::unique_ptr<PostgresCluster>> first =
      PostgresCluster::Start();
  if (first.status().code() == absl::StatusCode::kFailedPrecondition) {
    GTEST_SKIP() << "no PostgreSQL here: " << first.status().message();
  }
  ASSERT_TRUE(first.ok()) << first.status().message();
  absl::StatusOr<std::unique_ptr<PostgresCluster>> second =
      PostgresCluster::Start();
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_NE((*first)->port(), (*second)->port());
  EXPECT_EQ(QueryOnce((*first)->ConnInfo(), "CREATE TABLE only_here (x int)"),
            "");
  EXPECT_EQ(QueryOnce((*second)->ConnInfo(),
                      "SELECT count(*) FROM pg_tables WHERE tablename = "
                      "'only_here'"),
            "0");
}

}  // namespace
}  // namespace tasktrail::testing
