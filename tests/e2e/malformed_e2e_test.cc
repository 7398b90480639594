// Bad input never hurts: a table of malformed requests against the real
// server, each answered with its specific code (never INTERNAL or UNKNOWN),
// after which the server is still healthy and serving.
#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::HasSubstr;
using Stub = v1::TaskTracker::Stub;

v1::SubmitTaskRequest ValidSubmit() {
  v1::SubmitTaskRequest request;
  request.set_account_id("acct-1");
  request.set_model("gen4_turbo");
  request.mutable_params()->set_aspect_ratio("1280:720");
  auto* image = request.mutable_params()->add_reference_images();
  image->set_uri("https://cdn.example.com/ref.png");
  return request;
}

struct MalformedCase {
  std::string name;
  grpc::StatusCode expected;
  std::function<grpc::Status(Stub*, const std::string& task_id)> call;
};

grpc::Status Submit(Stub* stub,
                    const std::function<void(v1::SubmitTaskRequest*)>& edit) {
  v1::SubmitTaskRequest request = ValidSubmit();
  edit(&request);
  v1::SubmitTaskResponse response;
  return stub->SubmitTask(DeadlineContext().get(), request, &response);
}

grpc::Status Record(Stub* stub, const std::string& task_id,
                    const std::function<void(v1::RecordEventRequest*)>& edit) {
  v1::RecordEventRequest request;
  request.set_task_id(task_id);
  edit(&request);
  v1::RecordEventResponse response;
  return stub->RecordEvent(DeadlineContext().get(), request, &response);
}

