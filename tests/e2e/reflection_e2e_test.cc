// Server reflection through a client nobody here wrote: buf (npm
// @bufbuild/buf, installed into build/tools by scripts/install-buf.sh) lists
// every service of the real tasktraild, describes each, and calls methods
// whose request and response it builds from the descriptors reflection
// serves alone.
#include <unistd.h>

#include <regex>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::HasSubstr;

class ReflectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(TASKTRAIL_BUF_PATH, X_OK), 0)
        << "buf is missing at " TASKTRAIL_BUF_PATH
           "; install it with: bash scripts/install-buf.sh";
    std::string error;
    ASSERT_TRUE(server_.Start(&error)) << error;
  }

  // Runs `buf curl --protocol grpc --http2-prior-knowledge ARGS... URL`, where
  // URL is the server's base URL followed by `path`.
  CommandResult BufCurl(const std::vector<std::string>& args,
                        const std::string& path = "") const {
    std::vector<std::string> argv = {TASKTRAIL_BUF_PATH, "curl", "--protocol",
                                     "grpc", "--http2-prior-knowledge"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("http://" + server_.address() + path);
    return RunCommand(argv);
  }

  TempDir db_;
  ServerProcess server_{db_.path()};
};

TEST_F(ReflectionTest, ListsExactlyTheServedServices) {
  const CommandResult listed = BufCurl({"--list-services"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out,
            "grpc.health.v1.Health\n"
            "grpc.reflection.v1alpha.ServerReflection\n"
            "tasktrail.v1.TaskTracker\n");
}

// --list-methods describes every listed service; it fails when reflection
// lacks the descriptor of any of them.
TEST_F(ReflectionTest, DescribesEveryListedService) {
  const CommandResult methods = BufCurl({"--list-methods"});
  ASSERT_EQ(methods.exit_code, 0) << methods.err;
  EXPECT_THAT(methods.out, HasSubstr("grpc.health.v1.Health/Check\n"));
  EXPECT_THAT(methods.out, HasSubstr("grpc.health.v1.Health/Watch\n"));
  EXPECT_THAT(
      methods.out,
      HasSubstr("grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
                "\n"));
  const google::protobuf::ServiceDescriptor* tracker =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          "tasktrail.v1.TaskTracker");
  ASSERT_NE(tracker, nullptr);
  for (int i = 0; i < tracker->method_count(); ++i) {
    EXPECT_THAT(methods.out, HasSubstr("tasktrail.v1.TaskTracker/" +
                                       tracker->method(i)->name() + "\n"));
  }
}

TEST_F(ReflectionTest, ChecksHealthThroughReflection) {
  const CommandResult health =
      BufCurl({"--data", "{}"}, "/grpc.health.v1.Health/Check");
  ASSERT_EQ(health.exit_code, 0) << health.err;
  EXPECT_THAT(health.out, HasSubstr("\"status\": \"SERVING\""));
}

// A task submitted and read back with messages built from reflection alone,
// including the imported files (task.proto, google/protobuf/timestamp.proto).
TEST_F(ReflectionTest, SubmitsAndReadsATaskThroughReflection) {
  const CommandResult submitted =
      BufCurl({"--data",
               R"({"account_id": "acct-reflect", "model": "veo-3",
           "endpoint": "/v1/videos", "charge_units": 40,
           "params": {"prompt": "a red fox", "aspect_ratio": "16:9"}})"},
              "/tasktrail.v1.TaskTracker/SubmitTask");
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  std::smatch task_id;
  ASSERT_TRUE(std::regex_search(submitted.out, task_id,
                                std::regex(R"re("taskId": "([^"]+)")re")))
      << submitted.out;

  const CommandResult read =
      BufCurl({"--data", R"({"task_id": ")" + task_id[1].str() +
                             R"(", "include_events": true})"},
              "/tasktrail.v1.TaskTracker/GetTask");
  ASSERT_EQ(read.exit_code, 0) << read.err;
  EXPECT_THAT(read.out, HasSubstr("\"accountId\": \"acct-reflect\""));
  EXPECT_THAT(read.out, HasSubstr("\"state\": \"TASK_STATE_SUBMITTED\""));
  EXPECT_TRUE(std::regex_search(
      read.out,
      std::regex(R"re("createTime": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)re")))
      << read.out;
}

// An error from the server reaches the foreign client with its code.
TEST_F(ReflectionTest, ReportsNotFoundThroughReflection) {
  const CommandResult missing =
      BufCurl({"--data", R"({"task_id": "no-such-task"})"},
              "/tasktrail.v1.TaskTracker/GetTask");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("not_found"));
}

}  // namespace
}  // namespace tasktrail::testing
