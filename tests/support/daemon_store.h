// Where an end-to-end test's tasktraild keeps its data, on either store
// (backend.h): a RocksDB directory of the test's own, or a fresh database on
// the tests' shared PostgreSQL cluster (postgres_cluster.h). Every server it
// makes serves the same data, so a test can stop its daemon and start
// another on what the first wrote (one at a time on RocksDB).
//
// Thread safety: none; one test uses it.
#ifndef TASKTRAIL_TESTS_SUPPORT_DAEMON_STORE_H_
#define TASKTRAIL_TESTS_SUPPORT_DAEMON_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tests/support/backend.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {

class DaemonStore {
 public:
  DaemonStore() = default;
  DaemonStore(const DaemonStore&) = delete;
  DaemonStore& operator=(const DaemonStore&) = delete;

  // Makes the store: a directory, or a database named after `prefix`
  // (PostgresCluster::FreshDatabase). Fails, saying that the PostgreSQL
  // tests need a server and how to install one, when no PostgreSQL cluster
  // can be had. REQUIRES: `prefix` is a valid SQL identifier; called once.
  absl::Status Open(Backend backend, const std::string& prefix);

  // A tasktraild (not started yet) on this store, with `extra_args` added to
  // its command line.
  std::unique_ptr<ServerProcess> NewServer(
      std::vector<std::string> extra_args = {}) const;

  Backend backend() const { return backend_; }

 private:
  Backend backend_ = Backend::kRocksDb;
  TempDir dir_{"tasktrail-e2e"};
  // The --postgres CONNINFO; empty on RocksDB.
  std::string conninfo_;
};

}  // namespace tasktrail::testing

#endif  // TASKTRAIL_TESTS_SUPPORT_DAEMON_STORE_H_
