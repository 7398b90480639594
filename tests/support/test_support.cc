#include "tests/support/test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"

namespace tasktrail::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<char*> ToArgv(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& arg : args)
    argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  return argv;
}

}  // namespace

ServerProcess::ServerProcess(std::string db_dir,
                             std::vector<std::string> extra_args)
    : db_dir_(std::move(db_dir)), extra_args_(std::move(extra_args)) {}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Kill();
}

bool ServerProcess::Start(std::string* error) {
  const std::string port_file = run_dir_.File("port");
  std::filesystem::remove(port_file);
  std::vector<std::string> args = {DaemonPath(), "--port-file", port_file};
  if (!db_dir_.empty()) {
    args.push_back("--db");
    args.push_back(db_dir_);
  }
  const bool listen_given = std::find(extra_args_.begin(), extra_args_.end(),
                                      "--listen") != extra_args_.end();
  if (!listen_given) {
    args.push_back("--listen");
    args.push_back("127.0.0.1:0");
  }
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  const std::string log_path = run_dir_.File("stderr.log");
  pid_t pid = fork();
  if (pid == 0) {
    int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log_fd >= 0) {
      dup2(log_fd, 2);
      dup2(log_fd, 1);
    }
    std::vector<char*> argv = ToArgv(args);
    execv(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string port = ReadFile(port_file);
    if (!port.empty() && port.back() == '\n') {
      port.pop_back();
      address_ = "127.0.0.1:" + port;
      return true;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (error != nullptr) *error = "tasktraild exited: " + Log();
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (error != nullptr) *error = "tasktraild did not listen in 30 s: " + Log();
  Kill();
  return false;
}

int ServerProcess::Signal(int signal) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

void ServerProcess::Notify(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

bool ServerProcess::WaitForLog(const std::string& text) const {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Log().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

int ServerProcess::Stop() {
  const int status = Signal(SIGTERM);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string ServerProcess::Log() const {
  return ReadFile(run_dir_.File("stderr.log"));
}

std::unique_ptr<v1::TaskTracker::Stub> ServerProcess::NewStub() const {
  return v1::TaskTracker::NewStub(
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
}

CommandResult ServerProcess::RunCli(const std::vector<std::string>& args,
                                    const std::vector<std::string>& env) const {
  std::vector<std::string> argv = {CliPath(), "--server", address_};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, env);
}

CommandResult RunCommand(const std::vector<std::string>& argv_strings,
                         const std::vector<std::string>& env) {
  TempDir io;
  const std::string out_path = io.File("out");
  const std::string err_path = io.File("err");
  pid_t pid = fork();
  if (pid == 0) {
    int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err_fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    for (const std::string& assignment : env) {
      putenv(const_cast<char*>(assignment.c_str()));
    }
    std::vector<char*> argv = ToArgv(argv_strings);
    execv(argv[0], argv.data());
    _exit(127);
  }
  CommandResult result;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.exit_code = 128 + WTERMSIG(status);
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  return result;
}

std::string Sha256Hex(const std::string& text) {
  CommandResult result = RunCommand(
      {"/bin/sh", "-c",
       "printf '%s' \"$0\" | openssl dgst -sha256 -r | cut -d' ' -f1", text});
  std::string digest = result.out;
  while (!digest.empty() && (digest.back() == '\n' || digest.back() == ' ')) {
    digest.pop_back();
  }
  return digest;
}

std::string AuthFileText(const std::string& backend_token,
                         const std::string& support_token,
                         const std::string& admin_token) {
  return "backend gateway-1 " + Sha256Hex(backend_token) + "\nsupport alice " +
         Sha256Hex(support_token) + "\nadmin root " + Sha256Hex(admin_token) +
         "\n";
}

std::vector<std::string> ViolatedFields(const grpc::Status& status) {
  std::vector<std::string> fields;
  google::rpc::Status details;
  if (!details.ParseFromString(status.error_details())) return fields;
  for (const auto& any : details.details()) {
    google::rpc::BadRequest bad_request;
    if (!any.UnpackTo(&bad_request)) continue;
    for (const auto& violation : bad_request.field_violations()) {
      fields.push_back(violation.field() + " " + violation.reason());
    }
  }
  return fields;
}

bool ParseJsonLog(const std::string& log,
                  std::vector<google::protobuf::Struct>* lines,
                  std::string* error) {
  lines->clear();
  if (!log.empty() && log.back() != '\n') {
    *error = "the log does not end with a newline";
    return false;
  }
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    google::protobuf::Struct object;
    const auto parsed =
        google::protobuf::util::JsonStringToMessage(std::string(line), &object);
    if (!parsed.ok()) {
      *error =
          "not a JSON object (" + parsed.ToString() + "): " + std::string(line);
      return false;
    }
    lines->push_back(std::move(object));
  }
  return true;
}

grpc::Status SubmitAndFail(v1::TaskTracker::Stub* stub,
                           const std::string& model, int http_status,
                           const std::string& error_code,
                           const std::string& message, std::string* task_id) {
  v1::SubmitTaskRequest submit;
  submit.set_account_id("acct-7");
  submit.set_model(model);
  submit.set_charge_units(10);
  submit.mutable_params()->set_prompt("a lighthouse at dusk");
  v1::SubmitTaskResponse submitted;
  grpc::Status status =
      stub->SubmitTask(DeadlineContext().get(), submit, &submitted);
  if (!status.ok()) return status;
  *task_id = submitted.task().task_id();
  v1::RecordEventRequest failed;
  failed.set_task_id(*task_id);
  failed.mutable_failed()->set_http_status(http_status);
  failed.mutable_failed()->set_error_code(error_code);
  failed.mutable_failed()->set_message(message);
  v1::RecordEventResponse recorded;
  return stub->RecordEvent(DeadlineContext().get(), failed, &recorded);
}

std::unique_ptr<grpc::ClientContext> DeadlineContext(int seconds) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(seconds));
  return context;
}

std::unique_ptr<grpc::ClientContext> AuthContext(const std::string& token,
                                                 int seconds) {
  std::unique_ptr<grpc::ClientContext> context = DeadlineContext(seconds);
  if (!token.empty()) {
    context->AddMetadata("authorization", "Bearer " + token);
  }
  return context;
}

std::vector<v1::Task> ListAllTasks(v1::TaskTracker::Stub* stub,
                                   v1::ListTasksRequest request,
                                   grpc::Status* status) {
  std::vector<v1::Task> tasks;
  while (true) {
    v1::ListTasksResponse response;
    *status = stub->ListTasks(DeadlineContext().get(), request, &response);
    if (!status->ok()) return tasks;
    tasks.insert(tasks.end(), response.tasks().begin(), response.tasks().end());
    if (response.next_page_token().empty()) return tasks;
    request.set_page_token(response.next_page_token());
  }
}

std::vector<std::string> TaskIds(const std::vector<v1::Task>& tasks) {
  std::vector<std::string> ids;
  ids.reserve(tasks.size());
  for (const v1::Task& task : tasks) ids.push_back(task.task_id());
  return ids;
}

std::string DaemonPath() { return TASKTRAILD_PATH; }
std::string CliPath() { return TASKTRAIL_CLI_PATH; }

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

namespace {

// The body of a chunked transfer encoding: hex size CRLF data CRLF ... 0.
std::string Unchunk(const std::string& chunked) {
  std::string body;
  size_t at = 0;
  while (at < chunked.size()) {
    const size_t line_end = chunked.find("\r\n", at);
    if (line_end == std::string::npos) break;
    const size_t size =
        std::stoul(chunked.substr(at, line_end - at), nullptr, 16);
    if (size == 0) break;
    body += chunked.substr(line_end + 2, size);
    at = line_end + 2 + size + 2;
  }
  return body;
}

}  // namespace

HttpResponse HttpGet(const std::string& host_port, const std::string& path) {
  HttpResponse response;
  const size_t colon = host_port.rfind(':');
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(std::stoi(host_port.substr(colon + 1)));
  if (inet_pton(AF_INET, host_port.substr(0, colon).c_str(),
                &address.sin_addr) != 1) {
    response.body = "not an IPv4 address: " + host_port;
    return response;
  }
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    response.body = "socket failed";
    return response;
  }
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    response.body = "cannot connect to " + host_port;
    return response;
  }
  const std::string request = "GET " + path +
                              " HTTP/1.1\r\nHost: " + host_port +
                              "\r\nConnection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n =
        send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buffer[16384];
  while (true) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    raw.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  const size_t header_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || header_end == std::string::npos) {
    response.body = "no HTTP answer: " + raw.substr(0, 200);
    return response;
  }
  response.status = std::stoi(raw.substr(9, 3));
  std::string headers = raw.substr(0, header_end);
  std::transform(headers.begin(), headers.end(), headers.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  std::string body = raw.substr(header_end + 4);
  if (headers.find("transfer-encoding: chunked") != std::string::npos) {
    body = Unchunk(body);
  }
  response.body = std::move(body);
  return response;
}

bool BackgroundProcess::Start(const std::vector<std::string>& args,
                              const std::string& dir,
                              const std::string& log_path) {
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log_fd >= 0) {
      dup2(log_fd, 2);
      dup2(log_fd, 1);
    }
    if (chdir(dir.c_str()) != 0) _exit(126);
    std::vector<char*> argv = ToArgv(args);
    execv(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;
  return true;
}

int BackgroundProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
  return status;
}

BackgroundProcess::~BackgroundProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

}  // namespace tasktrail::testing
