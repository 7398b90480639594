// A full disk: tasktraild with --db on a small tmpfs that concurrent large
// submissions fill. The daemon must answer the failing writes UNAVAILABLE,
// refuse every write after them, turn health NOT_SERVING and stay up serving
// reads; restarted on a file system with room, it has every task it
// acknowledged.
//
// The test mounts the tmpfs itself, which needs root (CI runs as root);
// elsewhere it is skipped, and tests/store/fault_test.cc covers the store on
// a file system that runs out of space after a byte budget.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using HealthResponse = grpc::health::v1::HealthCheckResponse;

constexpr int kWriters = 8;
constexpr size_t kPromptBytes = 20 << 10;
// Each writer gives up after this many acknowledged submissions: together
// they would need far more than the file system holds.
constexpr int kMaxSubmitsPerWriter = 1000;
// How long the daemon must keep serving after the disk filled. Before the
// fix RocksDB aborted the process within milliseconds: its LOG file in the
// data directory failed on the line about the failed write, and the next line
// (from the recovery thread that polls for free space) failed an assertion.
constexpr auto kServingAfterFailure = std::chrono::seconds(2);

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(10));
  return context;
}

// A prompt of kPromptBytes that names its writer and sequence number.
std::string Prompt(int writer, int n) {
  std::string prompt =
      "disk full " + std::to_string(writer) + "-" + std::to_string(n) + " ";
  prompt.resize(kPromptBytes, 'a' + static_cast<char>((writer + n) % 26));
  return prompt;
}

v1::SubmitTaskRequest Submit(const std::string& prompt) {
  v1::SubmitTaskRequest request;
  request.set_account_id("acct-disk");
  request.set_model("veo-3");
  request.set_force_new(true);
  request.mutable_params()->set_prompt(prompt);
  return request;
}

class DiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "mounting a tmpfs needs root";
    }
    mount_point_ = dir_.File("fs");
    ASSERT_EQ(mkdir(mount_point_.c_str(), 0755), 0) << std::strerror(errno);
    if (mount("tmpfs", mount_point_.c_str(), "tmpfs", 0, "size=8m") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
    }
    mounted_ = true;
  }

  // Unmounts even when the test failed half-way; the daemons go first, as
  // their open files keep the file system busy.
  void TearDown() override {
    for (std::unique_ptr<ServerProcess>& server : servers_) {
      if (server->running()) server->Kill();
    }
    if (mounted_ && umount(mount_point_.c_str()) != 0) {
      ADD_FAILURE() << "umount " << mount_point_ << ": "
                    << std::strerror(errno);
      umount2(mount_point_.c_str(), MNT_DETACH);
    }
  }

  // A daemon (not started yet) on the tmpfs, killed by TearDown.
  ServerProcess& NewServer(std::vector<std::string> extra_args = {}) {
    servers_.push_back(std::make_unique<ServerProcess>(mount_point_ + "/db",
                                                       std::move(extra_args)));
    return *servers_.back();
  }

  static HealthResponse::ServingStatus Health(const ServerProcess& server) {
    auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
        server.address(), grpc::InsecureChannelCredentials()));
    HealthResponse response;
    const grpc::Status status = health->Check(
        Context().get(), grpc::health::v1::HealthCheckRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.status();
  }

  TempDir dir_;
  std::string mount_point_;
  bool mounted_ = false;
  std::vector<std::unique_ptr<ServerProcess>> servers_;
};

