// GetQueueStatus through the Tracker on a real RocksDB store with a manual
// clock: the typical wait comes from the model's durable queue-wait samples
// (the newest 1000), staleness counts from the last upstream event, the
// upstream's ETA comes only from a poll, and resubmit advice follows the
// failure. The verdict rules alone are tests/rules/queue_verdict_test.cc.
#include <string>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/rules/time_util.h"
#include "service/tracker/tracker.h"
#include "tests/tracker/lifecycle_fixture.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class QueueTrackerTest : public LifecycleFixture {};

TEST_F(QueueTrackerTest, TypicalWaitComesFromTheModelsRecentWaits) {
  // Waits 10 s, 20 s, ..., 100 s: p50 50 s, p90 90 s.
  for (int i = 1; i <= 10; ++i) {
    QueuedThenStarted("veo-3", absl::Seconds(10 * i));
  }
  // Another model's waits do not count.
  QueuedThenStarted("sora-2", absl::Hours(1));

  const std::string id = Submit("veo-3");
  MustRecord(Queued(), id);
  clock_.Advance(absl::Seconds(90));
  MustRecord(Polled(0), id);
  v1::QueueStatus status = Status(id);
  EXPECT_EQ(status.verdict(), v1::QUEUE_VERDICT_QUEUED_NORMAL)
      << status.advice();
  EXPECT_EQ(FromProtoDuration(status.typical_wait_p50()), absl::Seconds(50));
  EXPECT_EQ(FromProtoDuration(status.typical_wait_p90()), absl::Seconds(90));
  EXPECT_EQ(status.typical_wait_samples(), 10);
  EXPECT_EQ(FromProtoDuration(status.time_in_queue()), absl::Seconds(90));
  EXPECT_EQ(status.queue_position(), 0);
  EXPECT_EQ(status.upstream_status(), "queued");
  EXPECT_THAT(status.advice(), HasSubstr("p50 50s, p90 1m30s"));
  EXPECT_THAT(status.advice(), HasSubstr("10 recent tasks"));

  clock_.Advance(absl::Seconds(1));
  status = Status(id);
  EXPECT_EQ(status.verdict(), v1::QUEUE_VERDICT_QUEUED_LONGER_THAN_USUAL)
      << status.advice();
  EXPECT_FALSE(status.resubmit_advised());
  EXPECT_FALSE(status.has_upstream_eta());

  // Durable: a new store and Tracker on the same directory report the same.
  Reopen();
  status = Status(id);
  EXPECT_EQ(status.verdict(), v1::QUEUE_VERDICT_QUEUED_LONGER_THAN_USUAL);
  EXPECT_EQ(FromProtoDuration(status.typical_wait_p50()), absl::Seconds(50));
  EXPECT_EQ(FromProtoDuration(status.typical_wait_p90()), absl::Seconds(90));
  EXPECT_EQ(status.typical_wait_samples(), 10);
}

TEST_F(QueueTrackerTest, FinishingStraightFromTheQueueIsASample) {
  for (const v1::RecordEventRequest& finish :
       {Completed(), Failed(503, "", "overloaded"), Canceled()}) {
    const std::string id = Submit("kling-v2-1");
    MustRecord(Queued(), id);
    clock_.Advance(absl::Seconds(30));
    MustRecord(finish, id);
  }
  // A task that never queued (started straight from SUBMITTED) is no sample.
  const std::string direct = Submit("kling-v2-1");
  clock_.Advance(absl::Minutes(10));
  MustRecord(Started(), direct);
  const v1::QueueStatus status = Status(direct);
  EXPECT_EQ(status.typical_wait_samples(), 3);
  EXPECT_EQ(FromProtoDuration(status.typical_wait_p90()), absl::Seconds(30));
}

TEST_F(QueueTrackerTest, OnlyTheNewestThousandSamplesAreKept) {
  // sync_writes=false only to write ~3000 events quickly; durability across
  // a clean close is unaffected.
  Reopen(/*sync_writes=*/false);
  // Five old, very long waits, then 1000 waits of 1..1000 ms.
  for (int i = 0; i < 5; ++i) {
    QueuedThenStarted("gpt-image-1", absl::Seconds(10));
  }
  for (int i = 1; i <= 1000; ++i) {
    QueuedThenStarted("gpt-image-1", absl::Milliseconds(i));
  }
  const std::string probe = Submit("gpt-image-1");
  v1::QueueStatus status = Status(probe);
  EXPECT_EQ(status.typical_wait_samples(), 1000);
  // With the five old ones still counted p90 would be 905 ms, p50 503 ms.
  EXPECT_EQ(FromProtoDuration(status.typical_wait_p50()),
            absl::Milliseconds(500));
  EXPECT_EQ(FromProtoDuration(status.typical_wait_p90()),
            absl::Milliseconds(900));

  Reopen(/*sync_writes=*/false);
  status = Status(probe);
  EXPECT_EQ(status.typical_wait_samples(), 1000);
  EXPECT_EQ(FromProtoDuration(status.typical_wait_p50()),
            absl::Milliseconds(500));
  EXPECT_EQ(FromProtoDuration(status.typical_wait_p90()),
            absl::Milliseconds(900));
}

