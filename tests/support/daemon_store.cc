#include "tests/support/daemon_store.h"

#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "tests/support/postgres_cluster.h"

namespace tasktrail::testing {

absl::Status DaemonStore::Open(Backend backend, const std::string& prefix) {
  backend_ = backend;
  if (backend == Backend::kRocksDb) return absl::OkStatus();
  absl::StatusOr<TestDatabase> database =
      PostgresCluster::FreshDatabase(prefix);
  if (!database.ok()) return database.status();
  conninfo_ = database->conninfo;
  return absl::OkStatus();
}

std::unique_ptr<ServerProcess> DaemonStore::NewServer(
    std::vector<std::string> extra_args) const {
  if (backend_ == Backend::kRocksDb) {
    return std::make_unique<ServerProcess>(dir_.File("db"),
                                           std::move(extra_args));
  }
  std::vector<std::string> args = {"--postgres", conninfo_};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  return std::make_unique<ServerProcess>("", std::move(args));
}

}  // namespace tasktrail::testing
