// What an outside black-box probe broke, each through the real daemon: header
// blocks over the metadata limit (also from a client that never acknowledges
// the server's HTTP/2 settings), request bytes that do not parse, the bearer
// scheme and control characters in it, running out of file descriptors, and
// operator files that are not small regular files.
//
// A few tests speak HTTP/2 on a raw socket, as such a probe does: gRPC's own
// client refuses to send what they send.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr char kService[] = "/tasktrail.v1.TaskTracker/";

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(10));
  return context;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc | std::ios::binary);
  out << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A one-model catalog.
std::string SmallCatalog(const std::string& version) {
  return R"({"catalog_version": ")" + version + R"(", "models": [{"name":
         "model-a", "kind": "TASK_KIND_VIDEO", "aspect_ratios": ["16:9"],
         "resolutions": [{"name": "720p"}], "durations": [5],
         "defaults": {"aspect_ratio": "16:9", "resolution": "720p",
                      "duration_seconds": 5}}]})";
}

v1::SubmitTaskResponse SubmitOne(v1::TaskTracker::Stub* stub) {
  v1::SubmitTaskRequest request;
  request.set_account_id("acct-1");
  request.set_model("gen4_turbo");
  request.mutable_params()->set_aspect_ratio("1280:720");
  request.mutable_params()->add_reference_images()->set_uri(
      "https://cdn.example.com/ref.png");
  v1::SubmitTaskResponse response;
  EXPECT_TRUE(stub->SubmitTask(Context().get(), request, &response).ok());
  return response;
}

int Port(const std::string& address) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port));
  return port;
}

// A TCP connection to 127.0.0.1:`port`, or -1.
int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    return -1;
  }
  return fd;
}

// ---------------------------------------------------------------------------
// A raw HTTP/2 client: enough framing and HPACK to send a gRPC call with any
// header and to see how each stream ended.

constexpr uint8_t kData = 0;
constexpr uint8_t kHeaders = 1;
constexpr uint8_t kRstStream = 3;
constexpr uint8_t kSettings = 4;
constexpr uint8_t kGoaway = 7;
constexpr uint8_t kContinuation = 9;
constexpr uint8_t kEndStream = 0x1;
constexpr uint8_t kEndHeaders = 0x4;
constexpr size_t kMaxFrame = 16384;  // the HTTP/2 default

std::string Frame(uint8_t type, uint8_t flags, uint32_t stream,
                  const std::string& payload) {
  std::string frame;
  const size_t length = payload.size();
  frame.push_back(static_cast<char>(length >> 16));
  frame.push_back(static_cast<char>(length >> 8));
  frame.push_back(static_cast<char>(length));
  frame.push_back(static_cast<char>(type));
  frame.push_back(static_cast<char>(flags));
  for (int shift = 24; shift >= 0; shift -= 8) {
    frame.push_back(static_cast<char>((stream >> shift) & 0xff));
  }
  return frame + payload;
}

