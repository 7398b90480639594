// The queue verdict (JudgeQueue) and the typical wait behind it
// (Percentiles): pure rules, judged from hand-built task snapshots at a fixed
// "now", so every time-dependent rule is exact. The same verdicts through the
// Tracker, on a real store, are tests/tracker/queue_status_test.cc.
#include "service/rules/queue_verdict.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/rules/time_util.h"
#include "service/rules/typical_wait.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A fixed "now" for the pure JudgeQueue tests.
const absl::Time kNow = absl::FromUnixSeconds(1790000000);
constexpr absl::Duration kStale = absl::Minutes(5);

// Phrases that would promise a completion time.
const char* const kPromises[] = {"will be ready", "will finish",
                                 "will complete", "will be done",
                                 "guarantee",     "expected to finish"};

// A typical wait with p50 60 s, p90 120 s over `samples` tasks.
TypicalWait Typical(int64_t samples) {
  TypicalWait typical;
  typical.p50 = absl::Seconds(60);
  typical.p90 = absl::Seconds(120);
  typical.samples = samples;
  return typical;
}

// A hand-built snapshot. `queued_for` is how long ago it entered the queue
// (absent: never queued); `upstream_ago` how long ago the last upstream
// event happened.
struct Snapshot {
  v1::TaskState state = v1::TASK_STATE_QUEUED;
  absl::Duration created_ago = absl::Hours(1);
  absl::optional<absl::Duration> queued_ago;
  absl::optional<absl::Duration> left_queue_ago;
  absl::optional<absl::Duration> upstream_ago;
  absl::optional<absl::Duration> eta;
  bool retryable = false;
};

v1::Task MakeTask(const Snapshot& s) {
  v1::Task task;
  task.set_task_id("01TESTTASK0000000000000000");
  task.set_model("veo-3");
  task.set_state(s.state);
  *task.mutable_create_time() = ToProtoTime(kNow - s.created_ago);
  if (s.queued_ago.has_value()) {
    *task.mutable_queue_enter_time() = ToProtoTime(kNow - *s.queued_ago);
  }
  if (s.left_queue_ago.has_value()) {
    *task.mutable_queue_exit_time() = ToProtoTime(kNow - *s.left_queue_ago);
  }
  if (s.upstream_ago.has_value()) {
    *task.mutable_last_upstream_event_time() =
        ToProtoTime(kNow - *s.upstream_ago);
    *task.mutable_last_poll_time() = ToProtoTime(kNow - *s.upstream_ago);
  }
  if (s.eta.has_value()) *task.mutable_upstream_eta() = ToProtoDuration(*s.eta);
  if (s.state == v1::TASK_STATE_FAILED) {
    task.mutable_failure()->set_category(
        s.retryable ? v1::FAILURE_CATEGORY_UPSTREAM_UNAVAILABLE
                    : v1::FAILURE_CATEGORY_AUTH);
    task.mutable_failure()->set_cause(s.retryable ? "the provider was busy"
                                                  : "the key was rejected");
    task.mutable_failure()->set_retryable(s.retryable);
  }
  if (s.state == v1::TASK_STATE_CANCELED) {
    task.mutable_failure()->set_category(v1::FAILURE_CATEGORY_CANCELED);
    task.mutable_failure()->set_message("user");
  }
  return task;
}

// Judged as GetQueueStatus judges: from the serialized snapshot's facts.
v1::QueueStatus Judge(const Snapshot& s, const TypicalWait& typical) {
  const std::string snapshot = MakeTask(s).SerializeAsString();
  const absl::optional<QueueFacts> facts = ReadQueueFacts(snapshot);
  if (!facts.has_value()) {
    ADD_FAILURE() << "the snapshot's facts do not read";
    return v1::QueueStatus();
  }
  v1::QueueStatus status;
  JudgeQueue(*facts, typical, kNow, kStale, &status);
  return status;
}

// ---------------------------------------------------------------------------
// 1. JudgeQueue, pure.

struct VerdictCase {
  const char* name;
  Snapshot snapshot;
  TypicalWait typical;
  v1::QueueVerdict verdict;
  bool queued;
  bool resubmit_advised;
};

