// WatchCursor without a daemon: the checks of a watch request, what a stream
// sends (the stored timeline after after_seq, in batches, then new events
// once woken) and when it ends.
#include "service/tracker/watch_cursor.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/tracker_fixture.h"

namespace tasktrail {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class WatchCursorTest : public TrackerFixtureBase {
 protected:
  std::string Submit() {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct");
    request.set_model("veo-3");
    request.mutable_params()->set_prompt("a fox in the snow");
    auto response =
        AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "backend");
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->task().task_id() : "";
  }

  void Poll(const std::string& task_id, int progress) {
    v1::RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_polled()->set_upstream_status("running");
    request.mutable_polled()->set_progress_percent(progress);
    ASSERT_TRUE(
        AwaitWrite(*tracker_, &Tracker::RecordEvent, request, "poller").ok());
  }

  void Fail(const std::string& task_id) {
    v1::RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_failed()->set_http_status(500);
    ASSERT_TRUE(
        AwaitWrite(*tracker_, &Tracker::RecordEvent, request, "poller").ok());
  }

  // The seqs of the events the cursor sends until it has nothing to send,
  // and the action that stopped it (kWait or kEnd).
  static std::vector<int64_t> Drain(WatchCursor* cursor,
                                    WatchCursor::Step* last) {
    std::vector<int64_t> seqs;
    for (;;) {
      *last = cursor->Next();
      if (last->action != WatchCursor::Action::kSend) return seqs;
      seqs.push_back(last->event->seq());
    }
  }
};

TEST_F(WatchCursorTest, OpenChecksTheTaskThenAfterSeq) {
  const std::string id = Submit();
  EXPECT_EQ(WatchCursor::Open(tracker_.get(), "", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      WatchCursor::Open(tracker_.get(), "no-such-task", 0).status().code(),
      absl::StatusCode::kNotFound);
  // An unknown task is reported before a bad after_seq.
  EXPECT_EQ(
      WatchCursor::Open(tracker_.get(), "no-such-task", -1).status().code(),
      absl::StatusCode::kNotFound);
  const absl::Status negative =
      WatchCursor::Open(tracker_.get(), id, -1).status();
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(negative.message(), HasSubstr("after_seq must not be negative"));
  EXPECT_TRUE(WatchCursor::Open(tracker_.get(), id, 0).ok());
}

TEST_F(WatchCursorTest, SendsTheStoredTimelineThenNewEventsOnceWokenAndEnds) {
  const std::string id = Submit();  // seq 1
  Poll(id, 10);                     // seq 2
  Poll(id, 20);                     // seq 3
  auto cursor = WatchCursor::Open(tracker_.get(), id, /*after_seq=*/1);
  ASSERT_TRUE(cursor.ok()) << cursor.status();
  WatchCursor::Step last;
  EXPECT_THAT(Drain(&*cursor, &last), ElementsAre(2, 3));
  EXPECT_EQ(last.action, WatchCursor::Action::kWait);
  EXPECT_EQ(cursor->last_sent_seq(), 3);

  // A new event is read only once the cursor is woken.
  Poll(id, 30);
  EXPECT_TRUE(Drain(&*cursor, &last).empty());
  EXPECT_EQ(last.action, WatchCursor::Action::kWait);
  cursor->Wake();
  EXPECT_THAT(Drain(&*cursor, &last), ElementsAre(4));
  EXPECT_EQ(last.action, WatchCursor::Action::kWait);

  // The stream ends OK once the finishing event was sent.
  Fail(id);
  cursor->Wake();
  EXPECT_THAT(Drain(&*cursor, &last), ElementsAre(5));
  EXPECT_EQ(last.action, WatchCursor::Action::kEnd);
  EXPECT_TRUE(last.status.ok()) << last.status;
}

TEST_F(WatchCursorTest, AFinishedTaskEndsAfterItsStoredTimeline) {
  const std::string id = Submit();
  Poll(id, 10);
  Fail(id);  // seq 3
  auto from_start = WatchCursor::Open(tracker_.get(), id, 0);
  ASSERT_TRUE(from_start.ok());
  WatchCursor::Step last;
  EXPECT_THAT(Drain(&*from_start, &last), ElementsAre(1, 2, 3));
  EXPECT_EQ(last.action, WatchCursor::Action::kEnd);
  EXPECT_TRUE(last.status.ok());

  // Resumed after everything: nothing to send, the stream ends at once.
  auto resumed = WatchCursor::Open(tracker_.get(), id, 3);
  ASSERT_TRUE(resumed.ok());
  EXPECT_TRUE(Drain(&*resumed, &last).empty());
  EXPECT_EQ(last.action, WatchCursor::Action::kEnd);
  EXPECT_TRUE(last.status.ok());
}

TEST_F(WatchCursorTest, ReadsALongTimelineInBatchesWithoutAWake) {
  const std::string id = Submit();
  constexpr int kPolls = WatchCursor::kBatch + 10;
  for (int i = 1; i <= kPolls; ++i) Poll(id, i % 100);
  auto cursor = WatchCursor::Open(tracker_.get(), id, 0);
  ASSERT_TRUE(cursor.ok());
  WatchCursor::Step last;
  const std::vector<int64_t> seqs = Drain(&*cursor, &last);
  ASSERT_EQ(seqs.size(), static_cast<size_t>(kPolls + 1));
  for (size_t i = 0; i < seqs.size(); ++i) {
    EXPECT_EQ(seqs[i], static_cast<int64_t>(i + 1));
  }
  EXPECT_EQ(last.action, WatchCursor::Action::kWait);
}

TEST_F(WatchCursorTest, AnInterruptedStreamNamesTheSeqToResumeFrom) {
  const std::string id = Submit();
  Poll(id, 10);
  auto cursor = WatchCursor::Open(tracker_.get(), id, 0);
  ASSERT_TRUE(cursor.ok());
  EXPECT_EQ(cursor->Interrupted("shutting down").message(),
            "shutting down; resume WatchTask with after_seq=0");
  WatchCursor::Step last;
  EXPECT_THAT(Drain(&*cursor, &last), ElementsAre(1, 2));
  const absl::Status interrupted = cursor->Interrupted("tasktraild stops");
  EXPECT_EQ(interrupted.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(interrupted.message(),
            "tasktraild stops; resume WatchTask with after_seq=2");
}

}  // namespace
}  // namespace tasktrail
