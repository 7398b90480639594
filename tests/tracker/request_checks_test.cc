// The Tracker's side of the API checks, on a real RocksDB store with a manual
// clock: audit entries written in one batch, an occur_time from before the
// task, an unknown ListModels kind.
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/rules/time_util.h"
#include "service/tracker/tracker.h"
#include "tests/support/tracker_fixture.h"

namespace tasktrail {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class RequestChecksTest : public TrackerFixtureBase {
 protected:
  std::string Submit(const std::string& prompt) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct-1");
    request.set_model("veo-3");
    request.mutable_params()->set_prompt(prompt);
    absl::StatusOr<v1::SubmitTaskResponse> submitted =
        AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "");
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    return submitted.ok() ? submitted->task().task_id() : "";
  }

  std::vector<std::string> Audit(const std::string& task_id) {
    v1::ListAuditRequest request;
    request.set_task_id(task_id);
    absl::StatusOr<v1::ListAuditResponse> listed = tracker_->ListAudit(request);
    EXPECT_TRUE(listed.ok()) << listed.status();
    std::vector<std::string> entries;
    if (!listed.ok()) return entries;
    for (const v1::AuditEntry& entry : listed->entries()) {
      EXPECT_EQ(entry.task_id(), task_id);
      entries.push_back(entry.rpc() + " " + entry.principal() + " " +
                        entry.role());
    }
    return entries;
  }
};

TEST_F(RequestChecksTest, RecordAuditWritesOneEntryPerTask) {
  const std::string first = Submit("a lighthouse in a storm");
  const std::string second = Submit("a fox in the snow");
  const std::string third = Submit("a red kite");
  const std::vector<absl::string_view> listed = {first, second};
  ASSERT_TRUE(
      tracker_->RecordAudit(listed, "alice", "support", "ListTasks").ok());
  ASSERT_TRUE(tracker_->RecordAudit({}, "alice", "support", "ListTasks").ok());
  // Two entries of one task in the same microsecond are both kept.
  ASSERT_TRUE(tracker_->RecordAudit({first}, "root", "admin", "GetTask").ok());

  EXPECT_THAT(Audit(first),
              ElementsAre("GetTask root admin", "ListTasks alice support"));
  EXPECT_THAT(Audit(second), ElementsAre("ListTasks alice support"));
  EXPECT_THAT(Audit(third), IsEmpty());
}

TEST_F(RequestChecksTest, AnOccurTimeBeforeTheTaskWasCreatedIsRefused) {
  const absl::Time created = clock_.Now();
  const std::string id = Submit("a lighthouse in a storm");
  clock_.Advance(absl::Minutes(10));
  v1::RecordEventRequest queued;
  queued.set_task_id(id);
  queued.mutable_queued()->set_upstream_task_id("up-1");
  *queued.mutable_occur_time() =
      ToProtoTime(created - absl::Seconds(5) - absl::Nanoseconds(1));
  const absl::Status refused =
      AwaitWrite(*tracker_, &Tracker::RecordEvent, queued, "").status();
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("occur_time 2026-09-21T"));
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("before the task was created"));

  // The default clock-skew allowance (5 s) is accepted.
  *queued.mutable_occur_time() = ToProtoTime(created - absl::Seconds(5));
  EXPECT_TRUE(AwaitWrite(*tracker_, &Tracker::RecordEvent, queued, "").ok());
}

TEST_F(RequestChecksTest, ListModelsRefusesAnUnknownKind) {
  v1::ListModelsRequest request;
  request.set_kind(static_cast<v1::TaskKind>(7));
  const absl::Status refused = tracker_->ListModels(request).status();
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("kind 7"));

  request.set_kind(v1::TASK_KIND_IMAGE);
  absl::StatusOr<v1::ListModelsResponse> images = tracker_->ListModels(request);
  ASSERT_TRUE(images.ok()) << images.status();
  ASSERT_GT(images->models_size(), 0);
  for (const v1::ModelSpec& model : images->models()) {
    EXPECT_EQ(model.kind(), v1::TASK_KIND_IMAGE) << model.name();
  }
}

}  // namespace
}  // namespace tasktrail