std::vector<VerdictCase> VerdictCases() {
  std::vector<VerdictCase> cases;
  {
    Snapshot s;
    s.state = v1::TASK_STATE_SUBMITTED;
    s.created_ago = absl::Seconds(30);
    cases.push_back({"submitted", s, Typical(10),
                     v1::QUEUE_VERDICT_WAITING_FOR_UPSTREAM, true, false});
  }
  {
    Snapshot s;
    s.queued_ago = absl::Seconds(60);
    s.upstream_ago = absl::Seconds(10);
    cases.push_back({"queued_normal", s, Typical(10),
                     v1::QUEUE_VERDICT_QUEUED_NORMAL, true, false});
  }
  {
    Snapshot s;
    s.queued_ago = absl::Minutes(10);
    s.upstream_ago = absl::Minutes(1);
    cases.push_back({"queued_longer", s, Typical(10),
                     v1::QUEUE_VERDICT_QUEUED_LONGER_THAN_USUAL, true, false});
  }
  {
    Snapshot s;
    s.queued_ago = absl::Minutes(7);
    s.upstream_ago = absl::Minutes(6);
    cases.push_back({"queued_stalled", s, Typical(10),
                     v1::QUEUE_VERDICT_POLLING_STALLED, true, false});
  }
  {
    Snapshot s;
    s.state = v1::TASK_STATE_RUNNING;
    s.queued_ago = absl::Minutes(3);
    s.left_queue_ago = absl::Minutes(2);
    s.upstream_ago = absl::Seconds(20);
    cases.push_back(
        {"running", s, Typical(10), v1::QUEUE_VERDICT_RUNNING, false, false});
  }
  {
    Snapshot s;
    s.state = v1::TASK_STATE_RUNNING;
    s.queued_ago = absl::Minutes(30);
    s.left_queue_ago = absl::Minutes(29);
    s.upstream_ago = absl::Minutes(20);
    cases.push_back({"running_stalled", s, Typical(10),
                     v1::QUEUE_VERDICT_POLLING_STALLED, false, false});
  }
  {
    Snapshot s;
    s.state = v1::TASK_STATE_SUCCEEDED;
    s.queued_ago = absl::Minutes(30);
    s.left_queue_ago = absl::Minutes(29);
    s.upstream_ago = absl::Minutes(20);
    cases.push_back({"succeeded", s, Typical(10), v1::QUEUE_VERDICT_FINISHED,
                     false, false});
  }
  {
    Snapshot s;
    s.state = v1::TASK_STATE_FAILED;
    s.upstream_ago = absl::Minutes(20);
    s.retryable = true;
    cases.push_back({"failed_retryable", s, Typical(10),
                     v1::QUEUE_VERDICT_FINISHED, false, true});
  }
  {
    Snapshot s;
    s.state = v1::TASK_STATE_FAILED;
    s.upstream_ago = absl::Minutes(20);
    s.retryable = false;
    cases.push_back({"failed_not_retryable", s, Typical(10),
                     v1::QUEUE_VERDICT_FINISHED, false, false});
  }
  {
    Snapshot s;
    s.state = v1::TASK_STATE_CANCELED;
    s.queued_ago = absl::Minutes(30);
    s.left_queue_ago = absl::Minutes(29);
    s.upstream_ago = absl::Minutes(29);
    cases.push_back(
        {"canceled", s, Typical(10), v1::QUEUE_VERDICT_FINISHED, false, false});
  }
  return cases;
}

TEST(QueueVerdictTest, EveryVerdictFromItsSnapshot) {
  for (const VerdictCase& c : VerdictCases()) {
    SCOPED_TRACE(c.name);
    const v1::QueueStatus status = Judge(c.snapshot, c.typical);
    EXPECT_EQ(status.verdict(), c.verdict)
        << v1::QueueVerdict_Name(status.verdict()) << ": " << status.advice();
    EXPECT_EQ(status.state(), c.snapshot.state);
    EXPECT_EQ(status.queued(), c.queued);
    EXPECT_EQ(status.resubmit_advised(), c.resubmit_advised);
    EXPECT_FALSE(status.advice().empty());
    EXPECT_EQ(status.task_id(), "01TESTTASK0000000000000000");
    EXPECT_EQ(status.typical_wait_samples(), 10);
    EXPECT_EQ(FromProtoDuration(status.typical_wait_p50()), absl::Seconds(60));
    EXPECT_EQ(FromProtoDuration(status.typical_wait_p90()), absl::Seconds(120));
  }
}

TEST(QueueVerdictTest, LongerThanUsualOnlyStrictlyAboveP90) {
  struct Case {
    absl::Duration in_queue;
    v1::QueueVerdict verdict;
  };
  for (const Case& c :
       {Case{absl::Seconds(119), v1::QUEUE_VERDICT_QUEUED_NORMAL},
        Case{absl::Seconds(120), v1::QUEUE_VERDICT_QUEUED_NORMAL},
        Case{absl::Seconds(121), v1::QUEUE_VERDICT_QUEUED_LONGER_THAN_USUAL}}) {
    SCOPED_TRACE(absl::FormatDuration(c.in_queue));
    Snapshot s;
    s.queued_ago = c.in_queue;
    s.upstream_ago = absl::Seconds(5);
    const v1::QueueStatus status = Judge(s, Typical(5));
    EXPECT_EQ(status.verdict(), c.verdict) << status.advice();
    EXPECT_FALSE(status.resubmit_advised());
  }
}

