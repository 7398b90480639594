// End-to-end tests: the real tasktraild on loopback with a real RocksDB in a
// temp directory, called through the generated stub.
#include <signal.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using v1::EventType;
using v1::RecordEventRequest;
using v1::Task;
using v1::TaskEvent;

class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(db_.path());
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    stub_ = server_->NewStub();
  }

  Task Submit(const std::string& account, const std::string& model = "veo-3",
              const std::string& request_id = "") {
    v1::SubmitTaskRequest request;
    request.set_account_id(account);
    request.set_model(model);
    request.set_endpoint("/v1/videos");
    request.set_request_id(request_id);
    request.set_charge_units(40);
    // A distinct prompt per call: identical content would be deduplicated.
    request.mutable_params()->set_prompt(
        "a red fox running through snow, take " +
        std::to_string(++submissions_));
    request.mutable_params()->set_aspect_ratio("16:9");
    v1::SubmitTaskResponse response;
    grpc::Status status =
        stub_->SubmitTask(DeadlineContext().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.task();
  }

  grpc::Status Record(const RecordEventRequest& request,
                      v1::RecordEventResponse* response = nullptr) {
    v1::RecordEventResponse ignored;
    return stub_->RecordEvent(DeadlineContext().get(), request,
                              response != nullptr ? response : &ignored);
  }

  static RecordEventRequest Queued(const std::string& task_id,
                                   const std::string& upstream_id) {
    RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_queued()->set_upstream_task_id(upstream_id);
    request.mutable_queued()->set_queue_position(14);
    return request;
  }

  static RecordEventRequest Polled(const std::string& task_id,
                                   const std::string& status, int progress) {
    RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_polled()->set_upstream_status(status);
    request.mutable_polled()->set_progress_percent(progress);
    return request;
  }

  static RecordEventRequest Started(const std::string& task_id) {
    RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_started()->set_progress_percent(1);
    return request;
  }

  static RecordEventRequest Completed(const std::string& task_id) {
    RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_completed()->add_result_uris(
        "https://cdn.example.com/out/" + task_id + ".mp4");
    return request;
  }

  static RecordEventRequest Failed(const std::string& task_id) {
    RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_failed()->set_http_status(503);
    request.mutable_failed()->set_message("service overloaded");
    return request;
  }

  Task Get(const std::string& task_id, bool events = true) {
    v1::GetTaskRequest request;
    request.set_task_id(task_id);
    request.set_include_events(events);
    Task task;
    grpc::Status status =
        stub_->GetTask(DeadlineContext().get(), request, &task);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return task;
  }

  static std::vector<EventType> Types(const Task& task) {
    std::vector<EventType> types;
    for (const TaskEvent& event : task.events()) types.push_back(event.type());
    return types;
  }

  TempDir db_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::TaskTracker::Stub> stub_;
  int submissions_ = 0;
};

