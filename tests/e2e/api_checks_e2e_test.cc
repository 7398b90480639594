// What the API refuses and what it records, through the real server with an
// auth file: every read that returns task content to a support or admin
// principal is audited (ListTasks per returned task, AddNote, admin writes);
// times outside protobuf's ranges or implausible for their field are
// INVALID_ARGUMENT naming the field, and so are an occur_time from before the
// task existed, a control character in an identifier and an unknown
// ListModels kind.
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kBackendToken[] = "backend-token-8d41e7";
constexpr char kSupportToken[] = "support-token-2a9f03";
constexpr char kAdminToken[] = "admin-token-77c1b5";

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class ApiChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auth_file_ = files_.Write(
        "auth", AuthFileText(kBackendToken, kSupportToken, kAdminToken));
    server_ = std::make_unique<ServerProcess>(
        db_.path(), std::vector<std::string>{"--auth-file", auth_file_});
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    stub_ = server_->NewStub();
  }

  static v1::SubmitTaskRequest Request(const std::string& prompt) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct-1");
    request.set_model("veo-3");
    request.mutable_params()->set_prompt(prompt);
    return request;
  }

  grpc::Status Submit(const v1::SubmitTaskRequest& request,
                      const std::string& token = kBackendToken,
                      v1::SubmitTaskResponse* out = nullptr) {
    v1::SubmitTaskResponse response;
    return stub_->SubmitTask(AuthContext(token).get(), request,
                             out != nullptr ? out : &response);
  }

  std::string SubmitId(const std::string& prompt) {
    v1::SubmitTaskResponse response;
    grpc::Status status = Submit(Request(prompt), kBackendToken, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.task().task_id();
  }

  grpc::Status Record(const v1::RecordEventRequest& request,
                      const std::string& token = kBackendToken) {
    v1::RecordEventResponse response;
    return stub_->RecordEvent(AuthContext(token).get(), request, &response);
  }

  // The rpc of each audit entry of `task_id`, newest first, with who read.
  std::vector<std::string> Audit(const std::string& task_id) {
    v1::ListAuditRequest request;
    request.set_task_id(task_id);
    v1::ListAuditResponse response;
    grpc::Status status =
        stub_->ListAudit(AuthContext(kAdminToken).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> entries;
    for (const v1::AuditEntry& entry : response.entries()) {
      entries.push_back(entry.rpc() + " " + entry.principal() + " " +
                        entry.role());
    }
    return entries;
  }

  CommandResult Cli(const std::string& token,
                    const std::vector<std::string>& args) {
    return server_->RunCli(args, {"TASKTRAIL_TOKEN=" + token});
  }

  TempDir db_;
  TempDir files_;
  std::string auth_file_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::TaskTracker::Stub> stub_;
};

// --- Item 3: every read of task content by support or admin is audited.

TEST_F(ApiChecksTest, ListTasksAsSupportLeavesOneAuditEntryPerReturnedTask) {
  const std::string first = SubmitId("a lighthouse in a storm");
  const std::string second = SubmitId("a fox in the snow");

  // The gateway's own reads are not audited.
  v1::ListTasksRequest list;
  list.set_account_id("acct-1");
  v1::ListTasksResponse listed;
  ASSERT_TRUE(
      stub_->ListTasks(AuthContext(kBackendToken).get(), list, &listed).ok());
  EXPECT_THAT(Audit(first), ::testing::IsEmpty());

  CommandResult support = Cli(kSupportToken, {"list", "--account", "acct-1"});
  ASSERT_EQ(support.exit_code, 0) << support.err;
  EXPECT_THAT(support.out, HasSubstr(first));
  EXPECT_THAT(Audit(first), ElementsAre("ListTasks alice support"));
  EXPECT_THAT(Audit(second), ElementsAre("ListTasks alice support"));

  // A task the listing did not return is not marked as read.
  list.set_page_size(1);
  ASSERT_TRUE(
      stub_->ListTasks(AuthContext(kAdminToken).get(), list, &listed).ok());
  ASSERT_EQ(listed.tasks_size(), 1);
  EXPECT_EQ(listed.tasks(0).task_id(), second);  // newest first
  EXPECT_THAT(Audit(second),
              ElementsAre("ListTasks root admin", "ListTasks alice support"));
  EXPECT_THAT(Audit(first), ElementsAre("ListTasks alice support"));

  CommandResult audit = Cli(kAdminToken, {"audit", first});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_THAT(audit.out, HasSubstr("ListTasks"));
  EXPECT_THAT(audit.out, HasSubstr("alice"));
}

TEST_F(ApiChecksTest, AddNoteIsAudited) {
  const std::string id = SubmitId("a lighthouse in a storm");
  CommandResult note =
      Cli(kSupportToken, {"note", id, "customer asked twice, charged once"});
  ASSERT_EQ(note.exit_code, 0) << note.err;
  EXPECT_THAT(Audit(id), ElementsAre("AddNote alice support"));

  CommandResult audit = Cli(kAdminToken, {"audit", id});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_THAT(audit.out, HasSubstr("AddNote"));

  // A refused note returned nothing and leaves no entry.
  v1::AddNoteRequest empty;
  empty.set_task_id(id);
  v1::Task task;
  EXPECT_EQ(stub_->AddNote(AuthContext(kSupportToken).get(), empty, &task)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(Audit(id), ElementsAre("AddNote alice support"));
}

TEST_F(ApiChecksTest, AdminWritesReturnTheTaskAndAreAuditedBackendOnesAreNot) {
  v1::SubmitTaskResponse submitted;
  ASSERT_TRUE(
      Submit(Request("a fox in the snow"), kAdminToken, &submitted).ok());
  const std::string id = submitted.task().task_id();
  v1::RecordEventRequest queued;
  queued.set_task_id(id);
  queued.mutable_queued()->set_upstream_task_id("up-1");
  ASSERT_TRUE(Record(queued, kBackendToken).ok());
  v1::RecordEventRequest started;
  started.set_task_id(id);
  started.mutable_started()->set_progress_percent(5);
  ASSERT_TRUE(Record(started, kAdminToken).ok());
  EXPECT_THAT(Audit(id),
              ElementsAre("RecordEvent root admin", "SubmitTask root admin"));
}

// --- Item 5, and the occur_time from before the task: times are checked.

TEST_F(ApiChecksTest, OutOfRangeOrImplausibleTimesAreRefusedNamingTheField) {
  const std::string id = SubmitId("a lighthouse in a storm");
  v1::RecordEventRequest queued;
  queued.set_task_id(id);
  queued.mutable_queued()->set_upstream_task_id("up-1");
  ASSERT_TRUE(Record(queued).ok());

  auto poll_with_eta = [&](int64_t seconds, int32_t nanos) {
    v1::RecordEventRequest poll;
    poll.set_task_id(id);
    poll.mutable_polled()->set_upstream_status("in_queue");
    poll.mutable_polled()->mutable_eta()->set_seconds(seconds);
    poll.mutable_polled()->mutable_eta()->set_nanos(nanos);
    return Record(poll);
  };
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  for (const auto& [seconds, nanos] : std::vector<std::pair<int64_t, int32_t>>{
           {kMax, 0},            // past Duration's range
           {31 * 86400, 0},      // longer than 30 days
           {-60, 0},             // negative
           {60, -5},             // nanos of the other sign
           {60, 1000000000}}) {  // nanos out of range
    grpc::Status status = poll_with_eta(seconds, nanos);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << seconds << "s " << nanos << "ns";
    EXPECT_THAT(status.error_message(), HasSubstr("polled.eta"));
    ASSERT_EQ(ViolatedFields(status).size(), 1u);
    EXPECT_THAT(ViolatedFields(status)[0], HasSubstr("polled.eta "));
  }
  ASSERT_TRUE(poll_with_eta(600, 0).ok());

  auto complete_expiring = [&](int64_t seconds, int32_t nanos) {
    v1::RecordEventRequest completed;
    completed.set_task_id(id);
    completed.mutable_completed()->add_result_uris(
        "https://cdn.example.com/out.mp4");
    completed.mutable_completed()->mutable_expire_time()->set_seconds(seconds);
    completed.mutable_completed()->mutable_expire_time()->set_nanos(nanos);
    return Record(completed);
  };
  const int64_t now = NowSeconds();
  for (const auto& [seconds, nanos] : std::vector<std::pair<int64_t, int32_t>>{
           {1000000000000, 0},  // the year 33658
           {-62135596801, 0},   // before 0001-01-01
           {now + 3600, -1},    // negative nanos
           {now - 3600, 0}}) {  // before the event itself
    grpc::Status status = complete_expiring(seconds, nanos);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << seconds << "s " << nanos << "ns";
    EXPECT_THAT(ViolatedFields(status),
                ElementsAre(HasSubstr("completed.expire_time ")));
  }

  v1::RecordEventRequest bad_occur = queued;
  bad_occur.mutable_started()->set_progress_percent(1);
  bad_occur.mutable_occur_time()->set_seconds(now);
  bad_occur.mutable_occur_time()->set_nanos(-1);
  EXPECT_THAT(ViolatedFields(Record(bad_occur)),
              ElementsAre(HasSubstr("occur_time ")));

  ASSERT_TRUE(complete_expiring(now + 7 * 86400, 0).ok());

  // The task stays readable in every form.
  CommandResult json = Cli(kSupportToken, {"get", id, "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"result_expire_time\""));
  CommandResult human = Cli(kSupportToken, {"get", id});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_THAT(human.out, Not(HasSubstr("106751991167300d")));
}

TEST_F(ApiChecksTest, StatsWindowOutsideDurationRangeIsRefusedNamingWindow) {
  for (const auto& [seconds, nanos] : std::vector<std::pair<int64_t, int32_t>>{
           {std::numeric_limits<int64_t>::max(), 0},
           {120, -5},
           {120, 1500000000}}) {
    v1::GetStatsRequest request;
    request.mutable_window()->set_seconds(seconds);
    request.mutable_window()->set_nanos(nanos);
    v1::Stats stats;
    grpc::Status status =
        stub_->GetStats(AuthContext(kSupportToken).get(), request, &stats);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << seconds << "s " << nanos << "ns";
    EXPECT_THAT(ViolatedFields(status), ElementsAre(HasSubstr("window ")));
  }
}

TEST_F(ApiChecksTest, OccurTimeBeforeTheTaskExistedIsRefused) {
  v1::SubmitTaskResponse submitted;
  ASSERT_TRUE(
      Submit(Request("a fox in the snow"), kBackendToken, &submitted).ok());
  const std::string id = submitted.task().task_id();
  const int64_t created = submitted.task().create_time().seconds();

  v1::RecordEventRequest queued;
  queued.set_task_id(id);
  queued.mutable_queued()->set_upstream_task_id("up-1");
  for (int64_t seconds : {int64_t{1}, created - 3600}) {  // 1970, an hour ago
    queued.mutable_occur_time()->set_seconds(seconds);
    grpc::Status status = Record(queued);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(ViolatedFields(status),
                ElementsAre("occur_time OCCUR_TIME_BEFORE_TASK"));
  }
  // Within the clock-skew allowance of the creation it is taken as given.
  queued.mutable_occur_time()->set_seconds(created - 1);
  ASSERT_TRUE(Record(queued).ok());
}

// --- Item 11: identifiers refuse control characters, free text keeps them.

TEST_F(ApiChecksTest, ControlCharactersInIdentifiersAreRefusedNamingTheField) {
  const std::string id = SubmitId("a lighthouse in a storm");
  const std::vector<std::string> controls = {"\x1b]0;owned\x07", "\x1b[2J",
                                             "a\nb", "del\x7f",
                                             "csi\xc2\x9b"
                                             "2J"};
  struct Case {
    std::string field;
    std::function<grpc::Status(const std::string& bad)> call;
  };
  auto submit =
      [this](void (*set)(v1::SubmitTaskRequest*, const std::string&)) {
        return [this, set](const std::string& bad) {
          v1::SubmitTaskRequest request = Request("a red kite");
          set(&request, bad);
          return Submit(request);
        };
      };
  auto record = [this,
                 id](void (*set)(v1::RecordEventRequest*, const std::string&)) {
    return [this, id, set](const std::string& bad) {
      v1::RecordEventRequest request;
      request.set_task_id(id);
      set(&request, bad);
      return Record(request);
    };
  };
  const std::vector<Case> cases = {
      {"account_id", submit([](auto* r, const std::string& bad) {
         r->set_account_id("acct-" + bad);
       })},
      {"api_key_id", submit([](auto* r, const std::string& bad) {
         r->set_api_key_id("key-" + bad);
       })},
      {"group",
       submit([](auto* r, const std::string& bad) { r->set_group(bad); })},
      {"model", submit([](auto* r, const std::string& bad) {
         r->set_model("veo-3" + bad);
       })},
      {"endpoint", submit([](auto* r, const std::string& bad) {
         r->set_endpoint("/v1/video" + bad);
       })},
      {"request_id", submit([](auto* r, const std::string& bad) {
         r->set_request_id("req-" + bad);
       })},
      {"params.aspect_ratio", submit([](auto* r, const std::string& bad) {
         r->mutable_params()->set_aspect_ratio("16:9" + bad);
       })},
      {"event_id", record([](auto* r, const std::string& bad) {
         r->set_event_id("evt-" + bad);
         r->mutable_started();
       })},
      {"queued.upstream_task_id", record([](auto* r, const std::string& bad) {
         r->mutable_queued()->set_upstream_task_id("up-" + bad);
       })},
      {"downloaded.client", record([](auto* r, const std::string& bad) {
         r->mutable_downloaded()->set_client("app" + bad);
       })},
      {"completed.result_uris[0]", record([](auto* r, const std::string& bad) {
         r->mutable_completed()->add_result_uris("https://cdn.example.com/" +
                                                 bad);
       })},
      {"task_id",
       [this](const std::string& bad) {
         v1::GetTaskRequest request;
         request.set_task_id("t-" + bad);
         v1::Task task;
         return stub_->GetTask(AuthContext(kSupportToken).get(), request,
                               &task);
       }},
      {"author",
       [this, id](const std::string& bad) {
         v1::AddNoteRequest request;
         request.set_task_id(id);
         request.set_text("looked into it");
         request.set_author("bob" + bad);
         v1::Task task;
         return stub_->AddNote(AuthContext(kSupportToken).get(), request,
                               &task);
       }},
      {"upstream_task_id",
       [this](const std::string& bad) {
         v1::ListTasksRequest request;
         request.set_upstream_task_id("up-" + bad);
         v1::ListTasksResponse response;
         return stub_->ListTasks(AuthContext(kSupportToken).get(), request,
                                 &response);
       }},
  };
  for (const Case& c : cases) {
    for (const std::string& bad : controls) {
      grpc::Status status = c.call(bad);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << c.field << " with " << ::testing::PrintToString(bad);
      EXPECT_THAT(ViolatedFields(status),
                  ElementsAre(c.field + " FIELD_CONTROL_CHARACTER"))
          << ::testing::PrintToString(bad);
      // The message names the field without echoing the character.
      EXPECT_THAT(status.error_message(), Not(HasSubstr("\x1b")));
    }
  }

  // Free text keeps them (the CLI escapes them when it prints).
  EXPECT_TRUE(Submit(Request("line one\nline two \x1b[1m")).ok());
  v1::AddNoteRequest note;
  note.set_task_id(id);
  note.set_text("first line\nsecond line");
  v1::Task task;
  EXPECT_TRUE(
      stub_->AddNote(AuthContext(kSupportToken).get(), note, &task).ok());
  CommandResult get = Cli(kSupportToken, {"get", id});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_THAT(get.out, Not(HasSubstr("\x1b")));
}

TEST(ApiChecksAuthFileTest, APrincipalWithAControlCharacterStopsStartup) {
  TempDir dir;
  const std::string auth = dir.Write(
      "auth", "support alice " + Sha256Hex(kSupportToken) +
                  "\nadmin ro\x1b[2Jot " + Sha256Hex(kAdminToken) + "\n");
  ServerProcess server(dir.File("data"), {"--auth-file", auth});
  std::string error;
  EXPECT_FALSE(server.Start(&error));
  EXPECT_THAT(error, HasSubstr(auth + ":2"));
  EXPECT_THAT(error, HasSubstr("control character"));
}

// --- ListModels: an unknown kind is not an empty catalog.

TEST_F(ApiChecksTest, ListModelsWithAnUnknownKindIsInvalidArgumentNamingKind) {
  v1::ListModelsRequest request;
  request.set_kind(static_cast<v1::TaskKind>(42));
  v1::ListModelsResponse response;
  grpc::Status status =
      stub_->ListModels(AuthContext(kSupportToken).get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(status), ElementsAre("kind FIELD_OUT_OF_RANGE"));

  request.set_kind(v1::TASK_KIND_VIDEO);
  ASSERT_TRUE(
      stub_->ListModels(AuthContext(kSupportToken).get(), request, &response)
          .ok());
  EXPECT_GT(response.models_size(), 0);
}

}  // namespace
}  // namespace tasktrail::testing