TEST(QueueVerdictTest, FourSamplesAreNeverEnoughForLongerThanUsual) {
  for (absl::Duration in_queue :
       {absl::Seconds(121), absl::Minutes(4), absl::Hours(3)}) {
    SCOPED_TRACE(absl::FormatDuration(in_queue));
    Snapshot s;
    s.created_ago = in_queue + absl::Minutes(1);
    s.queued_ago = in_queue;
    s.upstream_ago = absl::Seconds(5);
    const v1::QueueStatus status = Judge(s, Typical(4));
    EXPECT_EQ(status.verdict(), v1::QUEUE_VERDICT_QUEUED_NORMAL);
    EXPECT_EQ(status.typical_wait_samples(), 4);
    EXPECT_THAT(status.advice(), HasSubstr("too few"));
  }
}

TEST(QueueVerdictTest, StaleBoundaryForQueuedAndRunning) {
  struct Case {
    v1::TaskState state;
    v1::QueueVerdict fresh;
  };
  for (const Case& c :
       {Case{v1::TASK_STATE_QUEUED, v1::QUEUE_VERDICT_QUEUED_NORMAL},
        Case{v1::TASK_STATE_RUNNING, v1::QUEUE_VERDICT_RUNNING}}) {
    SCOPED_TRACE(v1::TaskState_Name(c.state));
    Snapshot s;
    s.state = c.state;
    s.queued_ago = absl::Minutes(6);
    if (c.state == v1::TASK_STATE_RUNNING) s.left_queue_ago = absl::Minutes(6);
    s.upstream_ago = kStale;
    EXPECT_EQ(Judge(s, Typical(0)).verdict(), c.fresh);
    s.upstream_ago = kStale + absl::Seconds(1);
    const v1::QueueStatus stalled = Judge(s, Typical(0));
    EXPECT_EQ(stalled.verdict(), v1::QUEUE_VERDICT_POLLING_STALLED);
    EXPECT_FALSE(stalled.resubmit_advised());
  }
}

TEST(QueueVerdictTest, SubmittedIsNeverStalled) {
  for (absl::Duration ago :
       {absl::Minutes(5) + absl::Seconds(1), absl::Hours(2), absl::Hours(48)}) {
    SCOPED_TRACE(absl::FormatDuration(ago));
    Snapshot s;
    s.state = v1::TASK_STATE_SUBMITTED;
    s.created_ago = ago;
    EXPECT_EQ(Judge(s, Typical(10)).verdict(),
              v1::QUEUE_VERDICT_WAITING_FOR_UPSTREAM);
    // Even with an old upstream poll on record.
    s.upstream_ago = ago;
    EXPECT_EQ(Judge(s, Typical(10)).verdict(),
              v1::QUEUE_VERDICT_WAITING_FOR_UPSTREAM);
  }
}

TEST(QueueVerdictTest, StalledWinsOverLongerThanUsual) {
  Snapshot s;
  s.queued_ago = absl::Hours(1);
  s.upstream_ago = absl::Minutes(6);
  const v1::QueueStatus status = Judge(s, Typical(100));
  EXPECT_EQ(status.verdict(), v1::QUEUE_VERDICT_POLLING_STALLED);
  EXPECT_FALSE(status.resubmit_advised());
  // Once polled again, the long wait shows.
  s.upstream_ago = absl::Seconds(10);
  EXPECT_EQ(Judge(s, Typical(100)).verdict(),
            v1::QUEUE_VERDICT_QUEUED_LONGER_THAN_USUAL);
}

// Cases whose verdict quotes an upstream ETA when one is on the task.
std::vector<VerdictCase> EtaCases() {
  std::vector<VerdictCase> cases;
  for (const VerdictCase& c : VerdictCases()) {
    const std::string name = c.name;
    if (name == "queued_normal" || name == "queued_longer" ||
        name == "running") {
      cases.push_back(c);
    }
  }
  return cases;
}

TEST(QueueVerdictTest, UpstreamEtaIsCopiedAndQuotedAsTheProvidersEstimate) {
  for (VerdictCase c : EtaCases()) {
    SCOPED_TRACE(c.name);
    c.snapshot.eta = absl::Seconds(90);
    const v1::QueueStatus status = Judge(c.snapshot, c.typical);
    EXPECT_EQ(status.verdict(), c.verdict);
    ASSERT_TRUE(status.has_upstream_eta());
    EXPECT_EQ(FromProtoDuration(status.upstream_eta()), absl::Seconds(90));
    EXPECT_THAT(status.advice(), HasSubstr("estimate"));
    EXPECT_THAT(status.advice(), HasSubstr("1m30s"));
  }
}