TEST_F(E2eTest, FullLifecycleIsRecordedAsNumberedTimeline) {
  const Task submitted = Submit("acct-1");
  ASSERT_EQ(submitted.task_id().size(), 26u);
  EXPECT_EQ(submitted.state(), v1::TASK_STATE_SUBMITTED);
  const std::string id = submitted.task_id();

  ASSERT_TRUE(Record(Queued(id, "up-77")).ok());
  ASSERT_TRUE(Record(Polled(id, "in_queue", 0)).ok());
  ASSERT_TRUE(Record(Started(id)).ok());
  ASSERT_TRUE(Record(Polled(id, "running", 50)).ok());
  ASSERT_TRUE(Record(Completed(id)).ok());
  RecordEventRequest download;
  download.set_task_id(id);
  download.mutable_downloaded()->set_uri("https://cdn.example.com/out.mp4");
  download.mutable_downloaded()->set_client("web");
  ASSERT_TRUE(Record(download).ok());

  const Task task = Get(id);
  EXPECT_EQ(task.state(), v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(task.upstream_task_id(), "up-77");
  EXPECT_EQ(task.upstream_status(), "running");
  EXPECT_EQ(task.poll_count(), 2);
  EXPECT_EQ(task.progress_percent(), 100);
  EXPECT_EQ(task.download_count(), 1);
  EXPECT_EQ(task.charge_units(), 40);
  ASSERT_EQ(task.result_uris_size(), 1);
  EXPECT_THAT(Types(task),
              ElementsAre(v1::EVENT_TYPE_SUBMITTED, v1::EVENT_TYPE_QUEUED,
                          v1::EVENT_TYPE_POLLED, v1::EVENT_TYPE_STARTED,
                          v1::EVENT_TYPE_POLLED, v1::EVENT_TYPE_COMPLETED,
                          v1::EVENT_TYPE_DOWNLOADED));
  for (int i = 0; i < task.events_size(); ++i) {
    EXPECT_EQ(task.events(i).seq(), i + 1);
    EXPECT_TRUE(task.events(i).has_time());
  }
  EXPECT_EQ(task.events(1).queued().queue_position(), 14);
  EXPECT_EQ(task.events(6).downloaded().client(), "web");

  // Without include_events the timeline is left out.
  EXPECT_EQ(Get(id, /*events=*/false).events_size(), 0);
}

TEST_F(E2eTest, LongTimelineIsReturnedWholeAndInOrder) {
  // More events than GetTask fetches by point lookups: the rest of the
  // timeline comes from a scan, and both must read the same way.
  const std::string id = Submit("acct-1").task_id();
  ASSERT_TRUE(Record(Queued(id, "up-long")).ok());
  ASSERT_TRUE(Record(Started(id)).ok());
  constexpr int kPolls = 80;
  for (int i = 0; i < kPolls; ++i) {
    // Distinct progress values: no poll folds into the one before.
    ASSERT_TRUE(Record(Polled(id, "running", i)).ok());
  }
  const Task task = Get(id);
  ASSERT_EQ(task.events_size(), 3 + kPolls);
  EXPECT_EQ(task.last_event_seq(), 3 + kPolls);
  for (int i = 0; i < task.events_size(); ++i) {
    EXPECT_EQ(task.events(i).seq(), i + 1);
  }
  EXPECT_EQ(task.events(2 + kPolls).polled().progress_percent(), kPolls - 1);
  EXPECT_EQ(task.poll_count(), kPolls);

  // Without the timeline the answer is the same task.
  Task without_events = task;
  without_events.clear_events();
  EXPECT_EQ(Get(id, /*events=*/false).SerializeAsString(),
            without_events.SerializeAsString());
}

TEST_F(E2eTest, LifecycleViolationsAreFailedPreconditionNamingTheState) {
  const std::string id = Submit("acct-1").task_id();
  RecordEventRequest download;
  download.set_task_id(id);
  download.mutable_downloaded()->set_uri("https://cdn.example.com/x.mp4");
  grpc::Status early = Record(download);
  EXPECT_EQ(early.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(early.error_message(), HasSubstr("SUBMITTED"));

  ASSERT_TRUE(Record(Failed(id)).ok());
  grpc::Status late = Record(Completed(id));
  EXPECT_EQ(late.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(late.error_message(), HasSubstr("FAILED"));
  grpc::Status poll = Record(Polled(id, "running", 10));
  EXPECT_EQ(poll.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // Nothing was appended by the refused events.
  EXPECT_THAT(Types(Get(id)),
              ElementsAre(v1::EVENT_TYPE_SUBMITTED, v1::EVENT_TYPE_FAILED));
}

TEST_F(E2eTest, SecretsNeverReachStorageOrTheCli) {
  // Split so that secret scanners do not flag this test file.
  const std::string key =
      std::string("sk-proj-") + "Zq8Lm3Vt0Yx6Pw2Rk9Nd4Hs7Jc1Gb5Fe";
  v1::SubmitTaskRequest submit;
  submit.set_account_id("acct-s");
  submit.set_model("veo-3");
  submit.set_api_key_id(key);
  submit.mutable_params()->set_prompt("a quiet harbour");
  v1::SubmitTaskResponse submitted;
  ASSERT_TRUE(
      stub_->SubmitTask(DeadlineContext().get(), submit, &submitted).ok());
  const std::string id = submitted.task().task_id();
  EXPECT_THAT(submitted.task().api_key_id(), ::testing::StartsWith("fp:"));

  RecordEventRequest failed = Failed(id);
  failed.mutable_failed()->set_http_status(401);
  failed.mutable_failed()->set_message(
      "Incorrect API key provided: " + key +
      ". Request was https://api.example.com/v1?api_key=" + key);
  ASSERT_TRUE(Record(failed).ok());
  v1::AddNoteRequest note;
  note.set_task_id(id);
  note.set_text("user pasted Bearer " + key + " into the form");
  Task noted;
  ASSERT_TRUE(stub_->AddNote(DeadlineContext().get(), note, &noted).ok());

  const Task task = Get(id);
  const std::string stored = task.DebugString();
  EXPECT_THAT(stored,
              ::testing::Not(HasSubstr("Zq8Lm3Vt0Yx6Pw2Rk9Nd4Hs7Jc1Gb5Fe")));
  EXPECT_THAT(task.failure().message(), HasSubstr("[REDACTED]"));
  EXPECT_EQ(task.failure().category(), v1::FAILURE_CATEGORY_AUTH);
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"get", id}, {"get", id, "--json"}}) {
    std::vector<std::string> argv = {CliPath(), "--server", server_->address()};
    argv.insert(argv.end(), command.begin(), command.end());
    CommandResult cli = RunCommand(argv);
    ASSERT_EQ(cli.exit_code, 0) << cli.err;
    EXPECT_THAT(cli.out,
                ::testing::Not(HasSubstr("Zq8Lm3Vt0Yx6Pw2Rk9Nd4Hs7Jc1Gb5Fe")));
  }
}

TEST_F(E2eTest, UnknownTaskIsNotFound) {
  Task task;
  v1::GetTaskRequest request;
  request.set_task_id("01ARZ3NDEKTSV4RRFFQ69G5FAV");
  EXPECT_EQ(
      stub_->GetTask(DeadlineContext().get(), request, &task).error_code(),
      grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Record(Polled("01ARZ3NDEKTSV4RRFFQ69G5FAV", "x", 1)).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(E2eTest, MissingFieldsAreInvalidArgumentWithBadRequestDetails) {
  v1::SubmitTaskRequest request;  // no account_id, no model
  v1::SubmitTaskResponse response;
  grpc::Status status =
      stub_->SubmitTask(DeadlineContext().get(), request, &response);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  EXPECT_EQ(details.code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::BadRequest bad_request;
  google::rpc::ErrorInfo info;
  bool has_bad_request = false;
  bool has_info = false;
  for (const auto& any : details.details()) {
    if (any.UnpackTo(&bad_request)) has_bad_request = true;
    if (any.UnpackTo(&info)) has_info = true;
  }
  ASSERT_TRUE(has_bad_request);
  ASSERT_TRUE(has_info);
  std::set<std::string> fields;
  for (const auto& violation : bad_request.field_violations()) {
    fields.insert(violation.field());
    EXPECT_EQ(violation.reason(), "FIELD_REQUIRED");
  }
  EXPECT_EQ(fields, (std::set<std::string>{"account_id", "model"}));
  EXPECT_EQ(info.domain(), "tasktrail.v1");
  EXPECT_EQ(info.reason(), "INVALID_REQUEST");
  EXPECT_EQ(info.metadata().at("violations"), "2");

  RecordEventRequest no_event;
  no_event.set_task_id(Submit("acct-1").task_id());
  EXPECT_EQ(Record(no_event).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(E2eTest, EventIdReplayIsNotAppliedTwiceAndConflictIsAlreadyExists) {
  const std::string id = Submit("acct-1").task_id();
  RecordEventRequest queued = Queued(id, "up-1");
  queued.set_event_id("evt-queued");
  v1::RecordEventResponse first;
  ASSERT_TRUE(Record(queued, &first).ok());
  EXPECT_TRUE(first.applied());

  // Replays after further events still get the original answer.
  ASSERT_TRUE(Record(Started(id)).ok());
  v1::RecordEventResponse replay;
  ASSERT_TRUE(Record(queued, &replay).ok());
  EXPECT_FALSE(replay.applied());
  EXPECT_EQ(replay.seq(), first.seq());

  RecordEventRequest different = Queued(id, "up-2");
  different.set_event_id("evt-queued");
  EXPECT_EQ(Record(different).error_code(), grpc::StatusCode::ALREADY_EXISTS);

  EXPECT_THAT(Types(Get(id)),
              ElementsAre(v1::EVENT_TYPE_SUBMITTED, v1::EVENT_TYPE_QUEUED,
                          v1::EVENT_TYPE_STARTED));
}

TEST_F(E2eTest, IdenticalPollsAreFoldedButCounted) {
  const std::string id = Submit("acct-1").task_id();
  ASSERT_TRUE(Record(Queued(id, "up-1")).ok());
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(Record(Polled(id, "in_queue", 0)).ok());
  ASSERT_TRUE(Record(Polled(id, "running", 20)).ok());
  ASSERT_TRUE(Record(Polled(id, "running", 20)).ok());

  const Task task = Get(id);
  EXPECT_EQ(task.poll_count(), 7);
  ASSERT_THAT(Types(task),
              ElementsAre(v1::EVENT_TYPE_SUBMITTED, v1::EVENT_TYPE_QUEUED,
                          v1::EVENT_TYPE_POLLED, v1::EVENT_TYPE_POLLED));
  EXPECT_EQ(task.events(2).repeat_count(), 5);
  EXPECT_EQ(task.events(3).repeat_count(), 2);
  EXPECT_GE(task.events(2).last_time().seconds(),
            task.events(2).time().seconds());
}

TEST_F(E2eTest, OccurTimeMustNotBeInTheFutureOrBeforeThePreviousEvent) {
  const std::string id = Submit("acct-1").task_id();
  const auto now = std::chrono::system_clock::now();
  const int64_t now_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch())
          .count();

  RecordEventRequest future = Queued(id, "up-1");
  future.mutable_occur_time()->set_seconds(now_seconds + 60);
  EXPECT_EQ(Record(future).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // Both within the clock-skew allowance before the task's creation.
  RecordEventRequest queued = Queued(id, "up-1");
  queued.mutable_occur_time()->set_seconds(now_seconds - 1);
  ASSERT_TRUE(Record(queued).ok());
  RecordEventRequest earlier = Started(id);
  earlier.mutable_occur_time()->set_seconds(now_seconds - 3);
  EXPECT_EQ(Record(earlier).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  const Task task = Get(id);
  EXPECT_EQ(task.events(1).time().seconds(), now_seconds - 1);
  EXPECT_EQ(task.state(), v1::TASK_STATE_QUEUED);
}

TEST_F(E2eTest, RefundIsRecordedOnceAfterAFailure) {
  const std::string id = Submit("acct-1").task_id();
  RecordEventRequest refund;
  refund.set_task_id(id);
  refund.mutable_refunded()->set_reason("upstream failure");
  EXPECT_EQ(Record(refund).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);  // not failed yet
  ASSERT_TRUE(Record(Failed(id)).ok());
  v1::RecordEventResponse refunded;
  ASSERT_TRUE(Record(refund, &refunded).ok());
  EXPECT_TRUE(refunded.task().refunded());
  EXPECT_EQ(refunded.task().refunded_units(), 40);
  grpc::Status again = Record(refund);
  EXPECT_EQ(again.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(again.error_message(), HasSubstr("already refunded"));
}

TEST_F(E2eTest, ListTasksFiltersThroughIndexesNewestFirstAndPages) {
  std::vector<std::string> acct_a;
  for (int i = 0; i < 5; ++i) {
    acct_a.push_back(Submit("acct-a", i % 2 == 0 ? "veo-3" : "sora-2",
                            "req-" + std::to_string(i))
                         .task_id());
  }
  const std::string other = Submit("acct-b").task_id();
  ASSERT_TRUE(Record(Queued(acct_a[1], "up-xyz")).ok());

  auto list = [&](const v1::ListTasksRequest& request) {
    grpc::Status status;
    std::vector<std::string> ids =
        TaskIds(ListAllTasks(stub_.get(), request, &status));
    EXPECT_TRUE(status.ok()) << status.error_message();
    return ids;
  };

  v1::ListTasksRequest by_account;
  by_account.set_account_id("acct-a");
  by_account.set_page_size(2);
  EXPECT_THAT(list(by_account), ElementsAre(acct_a[4], acct_a[3], acct_a[2],
                                            acct_a[1], acct_a[0]));

  v1::ListTasksRequest all;
  EXPECT_THAT(list(all), ElementsAre(other, acct_a[4], acct_a[3], acct_a[2],
                                     acct_a[1], acct_a[0]));

  v1::ListTasksRequest by_model;
  by_model.set_account_id("acct-a");
  by_model.set_model("sora-2");
  EXPECT_THAT(list(by_model), ElementsAre(acct_a[3], acct_a[1]));

  v1::ListTasksRequest by_state;
  by_state.set_state(v1::TASK_STATE_QUEUED);
  EXPECT_THAT(list(by_state), ElementsAre(acct_a[1]));

  v1::ListTasksRequest by_upstream;
  by_upstream.set_upstream_task_id("up-xyz");
  EXPECT_THAT(list(by_upstream), ElementsAre(acct_a[1]));

  v1::ListTasksRequest by_request;
  by_request.set_request_id("req-3");
  EXPECT_THAT(list(by_request), ElementsAre(acct_a[3]));

  v1::ListTasksRequest bad_token;
  bad_token.set_page_token("not-a-token");
  v1::ListTasksResponse response;
  EXPECT_EQ(stub_->ListTasks(DeadlineContext().get(), bad_token, &response)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(E2eTest, AddNoteAppearsOnTaskAndTimeline) {
  const std::string id = Submit("acct-1").task_id();
  ASSERT_TRUE(Record(Failed(id)).ok());
  v1::AddNoteRequest note;
  note.set_task_id(id);
  note.set_author("alice");
  note.set_text("user asked why it failed");
  note.set_final_cause("remote service returned a temporary capacity error");
  Task task;
  ASSERT_TRUE(stub_->AddNote(DeadlineContext().get(), note, &task).ok());
  ASSERT_EQ(task.notes_size(), 1);
  EXPECT_EQ(task.notes(0).author(), "alice");
  EXPECT_EQ(task.notes(0).final_cause(),
            "remote service returned a temporary capacity error");
  EXPECT_THAT(Types(Get(id)),
              ElementsAre(v1::EVENT_TYPE_SUBMITTED, v1::EVENT_TYPE_FAILED,
                          v1::EVENT_TYPE_NOTE_ADDED));
}

// Reads a WatchTask stream to its end on a thread of its own.
class WatchCollector {
 public:
  WatchCollector(v1::TaskTracker::Stub* stub, const std::string& task_id,
                 int64_t after_seq) {
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(30));
    v1::WatchTaskRequest request;
    request.set_task_id(task_id);
    request.set_after_seq(after_seq);
    reader_ = stub->WatchTask(&context_, request);
    thread_ = std::thread([this] {
      TaskEvent event;
      while (reader_->Read(&event)) {
        std::lock_guard<std::mutex> lock(mutex_);
        events_.push_back(event);
        changed_.notify_all();
      }
      std::lock_guard<std::mutex> lock(mutex_);
      status_ = reader_->Finish();
      done_ = true;
      changed_.notify_all();
    });
  }
  ~WatchCollector() {
    context_.TryCancel();
    thread_.join();
  }

  // Waits until `count` events arrived; false on timeout or stream end.
  bool WaitForEvents(size_t count) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(20), [&] {
      return events_.size() >= count || done_;
    }) && events_.size() >= count;
  }
  // Waits for the end of the stream and returns its status.
  grpc::Status WaitForEnd() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(20), [&] { return done_; });
    return done_ ? status_
                 : grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no end");
  }
  std::vector<int64_t> Seqs() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<int64_t> seqs;
    for (const TaskEvent& event : events_) seqs.push_back(event.seq());
    return seqs;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<TaskEvent>> reader_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<TaskEvent> events_;
  bool done_ = false;
  grpc::Status status_;
};

TEST_F(E2eTest, WatchSendsHistoryThenLiveEventsUntilTheTaskFinishes) {
  const std::string id = Submit("acct-1").task_id();
  ASSERT_TRUE(Record(Queued(id, "up-1")).ok());
  WatchCollector watch(stub_.get(), id, 0);
  ASSERT_TRUE(watch.WaitForEvents(2));
  ASSERT_TRUE(Record(Started(id)).ok());
  ASSERT_TRUE(watch.WaitForEvents(3));
  ASSERT_TRUE(Record(Polled(id, "running", 40)).ok());
  ASSERT_TRUE(Record(Polled(id, "running", 40)).ok());  // folded: not re-sent
  ASSERT_TRUE(Record(Completed(id)).ok());
  EXPECT_TRUE(watch.WaitForEnd().ok());
  EXPECT_THAT(watch.Seqs(), ElementsAre(1, 2, 3, 4, 5));
}

TEST_F(E2eTest, WatchOnAFinishedTaskSendsStoredEventsAfterSeqAndEnds) {
  const std::string id = Submit("acct-1").task_id();
  ASSERT_TRUE(Record(Queued(id, "up-1")).ok());
  ASSERT_TRUE(Record(Failed(id)).ok());
  WatchCollector from_two(stub_.get(), id, 1);
  EXPECT_TRUE(from_two.WaitForEnd().ok());
  EXPECT_THAT(from_two.Seqs(), ElementsAre(2, 3));

  WatchCollector unknown(stub_.get(), "01ARZ3NDEKTSV4RRFFQ69G5FAV", 0);
  EXPECT_EQ(unknown.WaitForEnd().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(WatchLifetimeTest, AStreamEndsUnavailableAtItsLifetimeCapAndResumes) {
  TempDir db;
  ServerProcess server(db.path(), {"--watch-max-lifetime", "1s"});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  auto stub = server.NewStub();
  v1::SubmitTaskRequest submit;
  submit.set_account_id("acct-w");
  submit.set_model("veo-3");
  submit.mutable_params()->set_prompt("a long wait");
  v1::SubmitTaskResponse submitted;
  grpc::ClientContext submit_context;
  ASSERT_TRUE(stub->SubmitTask(&submit_context, submit, &submitted).ok());

  // The task never finishes; the server ends the stream, not the client.
  WatchCollector watch(stub.get(), submitted.task().task_id(), 0);
  const grpc::Status end = watch.WaitForEnd();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE)
      << end.error_message();
  EXPECT_THAT(end.error_message(), HasSubstr("after_seq=1"));
  EXPECT_THAT(watch.Seqs(), ElementsAre(1));
}

TEST_F(E2eTest, HealthServesAndReflectionIsOn) {
  auto channel = grpc::CreateChannel(server_->address(),
                                     grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  for (const std::string service : {"", "tasktrail.v1.TaskTracker"}) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(
        health->Check(DeadlineContext().get(), request, &response).ok());
    EXPECT_EQ(response.status(),
              grpc::health::v1::HealthCheckResponse::SERVING);
  }
  // Reflection: the generic method exists (an empty stream is answered).
  grpc::GenericStub generic(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  grpc::CompletionQueue queue;
  auto call = generic.PrepareCall(
      &context,
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &queue);
  call->StartCall(reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  ASSERT_TRUE(queue.Next(&tag, &ok));
  call->WritesDone(reinterpret_cast<void*>(2));
  ASSERT_TRUE(queue.Next(&tag, &ok));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(3));
  ASSERT_TRUE(queue.Next(&tag, &ok));
  EXPECT_NE(status.error_code(), grpc::StatusCode::UNIMPLEMENTED)
      << status.error_message();
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
}

TEST_F(E2eTest, SigtermShutsDownPromptlyWithAnOpenWatchStream) {
  const std::string id = Submit("acct-1").task_id();
  WatchCollector watch(stub_.get(), id, 0);
  ASSERT_TRUE(watch.WaitForEvents(1));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(server_->Stop(), 0) << server_->Log();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::seconds(10));
  const grpc::Status end = watch.WaitForEnd();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE)
      << end.error_message();
  EXPECT_THAT(end.error_message(), HasSubstr("after_seq=1"));
  // The stop line counts the durable writes and the fsyncs they shared.
  EXPECT_THAT(server_->Log(),
              ContainsRegex("tasktraild stopped writes=[1-9][0-9]* "
                            "fsync_groups=[1-9]"));

  // Everything acknowledged is there after a restart.
  ServerProcess again(db_.path());
  std::string error;
  ASSERT_TRUE(again.Start(&error)) << error;
  stub_ = again.NewStub();
  EXPECT_EQ(Get(id).events_size(), 1);
}

TEST_F(E2eTest, SecondServerOnTheSameDirectoryExitsWithAClearError) {
  ServerProcess second(db_.path());
  std::string error;
  EXPECT_FALSE(second.Start(&error));
  EXPECT_THAT(error, HasSubstr("already in use"));
  // The first server is unaffected.
  EXPECT_EQ(Submit("acct-1").state(), v1::TASK_STATE_SUBMITTED);
}

TEST_F(E2eTest, StartupLineNamesVersionAddressAndDb) {
  // Logged just after the port file that told the test the server is up.
  ASSERT_TRUE(server_->WaitForLog("tasktraild started"));
  const std::string log = server_->Log();
  EXPECT_THAT(log, HasSubstr("tasktraild started version="));
  EXPECT_THAT(log, HasSubstr("listen=" + server_->address()));
  EXPECT_THAT(log, HasSubstr("db=" + db_.path()));
}

}  // namespace
}  // namespace tasktrail::testing
