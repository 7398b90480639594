// End-to-end test support: a real tasktraild process started on loopback on
// a port the kernel picks, running the tasktrail CLI and other programs, and
// client contexts with a deadline. Temporary directories are TempDir
// (temp_dir.h, included here).
//
// Thread safety: none of these classes is thread-safe; use one per test.
// RunCommand and DeadlineContext may be called from any thread.
#ifndef TASKTRAIL_TESTS_SUPPORT_TEST_SUPPORT_H_
#define TASKTRAIL_TESTS_SUPPORT_TEST_SUPPORT_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/struct.pb.h"
#include "grpcpp/client_context.h"
#include "tasktrail/v1/tracker.grpc.pb.h"
#include "tests/support/temp_dir.h"

namespace tasktrail::testing {

// Result of running a program to completion.
struct CommandResult {
  int exit_code = -1;  // 128+signal when killed by a signal
  std::string out;
  std::string err;
};

// A tasktraild child process listening on 127.0.0.1 on a port the kernel
// picked (the daemon writes it to --port-file; the test waits for that file).
class ServerProcess {
 public:
  // `db_dir` is the --db directory (none when empty, as with --postgres);
  // `extra_args` are appended to the command
  // (with a --listen of their own, it replaces the default 127.0.0.1:0).
  explicit ServerProcess(std::string db_dir,
                         std::vector<std::string> extra_args = {});
  // Sends SIGKILL if the process still runs.
  ~ServerProcess();

  // Starts the daemon and waits (up to 30 s) until it listens. Returns false
  // (with the daemon's stderr tail in `error`) when it exits or times out.
  bool Start(std::string* error = nullptr);

  // Sends `signal` without waiting (for SIGHUP).
  void Notify(int signal);
  // Waits up to 20 s until the daemon's log contains `text`.
  bool WaitForLog(const std::string& text) const;

  // Sends `signal` and waits for the process; returns the wait status.
  int Signal(int signal);
  // SIGKILL and reap.
  void Kill() { Signal(9); }
  // SIGTERM and reap; returns the exit code (or 128+signal).
  int Stop();

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& address() const { return address_; }
  // The daemon's stderr so far (its log).
  std::string Log() const;

  std::unique_ptr<v1::TaskTracker::Stub> NewStub() const;

  // Runs the tasktrail CLI against this server: `tasktrail --server ADDRESS
  // ARGS...`, with `env` added to its environment (see RunCommand).
  CommandResult RunCli(const std::vector<std::string>& args,
                       const std::vector<std::string>& env = {}) const;

 private:
  std::string db_dir_;
  std::vector<std::string> extra_args_;
  TempDir run_dir_;
  pid_t pid_ = -1;
  std::string address_;
};

// Runs `argv` (argv[0] is a path), with `env` added to the environment, and
// waits for it (killing it after 60 s).
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::string>& env = {});

// A port on 127.0.0.1 that was free when asked (the kernel picked it for a
// socket that is closed again), for a listener that cannot report the port
// it bound.
int FreeLoopbackPort();

// The answer to an HTTP/1.1 GET.
struct HttpResponse {
  int status = 0;  // 0: no answer (`body` says why)
  std::string body;
};

// GETs `path` from `host_port` (IPv4 HOST:PORT) over HTTP/1.1 with
// "Connection: close", reading until the server closes (a 10 s timeout per
// read). Handles a Content-Length or chunked body.
HttpResponse HttpGet(const std::string& host_port, const std::string& path);

// A program run in the background with its output in a file, killed
// (SIGKILL) when the object goes away if it still runs.
class BackgroundProcess {
 public:
  // Starts `argv` in `dir`, stdout and stderr appended to `log_path`.
  // Returns false when it cannot fork.
  bool Start(const std::vector<std::string>& argv, const std::string& dir,
             const std::string& log_path);
  // SIGTERM, then SIGKILL after 20 s; reaps it. Returns the wait status.
  int Stop();
  ~BackgroundProcess();

 private:
  pid_t pid_ = -1;
};

// Lower-case hex SHA-256 of `text` (by the openssl command line), as an
// auth file lists a token.
std::string Sha256Hex(const std::string& text);

// The text of an auth file giving `backend_token` to principal gateway-1
// (backend), `support_token` to alice (support) and `admin_token` to root
// (admin).
std::string AuthFileText(const std::string& backend_token,
                         const std::string& support_token,
                         const std::string& admin_token);

// "FIELD REASON" of each google.rpc.BadRequest violation in the details of
// `status`, in order; empty when it carries none.
std::vector<std::string> ViolatedFields(const grpc::Status& status);

// The lines of a log written with --log-format json, each parsed as one JSON
// object. Returns false, with `*error` quoting the first line that is not a
// JSON object (or when `log` does not end with a newline).
bool ParseJsonLog(const std::string& log,
                  std::vector<google::protobuf::Struct>* lines,
                  std::string* error);

// Submits a task of `model` (account acct-7, charged 10 units) and records
// a FAILED event with `http_status`, `error_code` and `message`; `*task_id`
// is the task's id once it is submitted. Returns the first call's error, or
// OK.
grpc::Status SubmitAndFail(v1::TaskTracker::Stub* stub,
                           const std::string& model, int http_status,
                           const std::string& error_code,
                           const std::string& message, std::string* task_id);

// A client context whose deadline is `seconds` from now, so that a test
// against a hung server fails instead of hanging.
std::unique_ptr<grpc::ClientContext> DeadlineContext(int seconds = 10);

// A DeadlineContext(`seconds`) that authenticates with `token` (the
// "authorization: Bearer TOKEN" header), or without a token when it is
// empty.
std::unique_ptr<grpc::ClientContext> AuthContext(const std::string& token,
                                                 int seconds = 60);

// Every task ListTasks lists for `request`, in its order, following
// next_page_token until it is empty (each page of the request's page_size).
// `*status` is OK, or the first failed call's status (the tasks listed before
// it are returned).
std::vector<v1::Task> ListAllTasks(v1::TaskTracker::Stub* stub,
                                   v1::ListTasksRequest request,
                                   grpc::Status* status);

// The ids of `tasks`, in order.
std::vector<std::string> TaskIds(const std::vector<v1::Task>& tasks);

// Paths of the built binaries.
std::string DaemonPath();
std::string CliPath();

}  // namespace tasktrail::testing

#endif  // TASKTRAIL_TESTS_SUPPORT_TEST_SUPPORT_H_
