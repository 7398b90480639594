// A throwaway PostgreSQL cluster for tests and benchmarks: `initdb` in a
// temporary directory, `postgres` listening on 127.0.0.1 on a free port (and
// on a Unix socket inside that directory), stopped and removed when the
// object goes away. The server binaries come from Debian's `postgresql`
// package (/usr/lib/postgresql/VERSION/bin, the newest version installed).
// PostgreSQL refuses to run as root, so when the caller is root every server
// command runs as the `postgres` user that package creates (through
// `runuser`), in a directory that user owns.
//
// Tests share one cluster (FreshDatabase): starting one (initdb and the
// server's start) costs seconds, a database of its own per test keeps the
// tests independent. Under ctest that is one cluster for the whole run: a
// setup test (test_postgres_cluster start FILE) starts it and Detach()es it
// into FILE, the tests find FILE in the environment variable
// TASKTRAIL_TEST_POSTGRES (kSharedClusterVariable), and a cleanup test
// (test_postgres_cluster stop FILE) stops it. A test binary run by hand,
// without that variable, starts a cluster of its own for its process.
//
// Thread safety: a cluster's methods, none (one test uses it at a time);
// FreshDatabase may be called from any thread.
#ifndef TASKTRAIL_TESTS_SUPPORT_POSTGRES_CLUSTER_H_
#define TASKTRAIL_TESTS_SUPPORT_POSTGRES_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/temp_dir.h"

namespace tasktrail::testing {

class PostgresCluster;

// The environment variable naming the file Detach wrote: when it is set,
// FreshDatabase uses the cluster that file describes.
inline constexpr char kSharedClusterVariable[] = "TASKTRAIL_TEST_POSTGRES";

// Which cluster FreshDatabase makes the database on.
enum class ClusterUse {
  // The cluster the tests share (its Stop and Restart are refused: other
  // tests, possibly in other processes, use it at the same time).
  kShared,
  // A cluster of the test's own, started for it (seconds), which the test
  // may stop and restart; it goes away with the last copy of
  // TestDatabase::own_cluster.
  kOwn,
};

// A database of a test's own (FreshDatabase).
struct TestDatabase {
  // The cluster holding it: the shared one outlives every test of the
  // process; a cluster of the test's own lives as long as `own_cluster`.
  PostgresCluster* cluster = nullptr;
  std::string name;
  // cluster->ConnInfo(name).
  std::string conninfo;
  // Set for ClusterUse::kOwn: the cluster, to be kept while it is used.
  std::shared_ptr<PostgresCluster> own_cluster;
};

class PostgresCluster {
 public:
  // Creates a new, empty database named `prefix`_PID_N. With kShared, on
  // the cluster the tests share: the one kSharedClusterVariable names
  // (Attach) when it is set, else one this process starts on the first call
  // (it is stopped when the process exits). With kOwn, on a cluster started
  // for this call. Errors as Start or Attach (a failed start or attach of
  // the shared cluster is not retried: every later call answers the same),
  // or INTERNAL when the database cannot be made.
  // REQUIRES: `prefix` is a valid SQL identifier.
  static absl::StatusOr<TestDatabase> FreshDatabase(
      const std::string& prefix, ClusterUse use = ClusterUse::kShared);

  // The directory holding initdb, pg_ctl and postgres, or "" when no
  // PostgreSQL server is installed.
  static std::string ServerBinDir();

  // Creates and starts a cluster with a superuser named `tasktrail` that
  // connects without a password from loopback (trust authentication: the
  // cluster only listens there). Fails with FAILED_PRECONDITION when no
  // PostgreSQL server is installed (callers skip and say so) and with
  // INTERNAL, carrying the server's log, when initdb or the start fails.
  static absl::StatusOr<std::unique_ptr<PostgresCluster>> Start();

  // Writes where this cluster is (port, directory) to `path` and leaves the
  // server running and its directory in place when this object goes away,
  // for other processes to Attach to and StopDetached to stop. INTERNAL
  // when `path` cannot be written.
  absl::Status Detach(const std::string& path);

  // The running cluster that Detach described in `path`, shared: this
  // process neither stops nor removes it (Stop and Restart answer
  // FAILED_PRECONDITION). FAILED_PRECONDITION when `path` cannot be read or
  // does not describe a cluster, or no PostgreSQL server is installed.
  static absl::StatusOr<std::unique_ptr<PostgresCluster>> Attach(
      const std::string& path);

  // Stops the cluster that Detach described in `path` (immediate shutdown),
  // removes its directory and `path`. OK when `path` does not exist (no
  // cluster was started); INTERNAL when the server does not stop (its
  // directory is then left for a look).
  static absl::Status StopDetached(const std::string& path);

  // Stops the server (fast shutdown) when this object started it and it
  // runs; the directory is removed. A detached or attached cluster is left
  // as it is.
  ~PostgresCluster();
  PostgresCluster(const PostgresCluster&) = delete;
  PostgresCluster& operator=(const PostgresCluster&) = delete;

  // A libpq key=value connection string for database `dbname` over TCP.
  std::string ConnInfo(const std::string& dbname = "postgres") const;
  int port() const { return port_; }
  bool running() const { return running_; }

  // Stops the server with a fast shutdown (open connections are ended,
  // committed data stays). Idempotent. FAILED_PRECONDITION on a shared
  // cluster (FreshDatabase's kShared, Attach).
  absl::Status Stop();
  // Starts the stopped server again on the same port and data.
  // FAILED_PRECONDITION on a shared cluster or one that runs.
  absl::Status Restart();

  // Runs `sql` with psql as the superuser against `dbname`, stopping at the
  // first error; returns psql's unaligned, tuples-only output.
  absl::StatusOr<std::string> Psql(const std::string& sql,
                                   const std::string& dbname = "postgres");

 private:
  // A cluster in `root`, which `owned_root` removes when it is set.
  PostgresCluster(std::string bin_dir, int port, std::string root,
                  std::unique_ptr<TempDir> owned_root);
  // The command line `argv` runs as the server's user.
  std::vector<std::string> AsServerUser(std::vector<std::string> argv) const;
  absl::Status StartServer();
  // pg_ctl stop with `mode` (fast: open connections are ended, committed
  // data is checkpointed; immediate: no checkpoint).
  absl::Status StopServer(const std::string& mode = "fast");
  std::string LogTail() const;

  std::string bin_dir_;
  int port_;
  std::string root_;
  std::unique_ptr<TempDir> owned_root_;
  std::string data_dir_;
  std::string log_path_;
  bool running_ = false;
  // The server is this object's to stop when it goes away (not attached,
  // not detached).
  bool owns_server_ = true;
  // Other tests use it too: Stop and Restart are refused.
  bool shared_ = false;
};

}  // namespace tasktrail::testing

#endif  // TASKTRAIL_TESTS_SUPPORT_POSTGRES_CLUSTER_H_
