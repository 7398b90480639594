// The CLI never lets text from the server drive the support person's
// terminal: control characters stored in free-text fields (prompt, note,
// failure message, upstream status) are printed escaped by every human
// output, and JSON output escapes them as JSON does.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::HasSubstr;

// An OSC title change, a screen clear and a bell: what an attacker would send.
constexpr char kEscapes[] = "\x1b]0;pwned\x07\x1b[2J";

bool HasRawControl(const std::string& text) {
  for (unsigned char c : text) {
    if (c == 0x1b || c == 0x07) return true;
  }
  return false;
}

class CliSafetyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(db_.path());
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    stub_ = server_->NewStub();
  }

  CommandResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {CliPath(), "--server", server_->address()});
    return RunCommand(args, {"TZ=UTC"});
  }

  // A failed task whose free-text fields all carry kEscapes.
  std::string SubmitHostileTask() {
    v1::SubmitTaskRequest submit;
    submit.set_account_id("acct-hostile");
    submit.set_model("kling-v2-1");
    submit.mutable_params()->set_prompt(std::string("waves ") + kEscapes);
    v1::SubmitTaskResponse submitted;
    grpc::ClientContext c1;
    grpc::Status status = stub_->SubmitTask(&c1, submit, &submitted);
    EXPECT_TRUE(status.ok()) << status.error_message();
    const std::string id = submitted.task().task_id();

    v1::RecordEventRequest polled;
    polled.set_task_id(id);
    polled.mutable_polled()->set_upstream_status(std::string("busy") +
                                                 kEscapes);
    v1::RecordEventResponse response;
    grpc::ClientContext c2;
    status = stub_->RecordEvent(&c2, polled, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();

    v1::RecordEventRequest failed;
    failed.set_task_id(id);
    failed.mutable_failed()->set_http_status(500);
    failed.mutable_failed()->set_message(std::string("boom") + kEscapes);
    grpc::ClientContext c3;
    status = stub_->RecordEvent(&c3, failed, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();

    v1::AddNoteRequest note;
    note.set_task_id(id);
    note.set_author("support");
    note.set_text(std::string("user says ") + kEscapes);
    v1::Task noted;
    grpc::ClientContext c4;
    status = stub_->AddNote(&c4, note, &noted);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return id;
  }

  TempDir db_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::TaskTracker::Stub> stub_;
};

TEST_F(CliSafetyTest, HumanOutputsPrintControlCharactersEscaped) {
  const std::string id = SubmitHostileTask();
  ASSERT_FALSE(id.empty());
  for (const std::vector<std::string>& command :
       std::vector<std::vector<std::string>>{
           {"get", id},
           {"list", "--account", "acct-hostile"},
           {"watch", id},
           {"queued", id}}) {
    SCOPED_TRACE(command[0]);
    CommandResult result = Cli(command);
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_FALSE(HasRawControl(result.out)) << result.out;
    EXPECT_FALSE(HasRawControl(result.err)) << result.err;
  }
  CommandResult get = Cli({"get", id});
  // The text is still there for support to read, made visible.
  EXPECT_THAT(get.out, HasSubstr("\\x1b]0;pwned\\x07\\x1b[2J"));
}

TEST_F(CliSafetyTest, JsonOutputEscapesControlCharactersAsJsonDoes) {
  const std::string id = SubmitHostileTask();
  CommandResult result = Cli({"get", id, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_FALSE(HasRawControl(result.out));
  EXPECT_THAT(result.out, HasSubstr("\\u001b]0;pwned\\u0007"));
}

TEST_F(CliSafetyTest, ErrorMessagesQuotingTheRequestAreEscaped) {
  CommandResult result = Cli({"get", std::string("tt_") + kEscapes});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_FALSE(HasRawControl(result.err)) << result.err;
}

}  // namespace
}  // namespace tasktrail::testing
