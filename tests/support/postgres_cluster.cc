#include "tests/support/postgres_cluster.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
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

PostgresCluster::PostgresCluster(std::string bin_dir, int port)
    : bin_dir_(std::move(bin_dir)), port_(port) {
  data_dir_ = root_.File("data");
  log_path_ = root_.File("log/server.log");
}

absl::StatusOr<std::unique_ptr<PostgresCluster>> PostgresCluster::Start() {
  std::string bin_dir = ServerBinDir();
  if (bin_dir.empty()) {
    return absl::FailedPreconditionError(
        "no PostgreSQL server is installed (/usr/lib/postgresql/*/bin/initdb; "
        "Debian package postgresql)");
  }
  std::unique_ptr<PostgresCluster> cluster(
      new PostgresCluster(std::move(bin_dir), 0));
  // The server's user must be able to reach its directories inside ours.
  if (chmod(cluster->root_.path().c_str(), 0711) != 0) {
    return absl::InternalError("chmod " + cluster->root_.path());
  }
  for (const std::string& dir : {cluster->data_dir_, cluster->root_.File("log"),
                                 cluster->root_.File("socket")}) {
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
    const std::string& prefix) {
  static absl::Mutex mutex(absl::kConstInit);
  // Destroyed (and so stopped) when the process exits.
  static std::unique_ptr<PostgresCluster> shared ABSL_GUARDED_BY(mutex);
  static absl::Status start_error ABSL_GUARDED_BY(mutex);
  static int databases_made ABSL_GUARDED_BY(mutex) = 0;
  absl::MutexLock lock(&mutex);
  if (shared == nullptr && start_error.ok()) {
    absl::StatusOr<std::unique_ptr<PostgresCluster>> started = Start();
    if (started.ok()) {
      shared = *std::move(started);
    } else {
      start_error = started.status();
    }
  }
  if (!start_error.ok()) return start_error;
  if (!shared->running()) {
    absl::Status restarted = shared->Restart();
    if (!restarted.ok()) return restarted;
  }
  TestDatabase database;
  database.cluster = shared.get();
  database.name = absl::StrCat(prefix, "_", ++databases_made);
  absl::StatusOr<std::string> made =
      shared->Psql("CREATE DATABASE " + database.name);
  if (!made.ok()) return made.status();
  database.conninfo = shared->ConnInfo(database.name);
  return database;
}

PostgresCluster::~PostgresCluster() { Stop().IgnoreError(); }

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
      absl::StrCat("-p ", port_, " -k ", root_.File("socket"),
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
  if (!running_) return absl::OkStatus();
  const CommandResult result = RunCommand(
      AsServerUser({bin_dir_ + "/pg_ctl", "--pgdata=" + data_dir_, "--wait",
                    "--timeout=50", "--mode=fast", "stop"}));
  if (result.exit_code != 0) {
    return absl::InternalError(absl::StrCat("pg_ctl stop failed (exit ",
                                            result.exit_code, "): ", result.out,
                                            result.err));
  }
  running_ = false;
  return absl::OkStatus();
}

absl::Status PostgresCluster::Restart() {
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
