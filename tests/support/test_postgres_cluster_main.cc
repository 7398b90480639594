// test_postgres_cluster: the ctest fixture of the PostgreSQL cluster that the
// test processes of one ctest run share (postgres_cluster.h).
//
//   test_postgres_cluster start FILE   starts a throwaway cluster and leaves
//                                      it running, described in FILE (the
//                                      tests' TASKTRAIL_TEST_POSTGRES)
//   test_postgres_cluster stop FILE    stops the cluster FILE describes and
//                                      removes its directory and FILE
//
// Exit status: 0 on success, 1 when the cluster cannot be started or stopped
// (the reason on stderr; with no PostgreSQL server installed too: the tests
// that need one fail rather than skip), 2 on a usage error.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/postgres_cluster.h"

namespace {

using ::tasktrail::testing::PostgresCluster;

int Fail(const absl::Status& status, const char* doing) {
  fprintf(stderr, "test_postgres_cluster: %s: %s\n", doing,
          std::string(status.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc == 3 ? argv[1] : "";
  if (command != "start" && command != "stop") {
    fprintf(stderr, "usage: %s start|stop FILE\n", argv[0]);
    return 2;
  }
  const std::string path = argv[2];
  if (command == "stop") {
    const absl::Status stopped = PostgresCluster::StopDetached(path);
    return stopped.ok() ? 0 : Fail(stopped, "stopping the cluster");
  }
  // A cluster left by an earlier run that was interrupted.
  const absl::Status stale = PostgresCluster::StopDetached(path);
  if (!stale.ok()) Fail(stale, "stopping the cluster of an earlier run");
  absl::StatusOr<std::unique_ptr<PostgresCluster>> cluster =
      PostgresCluster::Start();
  if (!cluster.ok()) {
    return Fail(cluster.status(),
                "starting the cluster (scripts/install-deps.sh --test "
                "installs PostgreSQL)");
  }
  const absl::Status detached = (*cluster)->Detach(path);
  if (!detached.ok()) return Fail(detached, "describing the cluster");
  printf("PostgreSQL cluster on port %d for the tests (%s)\n",
         (*cluster)->port(), path.c_str());
  return 0;
}