std::vector<MalformedCase> Cases() {
  using Code = grpc::StatusCode;
  const Code kInvalid = Code::INVALID_ARGUMENT;
  const std::string long_id(200, 'a');
  auto submit = [](std::function<void(v1::SubmitTaskRequest*)> edit) {
    return
        [edit](Stub* stub, const std::string&) { return Submit(stub, edit); };
  };
  auto record = [](std::function<void(v1::RecordEventRequest*)> edit) {
    return [edit](Stub* stub, const std::string& id) {
      return Record(stub, id, edit);
    };
  };
  std::vector<MalformedCase> cases = {
      {"submit: empty", kInvalid,
       [](Stub* stub, const std::string&) {
         v1::SubmitTaskResponse response;
         return stub->SubmitTask(DeadlineContext().get(),
                                 v1::SubmitTaskRequest(), &response);
       }},
      {"submit: no account", kInvalid,
       submit([](auto* r) { r->clear_account_id(); })},
      {"submit: no model", kInvalid, submit([](auto* r) { r->clear_model(); })},
      {"submit: account too long", kInvalid,
       submit([long_id](auto* r) { r->set_account_id(long_id); })},
      {"submit: model too long", kInvalid,
       submit([long_id](auto* r) { r->set_model(long_id); })},
      {"submit: request_id too long", kInvalid,
       submit([long_id](auto* r) { r->set_request_id(long_id); })},
      {"submit: api_key_id too long", kInvalid,
       submit([](auto* r) { r->set_api_key_id(std::string(300, 'k')); })},
      {"submit: group too long", kInvalid,
       submit([](auto* r) { r->set_group(std::string(300, 'g')); })},
      {"submit: endpoint too long", kInvalid,
       submit([](auto* r) { r->set_endpoint(std::string(300, '/')); })},
      {"submit: negative charge", kInvalid,
       submit([](auto* r) { r->set_charge_units(-40); })},
      {"submit: prompt over 32 KiB", kInvalid, submit([](auto* r) {
         r->mutable_params()->set_prompt(std::string(33 * 1024, 'p'));
       })},
      {"submit: request over the 64 KiB receive limit",
       Code::RESOURCE_EXHAUSTED, submit([](auto* r) {
         r->mutable_params()->set_prompt(std::string(70 * 1024, 'p'));
       })},
      {"submit: 17 reference images", kInvalid, submit([](auto* r) {
         for (int i = 0; i < 16; ++i) {
           r->mutable_params()->add_reference_images()->set_uri(
               "https://cdn.example.com/" + std::to_string(i) + ".png");
         }
       })},
      {"submit: reference URI over 2048 bytes", kInvalid, submit([](auto* r) {
         r->mutable_params()->mutable_reference_images(0)->set_uri(
             "https://cdn.example.com/" + std::string(3000, 'x'));
       })},
      {"submit: negative image size", kInvalid, submit([](auto* r) {
         r->mutable_params()->mutable_reference_images(0)->set_size_bytes(-1);
       })},
      {"submit: image a billion pixels wide", kInvalid, submit([](auto* r) {
         r->mutable_params()->mutable_reference_images(0)->set_width(
             1000000000);
       })},
      {"submit: negative duration", kInvalid,
       submit([](auto* r) { r->mutable_params()->set_duration_seconds(-5); })},
      {"submit: huge duration", kInvalid, submit([](auto* r) {
         r->mutable_params()->set_duration_seconds(2000000000);
       })},
      {"submit: negative image count", kInvalid,
       submit([](auto* r) { r->mutable_params()->set_image_count(-1); })},
      {"submit: seed out of range", kInvalid,
       submit([](auto* r) { r->mutable_params()->set_seed(-7); })},
      {"submit: unknown model", kInvalid,
       submit([](auto* r) { r->set_model("gen5_hyper"); })},
      {"submit: ratio not a ratio", kInvalid,
       submit([](auto* r) { r->mutable_params()->set_aspect_ratio("x:y"); })},
      {"submit: resolution nonsense", kInvalid,
       submit([](auto* r) { r->mutable_params()->set_resolution("huge"); })},
      {"submit: javascript callback", kInvalid, submit([](auto* r) {
         r->mutable_params()->set_callback_url("javascript:alert(1)");
       })},
      {"submit: callback to the metadata service", kInvalid,
       submit([](auto* r) {
         r->mutable_params()->set_callback_url(
             "https://169.254.169.254/latest/meta-data");
       })},
      {"event: no task_id", kInvalid,
       [](Stub* stub, const std::string&) {
         return Record(stub, "", [](auto* r) { r->mutable_started(); });
       }},
      {"event: task_id too long", kInvalid,
       [](Stub* stub, const std::string&) {
         return Record(stub, std::string(500, 'T'),
                       [](auto* r) { r->mutable_started(); });
       }},
      {"event: unknown task", Code::NOT_FOUND,
       [](Stub* stub, const std::string&) {
         return Record(stub, "01ARZ3NDEKTSV4RRFFQ69G5FAV",
                       [](auto* r) { r->mutable_started(); });
       }},
      {"event: none set", kInvalid, record([](auto*) {})},
      {"event: progress 101", kInvalid,
       record([](auto* r) { r->mutable_polled()->set_progress_percent(101); })},
      {"event: progress -1", kInvalid,
       record([](auto* r) { r->mutable_started()->set_progress_percent(-1); })},
      {"event: negative queue position", kInvalid,
       record([](auto* r) { r->mutable_queued()->set_queue_position(-3); })},
      {"event: HTTP status 42", kInvalid,
       record([](auto* r) { r->mutable_failed()->set_http_status(42); })},
      {"event: HTTP status 1000", kInvalid,
       record([](auto* r) { r->mutable_polled()->set_http_status(1000); })},
      {"event: event_id too long", kInvalid, record([long_id](auto* r) {
         r->set_event_id(long_id);
         r->mutable_started();
       })},
      {"event: occur_time an hour ahead", kInvalid, record([](auto* r) {
         r->mutable_started();
         r->mutable_occur_time()->set_seconds(
             std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count() +
             3600);
       })},
      {"event: occur_time nanos out of range", kInvalid, record([](auto* r) {
         r->mutable_started();
         r->mutable_occur_time()->set_nanos(2000000000);
       })},
      {"event: 100 result URIs", kInvalid, record([](auto* r) {
         for (int i = 0; i < 100; ++i) {
           r->mutable_completed()->add_result_uris("https://cdn.example.com/r");
         }
       })},
      {"event: failure message over 4 KiB", kInvalid, record([](auto* r) {
         r->mutable_failed()->set_message(std::string(5000, 'm'));
       })},
      {"event: negative refund", kInvalid,
       record([](auto* r) { r->mutable_refunded()->set_units(-1); })},
      {"event: download before completion", Code::FAILED_PRECONDITION,
       record([](auto* r) {
         r->mutable_downloaded()->set_uri("https://cdn.example.com/r");
       })},
      {"event: refund before failure", Code::FAILED_PRECONDITION,
       record([](auto* r) { r->mutable_refunded(); })},
      {"event: negative eta", kInvalid, record([](auto* r) {
         r->mutable_polled()->mutable_eta()->set_seconds(-9);
       })},
      {"get: empty id", kInvalid,
       [](Stub* stub, const std::string&) {
         v1::Task task;
         return stub->GetTask(DeadlineContext().get(), v1::GetTaskRequest(),
                              &task);
       }},
      {"get: id of 1000 bytes", kInvalid,
       [](Stub* stub, const std::string&) {
         v1::GetTaskRequest request;
         request.set_task_id(std::string(1000, 'x'));
         v1::Task task;
         return stub->GetTask(DeadlineContext().get(), request, &task);
       }},
      {"get: unknown id", Code::NOT_FOUND,
       [](Stub* stub, const std::string&) {
         v1::GetTaskRequest request;
         request.set_task_id("not-a-task");
         v1::Task task;
         return stub->GetTask(DeadlineContext().get(), request, &task);
       }},
      {"list: negative page size", kInvalid,
       [](Stub* stub, const std::string&) {
         v1::ListTasksRequest request;
         request.set_page_size(-1);
         v1::ListTasksResponse response;
         return stub->ListTasks(DeadlineContext().get(), request, &response);
       }},
      {"list: forged page token", kInvalid,
       [](Stub* stub, const std::string&) {
         v1::ListTasksRequest request;
         request.set_page_token("AAAA");
         v1::ListTasksResponse response;
         return stub->ListTasks(DeadlineContext().get(), request, &response);
       }},
      {"list: state 99", kInvalid,
       [](Stub* stub, const std::string&) {
         v1::ListTasksRequest request;
         request.set_state(static_cast<v1::TaskState>(99));
         v1::ListTasksResponse response;
         return stub->ListTasks(DeadlineContext().get(), request, &response);
       }},
      {"queue status: empty id", kInvalid,
       [](Stub* stub, const std::string&) {
         v1::QueueStatus status;
         return stub->GetQueueStatus(DeadlineContext().get(),
                                     v1::GetQueueStatusRequest(), &status);
       }},
      {"note: empty text", kInvalid,
       [](Stub* stub, const std::string& id) {
         v1::AddNoteRequest request;
         request.set_task_id(id);
         v1::Task task;
         return stub->AddNote(DeadlineContext().get(), request, &task);
       }},
      {"note: text over 4 KiB", kInvalid,
       [](Stub* stub, const std::string& id) {
         v1::AddNoteRequest request;
         request.set_task_id(id);
         request.set_text(std::string(5000, 'n'));
         v1::Task task;
         return stub->AddNote(DeadlineContext().get(), request, &task);
       }},
      {"note: unknown task", Code::NOT_FOUND,
       [](Stub* stub, const std::string&) {
         v1::AddNoteRequest request;
         request.set_task_id("01ARZ3NDEKTSV4RRFFQ69G5FAV");
         request.set_text("hello");
         v1::Task task;
         return stub->AddNote(DeadlineContext().get(), request, &task);
       }},
      {"stats: window 48h", kInvalid,
       [](Stub* stub, const std::string&) {
         v1::GetStatsRequest request;
         request.mutable_window()->set_seconds(48 * 3600);
         v1::Stats stats;
         return stub->GetStats(DeadlineContext().get(), request, &stats);
       }},
      {"stats: negative window", kInvalid,
       [](Stub* stub, const std::string&) {
         v1::GetStatsRequest request;
         request.mutable_window()->set_seconds(-60);
         v1::Stats stats;
         return stub->GetStats(DeadlineContext().get(), request, &stats);
       }},
      {"validate: prompt over 32 KiB", kInvalid,
       [](Stub* stub, const std::string&) {
         v1::ValidateTaskRequest request;
         request.set_model("veo-3");
         request.mutable_params()->set_prompt(std::string(40 * 1024, 'p'));
         v1::ValidateTaskResponse response;
         return stub->ValidateTask(DeadlineContext().get(), request, &response);
       }},
      {"watch: negative after_seq", kInvalid,
       [](Stub* stub, const std::string& id) {
         v1::WatchTaskRequest request;
         request.set_task_id(id);
         request.set_after_seq(-1);
         auto context = DeadlineContext();
         auto reader = stub->WatchTask(context.get(), request);
         v1::TaskEvent event;
         while (reader->Read(&event)) {
         }
         return reader->Finish();
       }},
      {"watch: unknown task", Code::NOT_FOUND,
       [](Stub* stub, const std::string&) {
         v1::WatchTaskRequest request;
         request.set_task_id("01ARZ3NDEKTSV4RRFFQ69G5FAV");
         auto context = DeadlineContext();
         auto reader = stub->WatchTask(context.get(), request);
         v1::TaskEvent event;
         while (reader->Read(&event)) {
         }
         return reader->Finish();
       }},
  };
  return cases;
}

