#include "tests/support/postgres_cluster.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

constexpr char kServerUser[] = "postgres";
constexpr char kSuperuser[] = "tasktrail";
constexpr int kStartAttempts = 3;

// Makes `path` a directory owned by the server's user when running as root.
absl::Status MakeServerDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0) {
    return absl::InternalError(absl::StrCat("mkdir ", path));
  }
  if (geteuid() != 0) return absl::OkStatus();
  const passwd* user = getpwnam(kServerUser);
  if (user == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "running as root and there is no '", kServerUser,
        "' user to run PostgreSQL as (the postgresql package creates it)"));
  }
  if (chown(path.c_str(), user->pw_uid, user->pw_gid) != 0) {
    return absl::InternalError(absl::StrCat("chown ", path));
  }
  return absl::OkStatus();
}

std::string CommandText(const std::vector<std::string>& argv) {
  std::string text;
  for (const std::string& arg : argv) absl::StrAppend(&text, " ", arg);
  return text;
}

// What Detach writes: where a detached cluster is.
struct DetachedCluster {
  int port = 0;
  std::string root;
};

// Reads the file Detach wrote ("port=N" and "root=DIR" lines).
absl::StatusOr<DetachedCluster> ReadDetached(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot read ", path, " (", kSharedClusterVariable,
        "): the ctest fixture that starts the shared PostgreSQL cluster did "
        "not run or did not start it"));
  }
  DetachedCluster detached;
  std::string line;
  while (std::getline(in, line)) {
    const std::pair<std::string, std::string> field =
        absl::StrSplit(line, absl::MaxSplits('=', 1));
    if (field.first == "port") {
      if (!absl::SimpleAtoi(field.second, &detached.port)) detached.port = 0;
    } else if (field.first == "root") {
      detached.root = field.second;
    }
  }
  if (detached.port <= 0 || detached.root.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " does not name a cluster's port and directory"));
  }
  return detached;
}

}  // namespace

std::string PostgresCluster::ServerBinDir() {
  const std::filesystem::path root = "/usr/lib/postgresql";
  std::error_code error;
  std::vector<std::pair<int, std::string>> versions;
  for (const auto& entry : std::filesystem::directory_iterator(root, error)) {
    const std::string name = entry.path().filename().string();
    const std::string bin = entry.path().string() + "/bin";
    if (access((bin + "/initdb").c_str(), X_OK) != 0 ||
        access((bin + "/pg_ctl").c_str(), X_OK) != 0) {
      continue;
    }
    versions.emplace_back(std::atoi(name.c_str()), bin);
  }
  if (versions.empty()) return "";
  return std::max_element(versions.begin(), versions.end())->second;
}

PostgresCluster::PostgresCluster(std::string bin_dir, int port,
                                 std::string root,
                                 std::unique_ptr<TempDir> owned_root)
    : bin_dir_(std::move(bin_dir)),
      port_(port),
      root_(std::move(root)),
      owned_root_(std::move(owned_root)),
      data_dir_(root_ + "/data"),
      log_path_(root_ + "/log/server.log") {}

absl::StatusOr<std::unique_ptr<PostgresCluster>> PostgresCluster::Start() {
  std::string bin_dir = ServerBinDir();
  if (bin_dir.empty()) {
    return absl::FailedPreconditionError(
        "no PostgreSQL server is installed (/usr/lib/postgresql/*/bin/initdb; "
        "Debian package postgresql)");
  }
  auto root = std::make_unique<TempDir>("tasktrail-pg");
  const std::string root_path = root->path();
  std::unique_ptr<PostgresCluster> cluster(
      new PostgresCluster(std::move(bin_dir), 0, root_path, std::move(root)));
  // The server's user must be able to reach its directories inside ours.
  if (chmod(root_path.c_str(), 0711) != 0) {
    return absl::InternalError("chmod " + root_path);
  }
  for (const std::string& dir :
       {cluster->data_dir_, root_path + "/log", root_path + "/socket"}) {
    absl::Status made = MakeServerDir(dir);
    if (!made.ok()) return made;
  }
  const std::vector<std::string> initdb = cluster->AsServerUser(
      {cluster->bin_dir_ + "/initdb", "--pgdata=" + cluster->data_dir_,
       std::string("--username=") + kSuperuser, "--auth=trust",
       "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"});
  const CommandResult made = RunCommand(initdb);
  if (made.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("initdb failed (exit ", made.exit_code,
                     "):", CommandText(initdb), "\n", made.out, made.err));
  }
  absl::Status started;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    cluster->port_ = FreeLoopbackPort();
    started = cluster->StartServer();
    if (started.ok()) return cluster;
  }
  return started;
}