TEST(QueueVerdictTest, WheneverUpstreamEtaIsSetTheAdviceQuotesIt) {
  // A poll is allowed while SUBMITTED, so a SUBMITTED task can carry the
  // provider's ETA; a stalled task keeps the last one it got.
  for (VerdictCase c : VerdictCases()) {
    SCOPED_TRACE(c.name);
    c.snapshot.eta = absl::Seconds(90);
    const v1::QueueStatus status = Judge(c.snapshot, c.typical);
    if (status.has_upstream_eta()) {
      EXPECT_THAT(status.advice(), HasSubstr("estimate"));
    }
    // A stalled task's last estimate is stale: it is not passed on.
    if (status.verdict() == v1::QUEUE_VERDICT_POLLING_STALLED) {
      EXPECT_FALSE(status.has_upstream_eta());
    }
  }
}

TEST(QueueVerdictTest, FinishedTasksCarryNoEta) {
  for (VerdictCase c : VerdictCases()) {
    if (c.verdict != v1::QUEUE_VERDICT_FINISHED) continue;
    SCOPED_TRACE(c.name);
    c.snapshot.eta = absl::Seconds(90);
    EXPECT_FALSE(Judge(c.snapshot, c.typical).has_upstream_eta());
  }
}

TEST(QueueVerdictTest, WithoutAnUpstreamEtaNoAdvicePromisesATime) {
  for (const VerdictCase& c : VerdictCases()) {
    for (const TypicalWait& typical : {Typical(0), Typical(4), Typical(500)}) {
      SCOPED_TRACE(absl::StrCat(c.name, " samples=", typical.samples));
      const v1::QueueStatus status = Judge(c.snapshot, typical);
      EXPECT_FALSE(status.has_upstream_eta());
      EXPECT_THAT(status.advice(), Not(HasSubstr("estimate")));
      for (const char* promise : kPromises) {
        EXPECT_THAT(status.advice(), Not(HasSubstr(promise)));
      }
    }
  }
}

TEST(QueueVerdictTest, TimeInQueue) {
  struct Case {
    const char* name;
    Snapshot snapshot;
    absl::Duration expected;
  };
  Snapshot queued;
  queued.created_ago = absl::Minutes(10);
  queued.queued_ago = absl::Minutes(7);
  queued.upstream_ago = absl::Seconds(1);
  Snapshot running;
  running.state = v1::TASK_STATE_RUNNING;
  running.created_ago = absl::Minutes(10);
  running.queued_ago = absl::Minutes(7);
  running.left_queue_ago = absl::Minutes(4) + absl::Seconds(30);
  running.upstream_ago = absl::Seconds(1);
  Snapshot succeeded = running;
  succeeded.state = v1::TASK_STATE_SUCCEEDED;
  Snapshot submitted;
  submitted.state = v1::TASK_STATE_SUBMITTED;
  submitted.created_ago = absl::Seconds(42);
  for (const Case& c :
       {Case{"queued", queued, absl::Minutes(7)},
        Case{"running", running, absl::Minutes(2) + absl::Seconds(30)},
        Case{"succeeded", succeeded, absl::Minutes(2) + absl::Seconds(30)},
        Case{"submitted", submitted, absl::Seconds(42)}}) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(FromProtoDuration(Judge(c.snapshot, Typical(10)).time_in_queue()),
              c.expected);
  }
}

// ---------------------------------------------------------------------------
// 2. Percentiles.

std::vector<int64_t> SecondsToMicros(std::vector<int64_t> seconds) {
  for (int64_t& s : seconds) s *= 1000000;
  return seconds;
}

TEST(QueuePercentilesTest, NearestRank) {
  struct Case {
    const char* name;
    std::vector<int64_t> seconds;
    int64_t p50;
    int64_t p90;
  };
  for (const Case& c : {
           Case{"one", {7}, 7, 7},
           Case{"two", {1, 2}, 1, 2},
           Case{"ten_sorted", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 5, 9},
           Case{"ten_unsorted", {9, 3, 10, 1, 7, 5, 2, 8, 6, 4}, 5, 9},
           Case{"eleven", {11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 6, 10},
           Case{"duplicates", {4, 4, 4, 1, 100}, 4, 100},
       }) {
    SCOPED_TRACE(c.name);
    const TypicalWait typical = Percentiles(SecondsToMicros(c.seconds));
    EXPECT_EQ(typical.samples, static_cast<int64_t>(c.seconds.size()));
    EXPECT_EQ(typical.p50, absl::Seconds(c.p50));
    EXPECT_EQ(typical.p90, absl::Seconds(c.p90));
  }
}

TEST(QueuePercentilesTest, EmptyIsAllZero) {
  const TypicalWait typical = Percentiles({});
  EXPECT_EQ(typical.samples, 0);
  EXPECT_EQ(typical.p50, absl::ZeroDuration());
  EXPECT_EQ(typical.p90, absl::ZeroDuration());
}

}  // namespace
}  // namespace tasktrail