// An HPACK integer with a 7-bit prefix (RFC 7541 5.1), no Huffman bit.
std::string HpackLength(size_t value) {
  std::string out;
  if (value < 127) {
    out.push_back(static_cast<char>(value));
    return out;
  }
  out.push_back(static_cast<char>(127));
  value -= 127;
  while (value >= 128) {
    out.push_back(static_cast<char>((value & 127) | 128));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
  return out;
}

// A literal header field without indexing, with a new name (RFC 7541 6.2.2).
std::string Literal(const std::string& name, const std::string& value) {
  return std::string(1, '\0') + HpackLength(name.size()) + name +
         HpackLength(value.size()) + value;
}

// How one stream ended.
struct StreamEnd {
  bool ended = false;     // trailers with END_STREAM, or RST_STREAM
  bool got_data = false;  // a DATA frame with a response message
  int grpc_status = -1;   // from literal trailers; -1 when not seen
};

class RawHttp2 {
 public:
  // Connects and sends the client preface and an empty SETTINGS frame. The
  // server's SETTINGS are never acknowledged, as the outside probe did.
  explicit RawHttp2(int port) : fd_(ConnectLoopback(port)) {
    if (fd_ >= 0) {
      SendAll("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
              Frame(kSettings, 0, 0, std::string()));
    }
  }
  ~RawHttp2() {
    if (fd_ >= 0) close(fd_);
  }
  RawHttp2(const RawHttp2&) = delete;
  RawHttp2& operator=(const RawHttp2&) = delete;

  bool connected() const { return fd_ >= 0; }

  // Sends a call of `method` on `stream` (odd, increasing): the header block
  // in HEADERS and CONTINUATION frames, then `message` in a DATA frame that
  // ends the stream.
  bool SendCall(uint32_t stream, const std::string& method,
                const std::vector<std::pair<std::string, std::string>>& extra,
                const std::string& message) {
    std::string block =
        Literal(":method", "POST") + Literal(":scheme", "http") +
        Literal(":path", kService + method) +
        Literal(":authority", "localhost") +
        Literal("content-type", "application/grpc") + Literal("te", "trailers");
    for (const auto& [name, value] : extra) block += Literal(name, value);
    std::string frames;
    for (size_t at = 0; at < block.size(); at += kMaxFrame) {
      const bool last = at + kMaxFrame >= block.size();
      frames +=
          Frame(at == 0 ? kHeaders : kContinuation, last ? kEndHeaders : 0,
                stream, block.substr(at, kMaxFrame));
    }
    std::string body(1, '\0');  // not compressed
    for (int shift = 24; shift >= 0; shift -= 8) {
      body.push_back(static_cast<char>((message.size() >> shift) & 0xff));
    }
    frames += Frame(kData, kEndStream, stream, body + message);
    return SendAll(frames);
  }

  // Reads frames until `count` streams have ended, the connection closes or
  // `timeout` passes; returns what is known of each stream.
  const std::map<uint32_t, StreamEnd>& Await(size_t count,
                                             std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Ended() < count && fd_ >= 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - Clock::now());
      if (left.count() <= 0) break;
      pollfd readable{fd_, POLLIN, 0};
      if (poll(&readable, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[65536];
      const ssize_t got = recv(fd_, chunk, sizeof(chunk), 0);
      if (got <= 0) break;
      pending_.append(chunk, static_cast<size_t>(got));
      ParseFrames();
    }
    return streams_;
  }

 private:
  bool SendAll(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n =
          send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  size_t Ended() const {
    return std::count_if(streams_.begin(), streams_.end(),
                         [](const auto& entry) { return entry.second.ended; });
  }

  void ParseFrames() {
    while (pending_.size() >= 9) {
      const auto byte = [&](size_t i) {
        return static_cast<uint32_t>(static_cast<unsigned char>(pending_[i]));
      };
      const size_t length = (byte(0) << 16) | (byte(1) << 8) | byte(2);
      if (pending_.size() < 9 + length) return;
      const uint8_t type = static_cast<uint8_t>(byte(3));
      const uint8_t flags = static_cast<uint8_t>(byte(4));
      const uint32_t stream =
          ((byte(5) & 0x7f) << 24) | (byte(6) << 16) | (byte(7) << 8) | byte(8);
      const std::string payload = pending_.substr(9, length);
      pending_.erase(0, 9 + length);
      if (type == kGoaway) continue;
      if (stream == 0) continue;
      StreamEnd& end = streams_[stream];
      if (type == kData && length > 0) end.got_data = true;
      if (type == kRstStream) end.ended = true;
      if (type == kHeaders) {
        // 1.51 sends grpc-status as a literal the first time on a
        // connection: the name, then a plain length byte and the digits.
        const size_t at = payload.find("grpc-status");
        if (at != std::string::npos && at + 12 < payload.size()) {
          const size_t digits =
              static_cast<unsigned char>(payload[at + 11]) & 0x7f;
          absl::SimpleAtoi(payload.substr(at + 12, digits), &end.grpc_status);
        }
        if (flags & kEndStream) end.ended = true;
      }
    }
  }

  int fd_;
  std::string pending_;
  std::map<uint32_t, StreamEnd> streams_;
};

// ---------------------------------------------------------------------------
// The daemon's process, as the kernel sees it.

// The pid of the tasktraild whose command line names `db_dir`, or -1.
pid_t DaemonPid(const std::string& db_dir) {
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return -1;
  pid_t found = -1;
  while (dirent* entry = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    const std::string cmdline =
        ReadFile("/proc/" + std::string(entry->d_name) + "/cmdline");
    const std::vector<std::string> args =
        absl::StrSplit(cmdline, '\0', absl::SkipEmpty());
    if (!args.empty() && args[0] == DaemonPath() &&
        std::find(args.begin(), args.end(), db_dir) != args.end()) {
      found = pid;
      break;
    }
  }
  closedir(proc);
  return found;
}

// Resident memory of `pid` in KiB (VmRSS), or -1.
int64_t ResidentKib(pid_t pid) {
  std::istringstream status(
      ReadFile("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      std::istringstream fields(line.substr(6));
      int64_t kib = -1;
      fields >> kib;
      return kib;
    }
  }
  return -1;
}

// Under AddressSanitizer the daemon's resident memory is mostly the
// sanitizer's (freed blocks held in quarantine, redzones, shadow memory), so
// a bound on it says nothing about the daemon's own use.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kResidentMemoryMeasuresTheDaemon = false;
#else
constexpr bool kResidentMemoryMeasuresTheDaemon = true;
#endif

// Samples a process's resident memory every 10 ms and keeps the largest.
class PeakRss {
 public:
  explicit PeakRss(pid_t pid)
      : thread_([this, pid] {
          while (!stop_.HasBeenNotified()) {
            peak_kib_ = std::max<int64_t>(peak_kib_, ResidentKib(pid));
            stop_.WaitForNotificationWithTimeout(absl::Milliseconds(10));
          }
          peak_kib_ = std::max<int64_t>(peak_kib_, ResidentKib(pid));
        }) {}
  ~PeakRss() { Stop(); }

  // Stops sampling; the largest reading in MiB.
  int64_t Stop() {
    if (thread_.joinable()) {
      stop_.Notify();
      thread_.join();
    }
    return peak_kib_ / 1024;
  }

 private:
  absl::Notification stop_;
  std::atomic<int64_t> peak_kib_{0};
  std::thread thread_;
};

// A tasktraild started with a given RLIMIT_NOFILE (as `prlimit --nofile`
// would), on 127.0.0.1 with a kernel-picked port.
class LimitedDaemon {
 public:
  LimitedDaemon(rlim_t soft, rlim_t hard) : soft_(soft), hard_(hard) {}
  ~LimitedDaemon() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  bool Start(std::string* error) {
    const std::string port_file = dir_.File("port");
    const std::string log = dir_.File("stderr.log");
    std::vector<std::string> args = {
        DaemonPath(),  "--db",        dir_.File("db"), "--listen",
        "127.0.0.1:0", "--port-file", port_file};
    pid_ = fork();
    if (pid_ == 0) {
      const rlimit limit{soft_, hard_};
      if (setrlimit(RLIMIT_NOFILE, &limit) != 0) _exit(126);
      const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (log_fd >= 0) {
        dup2(log_fd, 1);
        dup2(log_fd, 2);
      }
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
      std::string port = ReadFile(port_file);
      if (!port.empty() && port.back() == '\n') {
        port.pop_back();
        address_ = "127.0.0.1:" + port;
        return true;
      }
      if (Exited(nullptr)) {
        *error = "tasktraild exited: " + Log();
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    *error = "tasktraild did not listen: " + Log();
    return false;
  }

  // Waits up to `timeout` for the daemon to exit; its exit code (128+signal
  // when killed), or -1 when it still runs.
  int WaitExit(std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    int code = -1;
    while (!Exited(&code) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return code;
  }

  std::string Log() const { return ReadFile(dir_.File("stderr.log")); }
  const std::string& address() const { return address_; }

 private:
  bool Exited(int* code) {
    if (pid_ <= 0) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
    pid_ = -1;
    if (code != nullptr) {
      *code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return true;
  }

  const rlim_t soft_;
  const rlim_t hard_;
  TempDir dir_;
  pid_t pid_ = -1;
  std::string address_;
};

// A gRPC call through a fresh channel: the listener must accept it.
grpc::Status FreshListModels(const std::string& address) {
  auto stub = v1::TaskTracker::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  v1::ListModelsResponse response;
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(5));
  return stub->ListModels(context.get(), v1::ListModelsRequest(), &response);
}

// ---------------------------------------------------------------------------
// Item 2: metadata size.

TEST(MetadataLimitTest, AOneMegabyteHeaderIsRefusedEvenWithoutAcknowledging) {
  TempDir db;
  ServerProcess server(db.path());
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  auto stub = server.NewStub();
  v1::GetTaskRequest get;
  get.set_task_id(SubmitOne(stub.get()).task().task_id());
  const std::string message = get.SerializeAsString();

  // The raw client is heard: a small header gets the task.
  {
    RawHttp2 small(Port(server.address()));
    ASSERT_TRUE(small.connected());
    ASSERT_TRUE(small.SendCall(1, "GetTask", {{"x-probe", "small"}}, message));
    const StreamEnd end = small.Await(1, std::chrono::seconds(20)).at(1);
    EXPECT_TRUE(end.ended);
    EXPECT_TRUE(end.got_data);
    EXPECT_EQ(end.grpc_status, 0);
  }
  RawHttp2 big(Port(server.address()));
  ASSERT_TRUE(big.connected());
  ASSERT_TRUE(big.SendCall(1, "GetTask",
                           {{"x-probe", std::string(1 << 20, 'a')}}, message));
  const auto& ends = big.Await(1, std::chrono::seconds(20));
  ASSERT_EQ(ends.count(1), 1u);
  EXPECT_TRUE(ends.at(1).ended);
  EXPECT_FALSE(ends.at(1).got_data) << "the task was served";
  EXPECT_EQ(ends.at(1).grpc_status,
            static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));

  // gRPC's own client is refused too.
  auto context = Context();
  context->AddMetadata("x-probe", std::string(1 << 20, 'a'));
  v1::Task task;
  EXPECT_EQ(stub->GetTask(context.get(), get, &task).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(MetadataLimitTest, ManyStreamsWithLargeHeadersAreEndedAndFreed) {
  TempDir db;
  ServerProcess server(db.path());
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  auto stub = server.NewStub();
  // A task that stays open: a watch admitted on it would last.
  v1::WatchTaskRequest watch;
  watch.set_task_id(SubmitOne(stub.get()).task().task_id());
  const std::string message = watch.SerializeAsString();
  const pid_t pid = DaemonPid(db.path());
  ASSERT_GT(pid, 0);

  // The probe's pattern, scaled to run in a few seconds (gRPC 1.51 re-parses
  // a header block at each CONTINUATION frame): 4 connections x 100
  // WatchTask streams, each with a 256 KiB header, from a client that never
  // acknowledges the settings. Before the limit, each stream was admitted
  // and held its header for the stream's life.
  constexpr int kConnections = 4;
  constexpr uint32_t kStreams = 100;
  const std::string header(256 << 10, 'h');
  PeakRss peak(pid);
  std::vector<std::thread> clients;
  std::atomic<int> ended{0};
  for (int c = 0; c < kConnections; ++c) {
    clients.emplace_back([&] {
      RawHttp2 connection(Port(server.address()));
      if (!connection.connected()) return;
      for (uint32_t i = 0; i < kStreams; ++i) {
        if (!connection.SendCall(2 * i + 1, "WatchTask", {{"x-probe", header}},
                                 message)) {
          break;
        }
      }
      // A bound, not a pace: it returns as soon as every stream has ended
      // (a few seconds; far longer under a sanitizer on a busy machine).
      const auto& ends = connection.Await(kStreams, std::chrono::seconds(180));
      for (const auto& [stream, end] : ends) ended += end.ended ? 1 : 0;
    });
  }
  for (std::thread& client : clients) client.join();
  const int64_t peak_mib = peak.Stop();
  if (kResidentMemoryMeasuresTheDaemon) {
    EXPECT_LT(peak_mib, 300)
        << "resident memory peaked at " << peak_mib << " MiB";
  }
  EXPECT_EQ(ended.load(), kConnections * static_cast<int>(kStreams))
      << "every oversized call is ended, none is held open";

  // A fresh client is served.
  v1::GetTaskRequest get;
  get.set_task_id(watch.task_id());
  v1::Task task;
  EXPECT_TRUE(server.NewStub()->GetTask(Context().get(), get, &task).ok());
}

// ---------------------------------------------------------------------------
// Item 6: request bytes that do not parse.

// Calls `method` with `bytes` as its request through the generic stub.
grpc::Status RawCall(const std::string& address, const std::string& method,
                     const std::string& bytes,
                     const std::string& authorization = "") {
  grpc::GenericStub generic(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::Slice slice(bytes);
  const grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  auto context = Context();
  if (!authorization.empty()) {
    context->AddMetadata("authorization", authorization);
  }
  grpc::Status status;
  absl::Notification answered;
  generic.UnaryCall(context.get(), kService + method, grpc::StubOptions(),
                    &request, &response, [&](grpc::Status result) {
                      status = std::move(result);
                      answered.Notify();
                    });
  answered.WaitForNotification();  // the context's deadline bounds the wait
  return status;
}

// A length-delimited field 1 that claims 100 bytes and has 2: no message
// parses it.
const std::string kTruncated = std::string("\x0a\x64", 2) + "ab";

// The request `type` with its first string field set to bytes that are not
// UTF-8, or empty when it has no string field.
std::string InvalidUtf8(const google::protobuf::Descriptor* type) {
  for (int i = 0; i < type->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = type->field(i);
    if (field->type() != google::protobuf::FieldDescriptor::TYPE_STRING) {
      continue;
    }
    std::string bytes;
    bytes.push_back(static_cast<char>((field->number() << 3) | 2));
    bytes += std::string("\x02\xff\xfe", 3);
    return bytes;
  }
  return "";
}

const google::protobuf::ServiceDescriptor* TrackerService() {
  return google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      "tasktrail.v1.TaskTracker");
}

TEST(MalformedBytesTest, EveryRpcAnswersInvalidArgumentNamingTheRequest) {
  TempDir db;
  ServerProcess server(db.path());
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  const google::protobuf::ServiceDescriptor* service = TrackerService();
  ASSERT_NE(service, nullptr);
  ASSERT_EQ(service->method_count(), 17);
  for (int m = 0; m < service->method_count(); ++m) {
    const google::protobuf::MethodDescriptor* method = service->method(m);
    std::vector<std::string> inputs = {kTruncated};
    const std::string utf8 = InvalidUtf8(method->input_type());
    if (!utf8.empty()) inputs.push_back(utf8);
    for (const std::string& bytes : inputs) {
      SCOPED_TRACE(method->name() +
                   (bytes == kTruncated ? ": truncated" : ": invalid UTF-8"));
      const grpc::Status status =
          RawCall(server.address(), method->name(), bytes);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << status.error_message();
      EXPECT_THAT(status.error_message(), HasSubstr("does not parse"));
      EXPECT_THAT(status.error_message(),
                  HasSubstr(method->input_type()->full_name()));
    }
  }
  // Still serving.
  v1::ListModelsResponse models;
  EXPECT_TRUE(
      server.NewStub()
          ->ListModels(Context().get(), v1::ListModelsRequest(), &models)
          .ok());
}

TEST(MalformedBytesTest, AuthenticationIsCheckedBeforeParsing) {
  TempDir db;
  TempDir files;
  const std::string token = "s3cret-admin-token";
  const CommandResult digest =
      RunCommand({"/bin/sh", "-c", "printf %s " + token + " | sha256sum"});
  ASSERT_EQ(digest.exit_code, 0) << digest.err;
  const std::string auth = files.File("auth");
  WriteFile(auth, "admin root " + digest.out.substr(0, 64) + "\n");
  ServerProcess server(db.path(), {"--auth-file", auth});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  EXPECT_EQ(RawCall(server.address(), "SubmitTask", kTruncated).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(
      RawCall(server.address(), "SubmitTask", kTruncated, "Bearer " + token)
          .error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
}

// The number of times `needle` occurs in `text`.
size_t Count(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

TEST(MalformedBytesTest, TheParseErrorLogIsRateLimitedWithACount) {
  TempDir db;
  ServerProcess server(db.path());
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  const std::string bad = InvalidUtf8(v1::SubmitTaskRequest::descriptor());
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(RawCall(server.address(), "SubmitTask", bad).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  // At most one line a second, not one per request.
  EXPECT_LT(Count(server.Log(), "invalid UTF-8"), 10u) << server.Log();
  // A later line says how many were held back.
  const std::regex counted("suppressed=[1-9]");
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!std::regex_search(server.Log(), counted) && Clock::now() < deadline) {
    RawCall(server.address(), "SubmitTask", bad);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(std::regex_search(server.Log(), counted)) << server.Log();
}

// ---------------------------------------------------------------------------
// Item 7: bearer parsing.

class BearerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const CommandResult digest =
        RunCommand({"/bin/sh", "-c", "printf %s " + kToken + " | sha256sum"});
    ASSERT_EQ(digest.exit_code, 0) << digest.err;
    const std::string auth = files_.File("auth");
    WriteFile(auth, "support helpdesk " + digest.out.substr(0, 64) + "\n");
    server_ = std::make_unique<ServerProcess>(
        db_.path(), std::vector<std::string>{"--auth-file", auth});
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
  }

  grpc::StatusCode ListModelsWith(const std::string& authorization) {
    auto context = Context();
    context->AddMetadata("authorization", authorization);
    v1::ListModelsResponse response;
    return server_->NewStub()
        ->ListModels(context.get(), v1::ListModelsRequest(), &response)
        .error_code();
  }

  // The grpc-status of a ListModels sent on a raw connection with
  // `authorization` exactly as given.
  int RawListModelsWith(const std::string& authorization) {
    RawHttp2 connection(Port(server_->address()));
    EXPECT_TRUE(connection.connected());
    EXPECT_TRUE(connection.SendCall(
        1, "ListModels", {{"authorization", authorization}}, std::string()));
    const auto& ends = connection.Await(1, std::chrono::seconds(20));
    return ends.count(1) == 0 ? -1 : ends.at(1).grpc_status;
  }

  const std::string kToken = "helpdesk-token-42";
  TempDir db_;
  TempDir files_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(BearerTest, TheSchemeIsCaseInsensitiveAndSpacesAreTrimmed) {
  for (const std::string& value : std::vector<std::string>{
           "Bearer " + kToken, "bearer " + kToken, "BEARER " + kToken,
           "bEaReR " + kToken, "Bearer   " + kToken + "  ",
           "  Bearer " + kToken}) {
    EXPECT_EQ(ListModelsWith(value), grpc::StatusCode::OK) << value;
  }
  for (const std::string& value : std::vector<std::string>{
           "Basic " + kToken, "Bearer", "Bearer ", kToken, "Bearer" + kToken,
           "Bearer " + kToken + " extra", "Bearer wrong-token"}) {
    EXPECT_EQ(ListModelsWith(value), grpc::StatusCode::UNAUTHENTICATED)
        << value;
  }
}

TEST_F(BearerTest, ControlCharactersInTheHeaderAreRefused) {
  // The raw client is heard: a clean header is accepted.
  EXPECT_EQ(RawListModelsWith("Bearer " + kToken), 0);
  const int unauthenticated =
      static_cast<int>(grpc::StatusCode::UNAUTHENTICATED);
  for (const std::string& value : std::vector<std::string>{
           "Bearer " + kToken + "\r\n", "Bearer " + kToken + "\n",
           "Bearer " + kToken + "\r", "\r\nBearer " + kToken,
           "Bearer\t" + kToken, "Bearer " + kToken + "\t",
           "Bearer " + kToken + std::string(1, '\x7f'),
           "Bearer " + kToken + std::string(1, '\x01')}) {
    EXPECT_EQ(RawListModelsWith(value), unauthenticated)
        << absl::CEscape(value);
  }
}

// ---------------------------------------------------------------------------
// Item 8: file descriptors.

// Opens `count` TCP connections to `port` that never speak.
std::vector<int> Flood(int port, int count) {
  std::vector<int> sockets;
  for (int i = 0; i < count; ++i) {
    const int fd = ConnectLoopback(port);
    if (fd >= 0) sockets.push_back(fd);
  }
  return sockets;
}

void CloseAll(std::vector<int>* sockets) {
  for (int fd : *sockets) close(fd);
  sockets->clear();
}

TEST(DescriptorLimitTest, TheSoftLimitIsRaisedToTheHardOne) {
  LimitedDaemon daemon(256, 1024);
  std::string error;
  ASSERT_TRUE(daemon.Start(&error)) << error;
  EXPECT_THAT(daemon.Log(), HasSubstr("open file limit soft=1024 hard=1024"));
  // More connections than the soft limit the daemon was started with.
  std::vector<int> sockets = Flood(Port(daemon.address()), 400);
  EXPECT_EQ(sockets.size(), 400u);
  EXPECT_TRUE(FreshListModels(daemon.address()).ok()) << daemon.Log();
  CloseAll(&sockets);
  EXPECT_TRUE(FreshListModels(daemon.address()).ok()) << daemon.Log();
}

TEST(DescriptorLimitTest, RunningOutOfDescriptorsExitsNonZeroForASupervisor) {
  // gRPC 1.51's listener stops for good when accept fails with EMFILE; the
  // daemon must not live on without it.
  LimitedDaemon daemon(256, 256);
  std::string error;
  ASSERT_TRUE(daemon.Start(&error)) << error;
  std::vector<int> sockets = Flood(Port(daemon.address()), 400);
  const int code = daemon.WaitExit(std::chrono::seconds(60));
  CloseAll(&sockets);
  EXPECT_EQ(code, 1) << daemon.Log();
  EXPECT_THAT(daemon.Log(), HasSubstr("listener stopped accepting"));
}

// ---------------------------------------------------------------------------
// Item 12: operator files.

class OperatorFileTest : public ::testing::Test {
 protected:
  // Runs tasktraild with `args` until it exits (killed after 20 s).
  CommandResult RunDaemon(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {
        "/usr/bin/timeout", "20",       DaemonPath(), "--db",
        db_.path(),         "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  // A catalog over 4 MiB that would otherwise be valid.
  std::string OversizeCatalog() {
    const std::string path = files_.File("huge.json");
    WriteFile(path, SmallCatalog("huge") + std::string(5 << 20, ' '));
    return path;
  }

  std::string Fifo(const std::string& name) {
    const std::string path = files_.File(name);
    EXPECT_EQ(mkfifo(path.c_str(), 0600), 0);
    return path;
  }

  TempDir db_;
  TempDir files_;
};

TEST_F(OperatorFileTest, ADeviceFifoOrHugeFileStopsStartupNamingIt) {
  struct Case {
    std::string flag;
    std::string path;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"--catalog", "/dev/zero", "not a regular file"},
      {"--failure-rules", "/dev/zero", "not a regular file"},
      {"--auth-file", "/dev/zero", "not a regular file"},
      {"--catalog", Fifo("catalog.fifo"), "not a regular file"},
      {"--auth-file", Fifo("auth.fifo"), "not a regular file"},
      {"--catalog", files_.path(), "not a regular file"},
      {"--catalog", OversizeCatalog(), "larger than 4194304 bytes"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.flag + " " + c.path);
    const CommandResult result = RunDaemon({c.flag, c.path});
    EXPECT_EQ(result.exit_code, 1) << result.err;
    EXPECT_THAT(result.err, HasSubstr(c.path));
    EXPECT_THAT(result.err, HasSubstr(c.why));
  }
}

TEST_F(OperatorFileTest, ASighupOnABadFileKeepsTheCatalogAndSigtermStops) {
  const std::string path = files_.File("catalog.json");
  WriteFile(path, SmallCatalog("v1"));
  ServerProcess server(db_.path(), {"--catalog", path});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  auto version = [&server] {
    v1::ListModelsResponse models;
    EXPECT_TRUE(
        server.NewStub()
            ->ListModels(Context().get(), v1::ListModelsRequest(), &models)
            .ok());
    return models.catalog_version();
  };
  ASSERT_EQ(version(), "v1");

  // Too large.
  WriteFile(path, SmallCatalog("v2") + std::string(5 << 20, ' '));
  server.Notify(SIGHUP);
  ASSERT_TRUE(server.WaitForLog("larger than 4194304 bytes")) << server.Log();
  EXPECT_EQ(version(), "v1");

  // A FIFO with no writer: opening it would wait for one.
  ASSERT_EQ(unlink(path.c_str()), 0);
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  server.Notify(SIGHUP);
  ASSERT_TRUE(server.WaitForLog("not a regular file")) << server.Log();
  EXPECT_EQ(version(), "v1");
  EXPECT_THAT(server.Log(), HasSubstr("catalog reload rejected path=" + path));

  // The signal thread is free: SIGTERM stops the daemon cleanly.
  EXPECT_EQ(server.Stop(), 0) << server.Log();
}

}  // namespace
}  // namespace tasktrail::testing