absl::StatusOr<TestDatabase> PostgresCluster::FreshDatabase(
    const std::string& prefix, ClusterUse use) {
  // A cluster that cannot start is most often a missing package: say so.
  const auto no_server = [](const absl::Status& status) {
    return absl::Status(
        status.code(),
        absl::StrCat("the PostgreSQL tests need a PostgreSQL server "
                     "(scripts/install-deps.sh --test installs it): ",
                     status.message()));
  };
  static absl::Mutex mutex(absl::kConstInit);
  // Destroyed when the process exits (and so stopped, when it started it).
  static std::unique_ptr<PostgresCluster> shared ABSL_GUARDED_BY(mutex);
  static absl::Status shared_error ABSL_GUARDED_BY(mutex);
  static int databases_made ABSL_GUARDED_BY(mutex) = 0;
  absl::MutexLock lock(&mutex);
  TestDatabase database;
  if (use == ClusterUse::kOwn) {
    absl::StatusOr<std::unique_ptr<PostgresCluster>> started = Start();
    if (!started.ok()) return no_server(started.status());
    database.own_cluster = *std::move(started);
    database.cluster = database.own_cluster.get();
  } else {
    if (shared == nullptr && shared_error.ok()) {
      const char* detached = getenv(kSharedClusterVariable);
      absl::StatusOr<std::unique_ptr<PostgresCluster>> found =
          detached != nullptr && *detached != '\0' ? Attach(detached) : Start();
      if (found.ok()) {
        shared = *std::move(found);
        shared->shared_ = true;
      } else {
        shared_error = no_server(found.status());
      }
    }
    if (!shared_error.ok()) return shared_error;
    database.cluster = shared.get();
  }
  // The process id keeps the names of test processes sharing a cluster
  // apart.
  database.name = absl::StrCat(prefix, "_", getpid(), "_", ++databases_made);
  absl::StatusOr<std::string> made =
      database.cluster->Psql("CREATE DATABASE " + database.name);
  if (!made.ok()) return made.status();
  database.conninfo = database.cluster->ConnInfo(database.name);
  return database;
}

