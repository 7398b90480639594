// BatchGetTasks (task ids and upstream ids, request order, duplicates,
// missing ids, request checks, the timeline budget) and ListAudit paging, on
// the Tracker with a real store.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "service/rules/errors.h"
#include "service/tracker/tracker.h"
#include "tests/support/tracker_fixture.h"

namespace tasktrail {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class BatchTest : public TrackerFixtureBase {
 protected:
  std::string Submit(const std::string& prompt) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct-1");
    request.set_model("veo-3");
    request.set_force_new(true);
    request.mutable_params()->set_prompt(prompt);
    absl::StatusOr<v1::SubmitTaskResponse> submitted =
        AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "gateway");
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    return submitted.ok() ? submitted->task().task_id() : "";
  }

  void Queue(const std::string& task_id, const std::string& upstream_id) {
    v1::RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_queued()->set_upstream_task_id(upstream_id);
    absl::StatusOr<v1::RecordEventResponse> recorded =
        AwaitWrite(*tracker_, &Tracker::RecordEvent, request, "gateway");
    ASSERT_TRUE(recorded.ok()) << recorded.status();
  }

  // `count` polls of `task_id`, each with another progress (none folded).
  void Poll(const std::string& task_id, int count) {
    for (int i = 0; i < count; ++i) {
      v1::RecordEventRequest request;
      request.set_task_id(task_id);
      request.mutable_polled()->set_upstream_status("in_queue");
      request.mutable_polled()->set_progress_percent(i % 100);
      request.mutable_polled()->set_queue_position(1000 - i);
      absl::StatusOr<v1::RecordEventResponse> recorded =
          AwaitWrite(*tracker_, &Tracker::RecordEvent, request, "gateway");
      ASSERT_TRUE(recorded.ok()) << recorded.status();
    }
  }

  absl::StatusOr<v1::BatchGetTasksResponse> BatchGet(
      const std::vector<std::string>& ids, bool include_events = false) {
    v1::BatchGetTasksRequest request;
    for (const std::string& id : ids) request.add_ids(id);
    request.set_include_events(include_events);
    return tracker_->BatchGetTasks(request);
  }

  static std::vector<std::string> TaskIds(
      const v1::BatchGetTasksResponse& response) {
    std::vector<std::string> ids;
    for (const v1::Task& task : response.tasks()) ids.push_back(task.task_id());
    return ids;
  }

  // The fields the BadRequest of `status` names.
  static std::vector<std::string> ViolatedFields(const absl::Status& status) {
    std::vector<std::string> fields;
    absl::optional<absl::Cord> payload = status.GetPayload(kBadRequestTypeUrl);
    google::rpc::BadRequest bad_request;
    if (payload.has_value() &&
        bad_request.ParseFromString(std::string(*payload))) {
      for (const auto& violation : bad_request.field_violations()) {
        fields.push_back(violation.field());
      }
    }
    return fields;
  }
};

TEST_F(BatchTest, AnswersTaskAndUpstreamIdsInRequestOrderWithMissingIds) {
  const std::string first = Submit("a lighthouse in a storm");
  const std::string second = Submit("a fox in the snow");
  Queue(second, "vendor-77");
  const std::string unknown_task_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

  absl::StatusOr<v1::BatchGetTasksResponse> found =
      BatchGet({"vendor-77", first, unknown_task_id, first, "no-such-job",
                second, "vendor-77"});
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(TaskIds(*found),
              ElementsAre(second, first, first, second, second));
  EXPECT_THAT(found->missing_ids(),
              ElementsAre(unknown_task_id, "no-such-job"));
  EXPECT_EQ(found->tasks(0).upstream_task_id(), "vendor-77");
  EXPECT_EQ(found->tasks(0).state(), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(found->tasks(0).events_size(), 0);

  absl::StatusOr<v1::BatchGetTasksResponse> none = BatchGet({"nothing"});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->tasks_size(), 0);
  EXPECT_THAT(none->missing_ids(), ElementsAre("nothing"));
}

TEST_F(BatchTest, AnUpstreamIdOfSeveralTasksAnswersAllNewestFirst) {
  const std::string older = Submit("a red kite");
  const std::string newer = Submit("a blue kite");
  Queue(older, "shared-id");
  Queue(newer, "shared-id");
  absl::StatusOr<v1::BatchGetTasksResponse> found = BatchGet({"shared-id"});
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(TaskIds(*found), ElementsAre(newer, older));
  EXPECT_TRUE(found->missing_ids().empty());
}

TEST_F(BatchTest, RefusesNoIdsTooManyIdsAndMalformedIdsNamingTheField) {
  absl::StatusOr<v1::BatchGetTasksResponse> empty = BatchGet({});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolatedFields(empty.status()), ElementsAre("ids"));

  std::vector<std::string> many(kMaxBatchIds + 1, "vendor-1");
  absl::StatusOr<v1::BatchGetTasksResponse> too_many = BatchGet(many);
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolatedFields(too_many.status()), ElementsAre("ids"));
  EXPECT_THAT(std::string(too_many.status().message()), HasSubstr("101"));
  many.pop_back();
  EXPECT_TRUE(BatchGet(many).ok());

  absl::StatusOr<v1::BatchGetTasksResponse> malformed =
      BatchGet({"vendor-1", "", "vendor-2", "bad\nid", std::string(200, 'x')});
  EXPECT_EQ(malformed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolatedFields(malformed.status()),
              ElementsAre("ids[1]", "ids[3]", "ids[4]"));
}

