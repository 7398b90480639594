// A throwaway PostgreSQL cluster for tests and benchmarks: `initdb` in a
// temporary directory, `postgres` listening on 127.0.0.1 on a free port (and
// on a Unix socket inside that directory), stopped and removed when the
// object goes away. The server binaries come from Debian's `postgresql`
// package (/usr/lib/postgresql/VERSION/bin, the newest version installed).
// PostgreSQL refuses to run as root, so when the caller is root every server
// command runs as the `postgres` user that package creates (through
// `runuser`), in a directory that user owns.
//
// Tests share one cluster per test process (FreshDatabase): starting one
// (initdb and the server's start) costs seconds, a database of its own per
// test keeps the tests independent.
//
// Thread safety: a cluster's methods, none (one test uses it at a time);
// FreshDatabase may be called from any thread.
#ifndef TASKTRAIL_TESTS_SUPPORT_POSTGRES_CLUSTER_H_
#define TASKTRAIL_TESTS_SUPPORT_POSTGRES_CLUSTER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/temp_dir.h"

namespace tasktrail::testing {

class PostgresCluster;

// A database of a test's own on the shared cluster (FreshDatabase).
struct TestDatabase {
  // The shared cluster; it outlives every test of the process.
  PostgresCluster* cluster = nullptr;
  std::string name;
  // cluster->ConnInfo(name).
  std::string conninfo;
};

class PostgresCluster {
 public:
  // Creates a new, empty database named `prefix`_N on the cluster this
  // process shares: the first call starts it (lazily; it is stopped when the
  // process exits), a later one restarts it first when a test left it
  // stopped. Errors as Start (a failed start is not retried: every later
  // call answers the same), or INTERNAL when the database cannot be made.
  // REQUIRES: `prefix` is a valid SQL identifier.
  static absl::StatusOr<TestDatabase> FreshDatabase(const std::string& prefix);

  // The directory holding initdb, pg_ctl and postgres, or "" when no
  // PostgreSQL server is installed.
  static std::string ServerBinDir();

  // Creates and starts a cluster with a superuser named `tasktrail` that
  // connects without a password from loopback (trust authentication: the
  // cluster only listens there). Fails with FAILED_PRECONDITION when no
  // PostgreSQL server is installed (callers skip and say so) and with
  // INTERNAL, carrying the server's log, when initdb or the start fails.
  static absl::StatusOr<std::unique_ptr<PostgresCluster>> Start();

  // Stops the server (fast shutdown) when it runs; the directory is removed.
  ~PostgresCluster();
  PostgresCluster(const PostgresCluster&) = delete;
  PostgresCluster& operator=(const PostgresCluster&) = delete;

  // A libpq key=value connection string for database `dbname` over TCP.
  std::string ConnInfo(const std::string& dbname = "postgres") const;
  int port() const { return port_; }
  bool running() const { return running_; }

  // Stops the server with a fast shutdown (open connections are ended,
  // committed data stays). Idempotent.
  absl::Status Stop();
  // Starts the stopped server again on the same port and data.
  absl::Status Restart();

  // Runs `sql` with psql as the superuser against `dbname`, stopping at the
  // first error; returns psql's unaligned, tuples-only output.
  absl::StatusOr<std::string> Psql(const std::string& sql,
                                   const std::string& dbname = "postgres");

 private:
  PostgresCluster(std::string bin_dir, int port);
  // The command line `argv` runs as the server's user.
  std::vector<std::string> AsServerUser(std::vector<std::string> argv) const;
  absl::Status StartServer();
  std::string LogTail() const;

  std::string bin_dir_;
  int port_;
  TempDir root_{"tasktrail-pg"};
  std::string data_dir_;
  std::string log_path_;
  bool running_ = false;
};

}  // namespace tasktrail::testing

#endif  // TASKTRAIL_TESTS_SUPPORT_POSTGRES_CLUSTER_H_