absl::Status PostgresCluster::Detach(const std::string& path) {
  const std::string written = path + ".tmp";
  {
    std::ofstream out(written, std::ios::trunc);
    out << "port=" << port_ << "\nroot=" << root_ << "\n";
    out.close();
    if (!out) return absl::InternalError("cannot write " + written);
  }
  if (std::rename(written.c_str(), path.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", written, " to ", path));
  }
  owns_server_ = false;
  if (owned_root_ != nullptr) owned_root_->Keep();
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PostgresCluster>> PostgresCluster::Attach(
    const std::string& path) {
  absl::StatusOr<DetachedCluster> detached = ReadDetached(path);
  if (!detached.ok()) return detached.status();
  std::string bin_dir = ServerBinDir();
  if (bin_dir.empty()) {
    return absl::FailedPreconditionError(
        "no PostgreSQL server is installed (/usr/lib/postgresql/*/bin/initdb; "
        "Debian package postgresql)");
  }
  std::unique_ptr<PostgresCluster> cluster(new PostgresCluster(
      std::move(bin_dir), detached->port, detached->root, nullptr));
  cluster->running_ = true;
  cluster->owns_server_ = false;
  cluster->shared_ = true;
  return cluster;
}

absl::Status PostgresCluster::StopDetached(const std::string& path) {
  if (access(path.c_str(), F_OK) != 0) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<PostgresCluster>> cluster = Attach(path);
  if (!cluster.ok()) return cluster.status();
  // Immediate: the data is removed next, so the shutdown checkpoint (which
  // after a whole test run's databases took minutes on a busy disk) is
  // skipped.
  absl::Status stopped = (*cluster)->StopServer("immediate");
  if (!stopped.ok()) return stopped;
  TempDir::RemoveTree((*cluster)->root_);
  std::remove(path.c_str());
  return absl::OkStatus();
}

PostgresCluster::~PostgresCluster() {
  if (owns_server_) StopServer().IgnoreError();
}

std::string PostgresCluster::ConnInfo(const std::string& dbname) const {
  return absl::StrCat("host=127.0.0.1 port=", port_, " user=", kSuperuser,
                      " dbname=", dbname, " connect_timeout=10");
}

std::vector<std::string> PostgresCluster::AsServerUser(
    std::vector<std::string> argv) const {
  if (geteuid() != 0) return argv;
  std::vector<std::string> wrapped = {"/usr/sbin/runuser", "-u", kServerUser,
                                      "--"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

absl::Status PostgresCluster::StartServer() {
  const std::string options =
      absl::StrCat("-p ", port_, " -k ", root_, "/socket",
                   " -c listen_addresses=127.0.0.1 -c max_connections=200");
  const CommandResult result = RunCommand(AsServerUser(
      {bin_dir_ + "/pg_ctl", "--pgdata=" + data_dir_, "--log=" + log_path_,
       "--wait", "--timeout=50", "--options=" + options, "start"}));
  if (result.exit_code != 0) {
    return absl::InternalError(absl::StrCat(
        "pg_ctl start failed on port ", port_, " (exit ", result.exit_code,
        "): ", result.out, result.err, "\nserver log:\n", LogTail()));
  }
  running_ = true;
  return absl::OkStatus();
}

absl::Status PostgresCluster::Stop() {
  if (shared_) {
    return absl::FailedPreconditionError(
        "the shared test cluster is not stopped by a test: other tests use "
        "it (FreshDatabase with ClusterUse::kOwn gives a cluster to stop)");
  }
  return StopServer();
}

absl::Status PostgresCluster::StopServer(const std::string& mode) {
  if (!running_) return absl::OkStatus();
  const CommandResult result = RunCommand(
      AsServerUser({bin_dir_ + "/pg_ctl", "--pgdata=" + data_dir_, "--wait",
                    "--timeout=50", "--mode=" + mode, "stop"}));
  if (result.exit_code != 0) {
    return absl::InternalError(absl::StrCat("pg_ctl stop failed (exit ",
                                            result.exit_code, "): ", result.out,
                                            result.err));
  }
  running_ = false;
  return absl::OkStatus();
}

absl::Status PostgresCluster::Restart() {
  if (shared_) {
    return absl::FailedPreconditionError(
        "the shared test cluster is not restarted by a test");
  }
  if (running_) return absl::FailedPreconditionError("the server is running");
  return StartServer();
}

absl::StatusOr<std::string> PostgresCluster::Psql(const std::string& sql,
                                                  const std::string& dbname) {
  const CommandResult result =
      RunCommand({bin_dir_ + "/psql", "--no-psqlrc", "--no-align",
                  "--tuples-only", "--set=ON_ERROR_STOP=1",
                  "--dbname=" + ConnInfo(dbname), "--command=" + sql});
  if (result.exit_code != 0) {
    return absl::InternalError(absl::StrCat(
        "psql failed (exit ", result.exit_code, "): ", result.err));
  }
  return result.out;
}

std::string PostgresCluster::LogTail() const {
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  std::string log = text.str();
  constexpr size_t kTail = 4000;
  return log.size() > kTail ? log.substr(log.size() - kTail) : log;
}

}  // namespace tasktrail::testing
