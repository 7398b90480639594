// What one GetTask answer may carry, through the real daemon: a timeline of
// more than 10,000 entries, or of more than 3 MiB, is cut to its first entry
// and the newest ones and says how many it left out (to a gRPC client with
// the default 4 MiB limit and to the CLI, as text and as JSON); a task takes
// at most 100 notes; and the largest task there can be is readable by both.
//
// The daemon runs with --sync=false: these tests write thousands of events to
// one task, one after the other (a task's writes are serialised), and what
// they check does not depend on fsyncs. It accepts requests of up to 1 MiB,
// so that the largest task is bounded by the field limits alone.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kClientLimit = int64_t{4} << 20;  // gRPC's default
constexpr int64_t kTimelineBytes = int64_t{3} << 20;
constexpr int kMaxIdBytes = 128;
constexpr int kMaxTextBytes = 4096;
constexpr int kMaxUriBytes = 2048;

// An https URI of `bytes` bytes. Padding and other long test values use
// letters that are not hex digits: a long hex run is scrubbed as a secret.
std::string LongUri(int n, size_t bytes) {
  std::string uri = absl::StrCat("https://cdn.example.com/", n, "/");
  uri.resize(std::max(uri.size(), bytes), 'x');
  return uri;
}

int64_t FramedSize(const v1::TaskEvent& event) {
  const size_t size = event.ByteSizeLong();
  return 1 + google::protobuf::io::CodedOutputStream::VarintSize64(size) +
         static_cast<int64_t>(size);
}

class LimitsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Requests of up to 1 MiB (64 KiB by default): the field limits, not the
    // request size, then bound what a task holds, as with any setting.
    server_ = std::make_unique<ServerProcess>(
        db_.path(), std::vector<std::string>{"--sync=false",
                                             "--max-receive-bytes=1048576"});
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    // A stub with gRPC's defaults: it refuses answers over 4 MiB.
    stub_ = server_->NewStub();
  }

  CommandResult Cli(const std::vector<std::string>& args) {
    return server_->RunCli(args, {"TZ=UTC"});
  }

  std::string Submit(v1::SubmitTaskRequest request) {
    v1::SubmitTaskResponse response;
    grpc::Status status =
        stub_->SubmitTask(DeadlineContext().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.task().task_id();
  }

  grpc::Status Record(const v1::RecordEventRequest& request) {
    v1::RecordEventResponse response;
    return stub_->RecordEvent(DeadlineContext().get(), request, &response);
  }

  // Sends `count` events made by `make(i)` from a few threads at once (the
  // server applies them one after the other); all must be recorded.
  template <typename Make>
  void RecordMany(int count, Make make) {
    constexpr int kThreads = 8;
    std::atomic<int> next{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        auto stub = server_->NewStub();
        for (int i = next++; i < count; i = next++) {
          v1::RecordEventResponse response;
          if (!stub->RecordEvent(DeadlineContext(30).get(), make(i), &response)
                   .ok()) {
            ++failed;
          }
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    ASSERT_EQ(failed.load(), 0);
  }

  // GetTask with its timeline, as a client with the default limits reads it.
  v1::Task GetWithEvents(const std::string& id) {
    v1::GetTaskRequest request;
    request.set_task_id(id);
    request.set_include_events(true);
    v1::Task task;
    grpc::Status status =
        stub_->GetTask(DeadlineContext(30).get(), request, &task);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return task;
  }

  // The first entry, then the newest ones without gaps up to the newest, the
  // ones between counted.
  static void ExpectFirstAndNewest(const v1::Task& task) {
    ASSERT_GE(task.events_size(), 2);
    EXPECT_EQ(task.events(0).seq(), 1);
    EXPECT_EQ(task.events(0).type(), v1::EVENT_TYPE_SUBMITTED);
    EXPECT_EQ(task.events(task.events_size() - 1).seq(), task.last_event_seq());
    for (int i = 2; i < task.events_size(); ++i) {
      ASSERT_EQ(task.events(i).seq(), task.events(i - 1).seq() + 1) << i;
    }
    EXPECT_EQ(task.omitted_event_count(),
              task.last_event_seq() - task.events_size());
  }

  // `tasktrail get ID --json`, parsed.
  v1::Task GetJson(const std::string& id) {
    CommandResult json = Cli({"get", id, "--json"});
    EXPECT_EQ(json.exit_code, 0) << json.err;
    v1::Task task;
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    const auto parsed =
        google::protobuf::util::JsonStringToMessage(json.out, &task, options);
    EXPECT_TRUE(parsed.ok()) << parsed.message() << json.out.substr(0, 200);
    return task;
  }

  TempDir db_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::TaskTracker::Stub> stub_;
};

TEST_F(LimitsE2eTest, LongTimelineShowsTheFirstAndNewestEntriesAndTheOmitted) {
  v1::SubmitTaskRequest submit;
  submit.set_account_id("acct-long");
  submit.set_model("veo-3");
  submit.mutable_params()->set_prompt("a very long render");
  const std::string id = Submit(submit);
  ASSERT_FALSE(id.empty());
  // 20,000 polls with distinct bodies (none folded), then the completion:
  // 20,002 entries, as in the report.
  RecordMany(20000, [&id](int i) {
    v1::RecordEventRequest poll;
    poll.set_task_id(id);
    poll.mutable_polled()->set_upstream_status(absl::StrCat("poll ", i));
    return poll;
  });
  v1::RecordEventRequest completed;
  completed.set_task_id(id);
  completed.mutable_completed()->add_result_uris("https://cdn.example.com/v");
  ASSERT_TRUE(Record(completed).ok());

  const v1::Task task = GetWithEvents(id);
  EXPECT_EQ(task.last_event_seq(), 20002);
  EXPECT_EQ(task.events_size(), 10000);
  EXPECT_EQ(task.omitted_event_count(), 10002);
  ExpectFirstAndNewest(task);
  EXPECT_EQ(task.events(1).seq(), 10004);
  EXPECT_EQ(task.events(task.events_size() - 1).type(),
            v1::EVENT_TYPE_COMPLETED);

  CommandResult get = Cli({"get", id});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr(absl::StrCat("… 10002 earlier events omitted; "
                                              "`tasktrail watch ",
                                              id, "` replays them all")));
  EXPECT_THAT(get.out, HasSubstr("SUCCEEDED"));

  const v1::Task json = GetJson(id);
  EXPECT_EQ(json.omitted_event_count(), 10002);
  EXPECT_EQ(json.events_size(), 10000);
  EXPECT_EQ(json.events(json.events_size() - 1).type(),
            v1::EVENT_TYPE_COMPLETED);
}

TEST_F(LimitsE2eTest, LargestTaskIsReadableWithTheDefaultLimits) {
  // Every field at its limit: gpt-image-1 takes 16 reference images and a
  // prompt of 32,000 characters (16,384 two-byte ones are 32 KiB).
  v1::SubmitTaskRequest submit;
  submit.set_account_id(std::string(kMaxIdBytes, 'A'));
  submit.set_api_key_id(std::string(kMaxIdBytes, 'K'));
  submit.set_group(std::string(kMaxIdBytes, 'G'));
  submit.set_endpoint(std::string(256, 'e'));
  submit.set_request_id(std::string(kMaxIdBytes, 'R'));
  submit.set_model("gpt-image-1");
  v1::TaskParams* params = submit.mutable_params();
  std::string prompt;
  for (int i = 0; i < 16384; ++i) prompt += "\xc3\xa9";
  params->set_prompt(prompt);
  params->set_negative_prompt(std::string(32 * 1024, 'n'));
  params->set_callback_url(LongUri(99, kMaxUriBytes));
  for (int i = 0; i < 16; ++i) {
    v1::ReferenceImage* image = params->add_reference_images();
    image->set_uri(LongUri(i, kMaxUriBytes));
    image->set_mime_type("image/png");
    image->set_size_bytes(1 << 20);
  }
  const std::string id = Submit(submit);
  ASSERT_FALSE(id.empty());
  v1::RecordEventRequest completed;
  completed.set_task_id(id);
  for (int i = 0; i < 64; ++i) {
    completed.mutable_completed()->add_result_uris(LongUri(i, kMaxUriBytes));
  }
  ASSERT_TRUE(Record(completed).ok());

  // The notes cap, reached with the largest notes; one more is refused.
  const auto note = [&id](int n) {
    v1::AddNoteRequest request;
    request.set_task_id(id);
    request.set_author(std::string(kMaxIdBytes, 'w'));
    std::string text = absl::StrCat("note ", n, " ");
    text.resize(kMaxTextBytes, 't');
    request.set_text(text);
    request.set_final_cause(std::string(kMaxTextBytes, 'k'));
    return request;
  };
  for (int n = 1; n <= 100; ++n) {
    v1::Task answer;
    grpc::Status status =
        stub_->AddNote(DeadlineContext().get(), note(n), &answer);
    ASSERT_TRUE(status.ok()) << n << ": " << status.error_message();
  }
  v1::Task refused_answer;
  grpc::Status refused =
      stub_->AddNote(DeadlineContext().get(), note(101), &refused_answer);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("at most 100 notes"));
  CommandResult refused_cli = Cli({"note", id, "one more"});
  EXPECT_NE(refused_cli.exit_code, 0);
  EXPECT_THAT(refused_cli.err, HasSubstr("at most 100 notes"));

  // A timeline over 3 MiB in fewer than 10,000 entries: downloads of the
  // longest URIs, about 2.3 KB each.
  RecordMany(1600, [&id](int i) {
    v1::RecordEventRequest downloaded;
    downloaded.set_task_id(id);
    downloaded.mutable_downloaded()->set_uri(LongUri(i, kMaxUriBytes));
    downloaded.mutable_downloaded()->set_client(std::string(kMaxIdBytes, 'k'));
    return downloaded;
  });

  const v1::Task task = GetWithEvents(id);
  ASSERT_EQ(task.task_id(), id);
  EXPECT_EQ(task.last_event_seq(), 1 + 1 + 100 + 1600);
  ExpectFirstAndNewest(task);
  EXPECT_GT(task.omitted_event_count(), 200);
  int64_t timeline = 0;
  for (const v1::TaskEvent& event : task.events())
    timeline += FramedSize(event);
  EXPECT_LE(timeline, kTimelineBytes);
  EXPECT_GT(timeline, kTimelineBytes - 8 * 1024);
  EXPECT_EQ(task.note_count(), 100);
  EXPECT_EQ(task.notes_size(), 10);
  EXPECT_LT(static_cast<int64_t>(task.ByteSizeLong()), kClientLimit);

  CommandResult get = Cli({"get", id});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr(absl::StrCat(
                           "… ", task.omitted_event_count(),
                           " earlier events omitted; `tasktrail watch ")));
  EXPECT_THAT(get.out, HasSubstr("notes: showing newest 10 of 100"));
  EXPECT_THAT(get.out, HasSubstr("note 100 "));

  const v1::Task json = GetJson(id);
  EXPECT_EQ(json.note_count(), 100);
  EXPECT_EQ(json.omitted_event_count(), task.omitted_event_count());
  EXPECT_EQ(json.events_size(), task.events_size());
}

}  // namespace
}  // namespace tasktrail::testing