TEST_F(QueueTrackerTest, PollResetsStalenessButNotesAndReadsDoNot) {
  const std::string id = Submit();
  MustRecord(Queued(), id);
  clock_.Advance(absl::Minutes(4));
  v1::AddNoteRequest note;
  note.set_task_id(id);
  note.set_author("agent-1");
  note.set_text("customer asked, looking");
  ASSERT_TRUE(AwaitWrite(*tracker_, &Tracker::AddNote, note, "").ok());
  EXPECT_EQ(Status(id).verdict(), v1::QUEUE_VERDICT_QUEUED_NORMAL);
  Get(id);
  clock_.Advance(absl::Minutes(2));  // 6 min since queued, 2 since the note
  v1::QueueStatus status = Status(id);
  EXPECT_EQ(status.verdict(), v1::QUEUE_VERDICT_POLLING_STALLED);
  EXPECT_FALSE(status.resubmit_advised());
  EXPECT_THAT(status.advice(), HasSubstr("6m"));

  MustRecord(Polled(0), id);
  EXPECT_EQ(Status(id).verdict(), v1::QUEUE_VERDICT_QUEUED_NORMAL);
  ASSERT_TRUE(AwaitWrite(*tracker_, &Tracker::AddNote, note, "").ok());
  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ(Status(id).verdict(), v1::QUEUE_VERDICT_QUEUED_NORMAL);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Status(id).verdict(), v1::QUEUE_VERDICT_POLLING_STALLED);

  // The same for a running task; a start counts as an upstream event.
  MustRecord(Started(), id);
  EXPECT_EQ(Status(id).verdict(), v1::QUEUE_VERDICT_RUNNING);
  clock_.Advance(absl::Minutes(3));
  ASSERT_TRUE(AwaitWrite(*tracker_, &Tracker::AddNote, note, "").ok());
  clock_.Advance(absl::Minutes(3));
  EXPECT_EQ(Status(id).verdict(), v1::QUEUE_VERDICT_POLLING_STALLED);
  MustRecord(Polled(50), id);
  EXPECT_EQ(Status(id).verdict(), v1::QUEUE_VERDICT_RUNNING);
}

TEST_F(QueueTrackerTest, FoldedPollResetsStalenessButABlockedDuplicateDoesNot) {
  v1::SubmitTaskRequest request;
  request.set_account_id("acct");
  request.set_model("veo-3");
  request.mutable_params()->set_prompt("same every time");
  auto submitted = AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string id = submitted->task().task_id();
  MustRecord(Queued(), id);
  MustRecord(Polled(0), id);
  clock_.Advance(absl::Minutes(4));
  // Identical to the previous poll: folded into it, yet still news.
  auto folded = Record(Polled(0), id);
  ASSERT_TRUE(folded.ok()) << folded.status();
  EXPECT_EQ(folded->task().poll_count(), 2);
  clock_.Advance(absl::Minutes(4));
  // A double click is the user, not the upstream.
  auto duplicate = AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "");
  ASSERT_TRUE(duplicate.ok()) << duplicate.status();
  EXPECT_TRUE(duplicate->deduplicated());
  EXPECT_EQ(Status(id).verdict(), v1::QUEUE_VERDICT_QUEUED_NORMAL);
  clock_.Advance(absl::Minutes(1) + absl::Seconds(1));
  EXPECT_EQ(Status(id).verdict(), v1::QUEUE_VERDICT_POLLING_STALLED);
}

TEST_F(QueueTrackerTest, UpstreamEtaOnlyFromAPoll) {
  const std::string id = Submit();
  MustRecord(Queued(), id);
  EXPECT_FALSE(Status(id).has_upstream_eta());
  v1::RecordEventRequest poll = Polled(10);
  *poll.mutable_polled()->mutable_eta() = ToProtoDuration(absl::Minutes(4));
  MustRecord(poll, id);
  v1::QueueStatus status = Status(id);
  ASSERT_TRUE(status.has_upstream_eta());
  EXPECT_EQ(FromProtoDuration(status.upstream_eta()), absl::Minutes(4));
  EXPECT_THAT(status.advice(), HasSubstr("estimate"));
  // A later poll without an ETA withdraws it.
  MustRecord(Polled(20), id);
  status = Status(id);
  EXPECT_FALSE(status.has_upstream_eta());
  EXPECT_THAT(status.advice(), Not(HasSubstr("estimate")));
}

TEST_F(QueueTrackerTest, ResubmitAdvisedFollowsTheFailure) {
  struct Case {
    const char* name;
    v1::RecordEventRequest finish;
    bool advised;
  };
  for (const Case& c : {
           Case{"overloaded", Failed(503, "", "upstream overloaded"), true},
           Case{"bad_key", Failed(401, "", ""), false},
           Case{"content", Failed(400, "content_policy_violation", ""), false},
           Case{"completed", Completed(), false},
           Case{"canceled", Canceled(), false},
       }) {
    SCOPED_TRACE(c.name);
    const std::string id = Submit();
    MustRecord(Queued(), id);
    EXPECT_FALSE(Status(id).resubmit_advised());
    MustRecord(c.finish, id);
    const v1::QueueStatus status = Status(id);
    EXPECT_EQ(status.verdict(), v1::QUEUE_VERDICT_FINISHED);
    EXPECT_EQ(status.resubmit_advised(), c.advised) << status.advice();
    EXPECT_EQ(status.resubmit_advised(), Get(id).failure().retryable());
  }
}

TEST_F(QueueTrackerTest, UnknownTaskIsNotFound) {
  v1::GetQueueStatusRequest request;
  request.set_task_id("01ZZZZZZZZZZZZZZZZZZZZZZZZ");
  v1::QueueStatus status;
  EXPECT_EQ(tracker_->GetQueueStatus(request, &status).code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tasktrail