TEST(MalformedTest, EveryMalformedRequestGetsItsOwnCodeAndTheServerStaysUp) {
  TempDir db;
  ServerProcess server(db.path());
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  auto stub = server.NewStub();
  v1::SubmitTaskResponse valid;
  ASSERT_TRUE(
      stub->SubmitTask(DeadlineContext().get(), ValidSubmit(), &valid).ok());
  const std::string task_id = valid.task().task_id();

  const std::vector<MalformedCase> cases = Cases();
  ASSERT_GE(cases.size(), 40u);
  for (const MalformedCase& c : cases) {
    SCOPED_TRACE(c.name);
    const grpc::Status status = c.call(stub.get(), task_id);
    EXPECT_EQ(status.error_code(), c.expected) << status.error_message();
    EXPECT_NE(status.error_code(), grpc::StatusCode::INTERNAL);
    EXPECT_NE(status.error_code(), grpc::StatusCode::UNKNOWN);
  }

  // Still healthy, and nothing was half-written.
  auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
      server.address(), grpc::InsecureChannelCredentials()));
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health
                  ->Check(DeadlineContext().get(),
                          grpc::health::v1::HealthCheckRequest(), &response)
                  .ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  v1::ListTasksResponse tasks;
  ASSERT_TRUE(
      stub->ListTasks(DeadlineContext().get(), v1::ListTasksRequest(), &tasks)
          .ok());
  ASSERT_EQ(tasks.tasks_size(), 1);
  v1::GetTaskRequest get;
  get.set_task_id(task_id);
  get.set_include_events(true);
  v1::Task task;
  ASSERT_TRUE(stub->GetTask(DeadlineContext().get(), get, &task).ok());
  EXPECT_EQ(task.events_size(), 1);
  EXPECT_EQ(task.state(), v1::TASK_STATE_SUBMITTED);
}