// The bytes of a task's events framed as Task.events entries.
int64_t FramedEventBytes(const v1::Task& task) {
  int64_t bytes = 0;
  for (const v1::TaskEvent& event : task.events()) {
    const auto size = static_cast<uint32_t>(event.ByteSizeLong());
    bytes +=
        1 + google::protobuf::io::CodedOutputStream::VarintSize32(size) + size;
  }
  return bytes;
}

TEST_F(BatchTest, EachTaskGetsAnEqualShareOfTheTimelineBudget) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(Submit(absl::StrCat("a kite number ", i)));
    Queue(ids.back(), absl::StrCat("up-", i));
    Poll(ids.back(), 80);
  }
  absl::StatusOr<v1::BatchGetTasksResponse> whole = BatchGet({ids[0]}, true);
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_EQ(whole->tasks(0).events_size(), 82);
  const int64_t timeline_bytes = FramedEventBytes(whole->tasks(0));

  // A budget of two timelines: one task gets its whole timeline, each of
  // three gets a third of the budget, the first entry and the newest ones.
  tracker_options_.max_event_bytes_returned = 2 * timeline_bytes;
  Reopen();
  absl::StatusOr<v1::BatchGetTasksResponse> one = BatchGet({ids[1]}, true);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->tasks_size(), 1);
  EXPECT_EQ(one->tasks(0).omitted_event_count(), 0);
  EXPECT_EQ(one->tasks(0).events_size(), 82);

  absl::StatusOr<v1::BatchGetTasksResponse> three = BatchGet(ids, true);
  ASSERT_TRUE(three.ok()) << three.status();
  ASSERT_EQ(three->tasks_size(), 3);
  for (const v1::Task& task : three->tasks()) {
    SCOPED_TRACE(task.task_id());
    EXPECT_LE(FramedEventBytes(task), 2 * timeline_bytes / 3);
    EXPECT_GT(task.omitted_event_count(), 0);
    ASSERT_GT(task.events_size(), 2);
    EXPECT_EQ(task.events(0).type(), v1::EVENT_TYPE_SUBMITTED);
    EXPECT_EQ(task.events(task.events_size() - 1).seq(), task.last_event_seq());
    EXPECT_EQ(task.events_size() + task.omitted_event_count(), 82);
  }
}

TEST_F(BatchTest, ListAuditPagesNewestFirstWithTokensBoundToTheTask) {
  const std::string task = Submit("a lighthouse in a storm");
  const std::string other = Submit("a fox in the snow");
  for (int i = 0; i < 7; ++i) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_TRUE(tracker_
                    ->RecordAudit({task}, absl::StrCat("reader-", i), "support",
                                  "GetTask")
                    .ok());
  }
  ASSERT_TRUE(tracker_->RecordAudit({other}, "x", "support", "GetTask").ok());

  std::vector<std::string> principals;
  v1::ListAuditRequest request;
  request.set_task_id(task);
  request.set_page_size(3);
  std::string token;
  int pages = 0;
  do {
    request.set_page_token(token);
    absl::StatusOr<v1::ListAuditResponse> page = tracker_->ListAudit(request);
    ASSERT_TRUE(page.ok()) << page.status();
    ++pages;
    EXPECT_LE(page->entries_size(), 3);
    for (const v1::AuditEntry& entry : page->entries()) {
      EXPECT_EQ(entry.task_id(), task);
      principals.push_back(entry.principal());
    }
    token = page->next_page_token();
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(principals,
              ElementsAre("reader-6", "reader-5", "reader-4", "reader-3",
                          "reader-2", "reader-1", "reader-0"));

  // A token continues only the log it was issued for.
  request.set_page_token("");
  absl::StatusOr<v1::ListAuditResponse> first = tracker_->ListAudit(request);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_FALSE(first->next_page_token().empty());
  v1::ListAuditRequest elsewhere;
  elsewhere.set_task_id(other);
  elsewhere.set_page_token(first->next_page_token());
  absl::StatusOr<v1::ListAuditResponse> refused =
      tracker_->ListAudit(elsewhere);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolatedFields(refused.status()), ElementsAre("page_token"));
  elsewhere.set_task_id(task);
  elsewhere.set_page_token("not-a-token");
  EXPECT_EQ(tracker_->ListAudit(elsewhere).status().code(),
            absl::StatusCode::kInvalidArgument);

  v1::ListAuditRequest unknown;
  unknown.set_task_id("01ARZ3NDEKTSV4RRFFQ69G5FAV");
  EXPECT_EQ(tracker_->ListAudit(unknown).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tasktrail