TEST_F(DiskFullTest, WritesAreRefusedAndTheDaemonServesReadsUntilRestart) {
  ServerProcess& server = NewServer();
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  ASSERT_EQ(Health(server), HealthResponse::SERVING);

  // Concurrent large submissions until each writer is refused.
  std::mutex mutex;
  std::map<std::string, std::string> acknowledged;  // task id -> prompt
  std::vector<grpc::Status> refusals;
  std::vector<std::thread> writers;
  for (int writer = 0; writer < kWriters; ++writer) {
    writers.emplace_back([&, writer] {
      auto stub = server.NewStub();
      for (int n = 0; n < kMaxSubmitsPerWriter; ++n) {
        const std::string prompt = Prompt(writer, n);
        v1::SubmitTaskResponse response;
        const grpc::Status status =
            stub->SubmitTask(Context().get(), Submit(prompt), &response);
        std::lock_guard<std::mutex> lock(mutex);
        if (!status.ok()) {
          refusals.push_back(status);
          return;
        }
        acknowledged.emplace(response.task().task_id(), prompt);
      }
    });
  }
  for (std::thread& writer : writers) writer.join();
  ASSERT_FALSE(acknowledged.empty());
  ASSERT_EQ(refusals.size(), static_cast<size_t>(kWriters))
      << "the file system never filled";
  bool saw_no_space = false;
  for (const grpc::Status& refusal : refusals) {
    EXPECT_EQ(refusal.error_code(), grpc::StatusCode::UNAVAILABLE)
        << refusal.error_message();
    EXPECT_THAT(refusal.error_message(),
                AnyOf(HasSubstr("No space left on device"),
                      HasSubstr("refuses writes until restart")));
    saw_no_space = saw_no_space ||
                   refusal.error_message().find("No space left on device") !=
                       std::string::npos;
  }
  EXPECT_TRUE(saw_no_space) << "no write was refused for lack of space";

  // The daemon stays up: it answers reads of what it acknowledged, health
  // says NOT_SERVING, and writes are refused, for longer than RocksDB took
  // to abort the process before.
  {
    auto stub = server.NewStub();
    const std::string& first_id = acknowledged.begin()->first;
    const auto serve_until =
        std::chrono::steady_clock::now() + kServingAfterFailure;
    int rounds = 0;
    do {
      ++rounds;
      SCOPED_TRACE("round " + std::to_string(rounds));
      v1::GetTaskRequest get;
      get.set_task_id(first_id);
      v1::Task task;
      const grpc::Status read = stub->GetTask(Context().get(), get, &task);
      ASSERT_TRUE(read.ok()) << read.error_message();
      EXPECT_EQ(task.params().prompt(), acknowledged.begin()->second);
      EXPECT_EQ(Health(server), HealthResponse::NOT_SERVING);
      v1::SubmitTaskResponse response;
      const grpc::Status write = stub->SubmitTask(
          Context().get(), Submit("after the disk filled"), &response);
      EXPECT_EQ(write.error_code(), grpc::StatusCode::UNAVAILABLE);
      EXPECT_THAT(write.error_message(),
                  HasSubstr("refuses writes until restart"));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    } while (std::chrono::steady_clock::now() < serve_until);
  }  // closes the connection, which would hold up the shutdown

  // It stops cleanly, and restarted with room it has every acknowledged task.
  EXPECT_EQ(server.Stop(), 0) << server.Log();
  ASSERT_EQ(
      mount("tmpfs", mount_point_.c_str(), "tmpfs", MS_REMOUNT, "size=64m"), 0)
      << std::strerror(errno);
  ServerProcess& restarted = NewServer();
  ASSERT_TRUE(restarted.Start(&error)) << error;
  EXPECT_EQ(Health(restarted), HealthResponse::SERVING);
  auto restarted_stub = restarted.NewStub();
  for (const auto& [task_id, prompt] : acknowledged) {
    v1::GetTaskRequest get;
    get.set_task_id(task_id);
    v1::Task task;
    const grpc::Status read =
        restarted_stub->GetTask(Context().get(), get, &task);
    ASSERT_TRUE(read.ok()) << task_id << ": " << read.error_message();
    EXPECT_EQ(task.params().prompt(), prompt) << task_id;
  }
  v1::SubmitTaskResponse response;
  const grpc::Status write = restarted_stub->SubmitTask(
      Context().get(), Submit("after the restart"), &response);
  EXPECT_TRUE(write.ok()) << write.error_message();
}

// With --log-format json, the store failure and the write it refused each
// leave one JSON line an operator can search for: "store failed" with the
// disk's error, and "request failed" naming the method and the code.
TEST_F(DiskFullTest, TheJsonLogNamesTheStoreFailureAndTheRefusedWrite) {
  ServerProcess& server = NewServer({"--log-format", "json"});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  {
    auto stub = server.NewStub();
    grpc::Status refused;
    for (int n = 0; n < kWriters * kMaxSubmitsPerWriter && refused.ok(); ++n) {
      v1::SubmitTaskResponse response;
      refused =
          stub->SubmitTask(Context().get(), Submit(Prompt(0, n)), &response);
    }
    ASSERT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE)
        << refused.error_message();
  }  // closes the connection, which would hold up the shutdown
  ASSERT_TRUE(server.WaitForLog(R"("message":"request failed")"))
      << server.Log();
  EXPECT_EQ(server.Stop(), 0) << server.Log();

  std::vector<google::protobuf::Struct> lines;
  ASSERT_TRUE(ParseJsonLog(server.Log(), &lines, &error)) << error;
  const google::protobuf::Struct* store_failed = nullptr;
  const google::protobuf::Struct* request_failed = nullptr;
  for (const google::protobuf::Struct& line : lines) {
    const std::string& message = line.fields().at("message").string_value();
    if (store_failed == nullptr &&
        message.find("store failed") != std::string::npos) {
      store_failed = &line;
    }
    if (request_failed == nullptr && message == "request failed") {
      request_failed = &line;
    }
  }
  ASSERT_NE(store_failed, nullptr) << server.Log();
  EXPECT_EQ(store_failed->fields().at("level").string_value(), "error");
  EXPECT_THAT(store_failed->fields().at("error").string_value(),
              HasSubstr("No space left on device"));
  ASSERT_NE(request_failed, nullptr) << server.Log();
  EXPECT_EQ(request_failed->fields().at("method").string_value(), "SubmitTask");
  EXPECT_EQ(request_failed->fields().at("code").string_value(), "UNAVAILABLE");
  EXPECT_THAT(request_failed->fields().at("error").string_value(),
              AnyOf(HasSubstr("No space left on device"),
                    HasSubstr("refuses writes until restart")));
  EXPECT_EQ(request_failed->fields().at("suppressed").kind_case(),
            google::protobuf::Value::kNumberValue);
}

}  // namespace
}  // namespace tasktrail::testing