TEST(MalformedTest, GetTaskBytesThatDoNotParseAreInvalidArgument) {
  TempDir db;
  ServerProcess server(db.path());
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  grpc::GenericStub generic(grpc::CreateChannel(
      server.address(), grpc::InsecureChannelCredentials()));
  // A length-delimited field 1 (task_id) that claims 100 bytes and has 2.
  const std::string truncated = std::string("\x0a\x64", 2) + "ab";
  grpc::Slice slice(truncated);
  const grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  auto context = DeadlineContext();
  grpc::Status status;
  absl::Notification answered;
  generic.UnaryCall(context.get(), "/tasktrail.v1.TaskTracker/GetTask",
                    grpc::StubOptions(), &request, &response,
                    [&](grpc::Status result) {
                      status = std::move(result);
                      answered.Notify();
                    });
  answered.WaitForNotification();  // the context's deadline bounds the wait
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("GetTaskRequest"));

  // The server still answers typed calls of the same method.
  auto stub = server.NewStub();
  v1::GetTaskRequest get;
  get.set_task_id("01ARZ3NDEKTSV4RRFFQ69G5FAV");
  v1::Task task;
  EXPECT_EQ(stub->GetTask(DeadlineContext().get(), get, &task).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST(OverloadTest, CallsOverTheInFlightCapAreRefusedQuickly) {
  TempDir db;
  ServerProcess server(db.path(), {"--max-in-flight", "1"});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  auto channel =
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  std::atomic<int> refused{0};
  std::atomic<int> other{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 16; ++t) {
    clients.emplace_back([&, t] {
      auto stub = v1::TaskTracker::NewStub(channel);
      for (int i = 0; i < 50 && refused.load() == 0; ++i) {
        v1::SubmitTaskRequest request = ValidSubmit();
        request.mutable_params()->mutable_reference_images(0)->set_uri(
            "https://cdn.example.com/" + std::to_string(t * 100 + i) + ".png");
        v1::SubmitTaskResponse response;
        grpc::Status status =
            stub->SubmitTask(DeadlineContext().get(), request, &response);
        if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
          refused.fetch_add(1);
        } else if (!status.ok()) {
          other.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& client : clients) client.join();
  EXPECT_GT(refused.load(), 0);
  EXPECT_EQ(other.load(), 0);
}

}  // namespace
}  // namespace tasktrail::testing
