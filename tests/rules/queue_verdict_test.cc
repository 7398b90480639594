// What a support agent reads: queue verdicts (pure and through the Tracker),
// the durable queue-wait samples behind them, refund-once, and GetStats with
// its incident hints. Tracker tests run on a real RocksDB store in a temp
// directory with a manual clock, so every time-dependent rule is exact.
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/rules/queue_verdict.h"
#include "service/rules/time_util.h"
#include "service/tracker/queue_waits.h"
#include "service/tracker/stats.h"
#include "service/tracker/tracker.h"
#include "tests/support/tracker_fixture.h"

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

// ---------------------------------------------------------------------------
// Tracker fixture for 3-5.

class TrackerFixture : public TrackerFixtureBase {
 protected:
  std::string Submit(const std::string& model = "veo-3",
                     int64_t charge_units = 10) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct");
    request.set_model(model);
    request.set_charge_units(charge_units);
    request.mutable_params()->set_prompt(absl::StrCat("scene ", ++prompts_));
    auto response =
        AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "backend");
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->task().task_id() : "";
  }

  absl::StatusOr<v1::RecordEventResponse> Record(v1::RecordEventRequest event,
                                                 const std::string& id) {
    event.set_task_id(id);
    return AwaitWrite(*tracker_, &Tracker::RecordEvent, event, "poller");
  }

  void MustRecord(const v1::RecordEventRequest& event, const std::string& id) {
    auto result = Record(event, id);
    ASSERT_TRUE(result.ok()) << result.status();
  }

  static v1::RecordEventRequest Queued() {
    v1::RecordEventRequest event;
    event.mutable_queued()->set_upstream_task_id("up");
    event.mutable_queued()->set_queue_position(3);
    return event;
  }
  static v1::RecordEventRequest Started() {
    v1::RecordEventRequest event;
    event.mutable_started()->set_progress_percent(1);
    return event;
  }
  static v1::RecordEventRequest Polled(int progress) {
    v1::RecordEventRequest event;
    event.mutable_polled()->set_upstream_status("queued");
    event.mutable_polled()->set_progress_percent(progress);
    return event;
  }
  static v1::RecordEventRequest Completed() {
    v1::RecordEventRequest event;
    event.mutable_completed()->add_result_uris("https://cdn.example.com/r.mp4");
    return event;
  }
  static v1::RecordEventRequest Failed(int http_status,
                                       const std::string& error_code,
                                       const std::string& message,
                                       bool refunded = false) {
    v1::RecordEventRequest event;
    event.mutable_failed()->set_http_status(http_status);
    event.mutable_failed()->set_error_code(error_code);
    event.mutable_failed()->set_message(message);
    event.mutable_failed()->set_refunded(refunded);
    return event;
  }
  static v1::RecordEventRequest Canceled() {
    v1::RecordEventRequest event;
    event.mutable_canceled()->set_reason("user canceled");
    return event;
  }
  static v1::RecordEventRequest Refund(int64_t units) {
    v1::RecordEventRequest event;
    event.mutable_refunded()->set_units(units);
    event.mutable_refunded()->set_reason("provider failure");
    return event;
  }

  // A task of `model` that waited `wait` in the queue and then started.
  std::string QueuedThenStarted(const std::string& model, absl::Duration wait) {
    const std::string id = Submit(model);
    MustRecord(Queued(), id);
    clock_.Advance(wait);
    MustRecord(Started(), id);
    return id;
  }

  v1::QueueStatus Status(const std::string& id) {
    v1::GetQueueStatusRequest request;
    request.set_task_id(id);
    v1::QueueStatus status;
    const absl::Status judged = tracker_->GetQueueStatus(request, &status);
    EXPECT_TRUE(judged.ok()) << judged;
    return status;
  }

  v1::Task Get(const std::string& id) {
    v1::GetTaskRequest request;
    request.set_task_id(id);
    request.set_include_events(true);
    auto task = tracker_->GetTask(request);
    EXPECT_TRUE(task.ok()) << task.status();
    return task.ok() ? *task : v1::Task();
  }

  absl::StatusOr<v1::Stats> Stats(absl::Duration window,
                                  const std::string& model = "") {
    v1::GetStatsRequest request;
    *request.mutable_window() = ToProtoDuration(window);
    request.set_model(model);
    return tracker_->GetStats(request);
  }

  int prompts_ = 0;
};

// ---------------------------------------------------------------------------
// 3. Queue status through the Tracker.

class QueueTrackerTest : public TrackerFixture {};

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

// ---------------------------------------------------------------------------
// 4. Refund once.

class RefundTest : public TrackerFixture {
 protected:
  std::string FailedTask(int64_t charge = 10) {
    const std::string id = Submit("veo-3", charge);
    EXPECT_TRUE(Record(Failed(503, "", "upstream overloaded"), id).ok());
    return id;
  }
  static std::string Utc(absl::Time time) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", time, absl::UTCTimeZone());
  }
};

TEST_F(RefundTest, SecondRefundNamesTheFirstOnesTime) {
  const std::string id = FailedTask();
  clock_.Advance(absl::Minutes(3));
  const absl::Time first = clock_.Now();
  auto refunded = Record(Refund(10), id);
  ASSERT_TRUE(refunded.ok()) << refunded.status();
  EXPECT_TRUE(refunded->task().refunded());
  EXPECT_EQ(refunded->task().refunded_units(), 10);
  EXPECT_EQ(FromProtoTime(refunded->task().refund_time()), first);

  clock_.Advance(absl::Hours(2));
  auto second = Record(Refund(4), id);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr(Utc(first)));
  const v1::Task task = Get(id);
  EXPECT_EQ(task.refunded_units(), 10);
  EXPECT_EQ(FromProtoTime(task.refund_time()), first);

  // Still refused after a restart.
  Reopen();
  second = Record(Refund(4), id);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr(Utc(first)));
}

TEST_F(RefundTest, FailedWithRefundedIsTheOneRefund) {
  const std::string id = Submit("veo-3", 25);
  clock_.Advance(absl::Seconds(17));
  const absl::Time failed_at = clock_.Now();
  auto failed = Record(Failed(500, "", "", /*refunded=*/true), id);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_TRUE(failed->task().refunded());
  EXPECT_EQ(failed->task().refunded_units(), 25);
  clock_.Advance(absl::Minutes(30));
  for (int64_t units : {0, 1, 25}) {
    SCOPED_TRACE(units);
    auto again = Record(Refund(units), id);
    EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(again.status().message(), HasSubstr(Utc(failed_at)));
  }
}

TEST_F(RefundTest, RefundAfterCancelAndZeroUnitsMeansTheWholeCharge) {
  const std::string id = Submit("veo-3", 12);
  MustRecord(Canceled(), id);
  auto refunded = Record(Refund(0), id);
  ASSERT_TRUE(refunded.ok()) << refunded.status();
  EXPECT_EQ(refunded->task().refunded_units(), 12);
  EXPECT_EQ(Record(Refund(0), id).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RefundTest, RefundAboveTheChargeIsRejectedAndRecordsNothing) {
  const std::string id = FailedTask(10);
  auto too_much = Record(Refund(11), id);
  EXPECT_EQ(too_much.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_much.status().message(), HasSubstr("11"));
  EXPECT_FALSE(Get(id).refunded());
  auto partial = Record(Refund(4), id);
  ASSERT_TRUE(partial.ok()) << partial.status();
  EXPECT_EQ(partial->task().refunded_units(), 4);
}

TEST_F(RefundTest, RefundBeforeTheTaskFailedIsRejected) {
  const std::string id = Submit();
  struct Step {
    const char* name;
    absl::optional<v1::RecordEventRequest> event;
  };
  for (const Step& step :
       {Step{"submitted", absl::nullopt}, Step{"queued", Queued()},
        Step{"running", Started()}, Step{"succeeded", Completed()}}) {
    SCOPED_TRACE(step.name);
    if (step.event.has_value()) MustRecord(*step.event, id);
    auto refund = Record(Refund(1), id);
    EXPECT_EQ(refund.status().code(), absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_FALSE(Get(id).refunded());
}

TEST_F(RefundTest, ReplayOfTheRecordedRefundGetsItsOriginalAnswer) {
  const std::string id = FailedTask();
  v1::RecordEventRequest refund = Refund(10);
  refund.set_event_id("refund-1");
  auto first = Record(refund, id);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->applied());
  auto replay = Record(refund, id);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_FALSE(replay->applied());
  EXPECT_EQ(replay->seq(), first->seq());
}

TEST_F(RefundTest, ConcurrentRefundsRecordExactlyOne) {
  const std::string id = FailedTask(10);
  constexpr int kThreads = 16;
  std::atomic<int> ok{0};
  std::atomic<int> refused{0};
  std::atomic<int> other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      v1::RecordEventRequest refund = Refund(10);
      refund.set_event_id(absl::StrCat("refund-", t));
      auto result = Record(refund, id);
      if (result.ok()) {
        ++ok;
      } else if (result.status().code() ==
                 absl::StatusCode::kFailedPrecondition) {
        ++refused;
      } else {
        ++other;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(refused.load(), kThreads - 1);
  EXPECT_EQ(other.load(), 0);
  const v1::Task task = Get(id);
  EXPECT_TRUE(task.refunded());
  EXPECT_EQ(task.refunded_units(), 10);
  int refund_events = 0;
  for (const v1::TaskEvent& event : task.events()) {
    if (event.type() == v1::EVENT_TYPE_REFUNDED) ++refund_events;
  }
  EXPECT_EQ(refund_events, 1);
}

// ---------------------------------------------------------------------------
// 5. GetStats.

class StatsTrackerTest : public TrackerFixture {
 protected:
  static int64_t At(const google::protobuf::Map<std::string, int64_t>& map,
                    const std::string& key) {
    auto it = map.find(key);
    return it == map.end() ? 0 : it->second;
  }

  static const v1::ModelStats* Find(const v1::Stats& stats,
                                    const std::string& model) {
    for (const v1::ModelStats& m : stats.models()) {
      if (m.model() == model) return &m;
    }
    return nullptr;
  }

  v1::ModelStats MustFind(absl::Duration window, const std::string& model) {
    auto stats = Stats(window);
    EXPECT_TRUE(stats.ok()) << stats.status();
    if (!stats.ok()) return v1::ModelStats();
    const v1::ModelStats* found = Find(*stats, model);
    EXPECT_NE(found, nullptr) << model;
    return found == nullptr ? v1::ModelStats() : *found;
  }

  void SubmitInvalid(const std::string& model, const std::string& ratio,
                     int32_t duration) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct");
    request.set_model(model);
    request.mutable_params()->set_prompt("waves");
    request.mutable_params()->set_aspect_ratio(ratio);
    request.mutable_params()->set_duration_seconds(duration);
    EXPECT_EQ(AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "")
                  .status()
                  .code(),
              absl::StatusCode::kInvalidArgument);
  }

  // Finishes `count` fresh tasks of `model` with `finish`.
  void Finish(const std::string& model, int count,
              const v1::RecordEventRequest& finish) {
    for (int i = 0; i < count; ++i) {
      const std::string id = Submit(model);
      MustRecord(Queued(), id);
      MustRecord(finish, id);
    }
  }
};

TEST_F(StatsTrackerTest, FailuresAreClassifiedFromWhatTheUpstreamSaid) {
  struct Case {
    const char* name;
    v1::RecordEventRequest failed;
    v1::FailureCategory category;
    v1::FailureOrigin origin;
    bool retryable;
  };
  for (const Case& c : {
           Case{"503_overloaded", Failed(503, "", "upstream overloaded"),
                v1::FAILURE_CATEGORY_UPSTREAM_UNAVAILABLE,
                v1::FAILURE_ORIGIN_PROVIDER, true},
           Case{"401", Failed(401, "", ""), v1::FAILURE_CATEGORY_AUTH,
                v1::FAILURE_ORIGIN_CONFIGURATION, false},
           Case{"429", Failed(429, "", "Too Many Requests"),
                v1::FAILURE_CATEGORY_RATE_LIMITED, v1::FAILURE_ORIGIN_PROVIDER,
                true},
           Case{"policy", Failed(400, "content_policy_violation", "refused"),
                v1::FAILURE_CATEGORY_CONTENT_POLICY,
                v1::FAILURE_ORIGIN_USER_CONTENT, false},
           Case{"quota", Failed(429, "insufficient_quota", "quota"),
                v1::FAILURE_CATEGORY_QUOTA, v1::FAILURE_ORIGIN_CONFIGURATION,
                false},
       }) {
    SCOPED_TRACE(c.name);
    const std::string id = Submit("sora-2");
    MustRecord(c.failed, id);
    const v1::Task task = Get(id);
    EXPECT_EQ(task.failure().category(), c.category);
    EXPECT_EQ(task.failure().origin(), c.origin);
    EXPECT_EQ(task.failure().retryable(), c.retryable);
  }
  const v1::ModelStats stats = MustFind(absl::Minutes(15), "sora-2");
  EXPECT_EQ(At(stats.tasks_by_state(), "FAILED"), 5);
  EXPECT_EQ(At(stats.failures_by_category(), "UPSTREAM_UNAVAILABLE"), 1);
  EXPECT_EQ(At(stats.failures_by_category(), "AUTH"), 1);
  EXPECT_EQ(At(stats.failures_by_category(), "RATE_LIMITED"), 1);
  EXPECT_EQ(At(stats.failures_by_category(), "CONTENT_POLICY"), 1);
  EXPECT_EQ(At(stats.failures_by_category(), "QUOTA"), 1);
  EXPECT_EQ(At(stats.failures_by_origin(), "PROVIDER"), 2);
  EXPECT_EQ(At(stats.failures_by_origin(), "CONFIGURATION"), 2);
  EXPECT_EQ(At(stats.failures_by_origin(), "USER_CONTENT"), 1);
}

TEST_F(StatsTrackerTest, TasksAreCountedByTheStateTheyEntered) {
  const std::string a = Submit();
  const std::string b = Submit();
  const std::string c = Submit();
  MustRecord(Queued(), a);
  MustRecord(Queued(), b);
  MustRecord(Polled(5), a);  // polls do not change the state
  MustRecord(Polled(6), a);
  MustRecord(Started(), a);
  MustRecord(Completed(), a);
  MustRecord(Failed(504, "", "gateway timeout"), b);
  MustRecord(Canceled(), c);
  MustRecord(Refund(0), c);  // a refund does not change the state
  const v1::ModelStats stats = MustFind(absl::Minutes(15), "veo-3");
  EXPECT_EQ(At(stats.tasks_by_state(), "SUBMITTED"), 3);
  EXPECT_EQ(At(stats.tasks_by_state(), "QUEUED"), 2);
  EXPECT_EQ(At(stats.tasks_by_state(), "RUNNING"), 1);
  EXPECT_EQ(At(stats.tasks_by_state(), "SUCCEEDED"), 1);
  EXPECT_EQ(At(stats.tasks_by_state(), "FAILED"), 1);
  EXPECT_EQ(At(stats.tasks_by_state(), "CANCELED"), 1);
  EXPECT_EQ(At(stats.failures_by_category(), "TIMEOUT"), 1);
  EXPECT_EQ(At(stats.failures_by_origin(), "PROVIDER"), 1);
  EXPECT_EQ(stats.failures_by_category_size(), 1);
}

TEST_F(StatsTrackerTest, RejectionsAreCountedByReason) {
  SubmitInvalid("kling-v2-1", "4:3", 5);  // RATIO_UNSUPPORTED
  SubmitInvalid("kling-v2-1", "4:3", 5);
  SubmitInvalid("kling-v2-1", "16:9", 7);  // DURATION_UNSUPPORTED
  SubmitInvalid("kling-v2-1", "4:3", 7);   // both
  // Valid submissions and ValidateTask count no rejection.
  Submit("kling-v2-1");
  v1::ValidateTaskRequest validate;
  validate.set_model("kling-v2-1");
  validate.mutable_params()->set_aspect_ratio("4:3");
  ASSERT_TRUE(tracker_->ValidateTask(validate).ok());

  const v1::ModelStats stats = MustFind(absl::Minutes(15), "kling-v2-1");
  EXPECT_EQ(At(stats.rejections_by_reason(), "RATIO_UNSUPPORTED"), 3);
  EXPECT_EQ(At(stats.rejections_by_reason(), "DURATION_UNSUPPORTED"), 2);
  EXPECT_EQ(stats.rejections_by_reason_size(), 2);
  EXPECT_EQ(At(stats.tasks_by_state(), "SUBMITTED"), 1);
}

TEST_F(StatsTrackerTest, DuplicatesBlockedAreCounted) {
  v1::SubmitTaskRequest request;
  request.set_account_id("acct");
  request.set_model("dall-e-3");
  request.set_request_id("req-1");
  request.mutable_params()->set_prompt("a red bicycle");
  ASSERT_TRUE(AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "").ok());
  auto same_request = AwaitWrite(*tracker_, &Tracker::SubmitTask, request,
                                 "");  // same request_id
  ASSERT_TRUE(same_request.ok());
  EXPECT_TRUE(same_request->deduplicated());
  request.set_request_id("req-2");  // same content, new request_id
  auto same_content = AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "");
  ASSERT_TRUE(same_content.ok());
  EXPECT_TRUE(same_content->deduplicated());
  const v1::ModelStats stats = MustFind(absl::Minutes(15), "dall-e-3");
  EXPECT_EQ(stats.duplicates_blocked(), 2);
  EXPECT_EQ(At(stats.tasks_by_state(), "SUBMITTED"), 1);
}

TEST_F(StatsTrackerTest, EventsOlderThanTheWindowAreNotCounted) {
  Finish("veo-3", 2, Failed(503, "", "overloaded"));
  SubmitInvalid("kling-v2-1", "4:3", 5);
  clock_.Advance(absl::Minutes(20));
  Finish("veo-3", 1, Completed());

  const v1::ModelStats recent = MustFind(absl::Minutes(15), "veo-3");
  EXPECT_EQ(At(recent.tasks_by_state(), "SUBMITTED"), 1);
  EXPECT_EQ(At(recent.tasks_by_state(), "SUCCEEDED"), 1);
  EXPECT_EQ(At(recent.tasks_by_state(), "FAILED"), 0);
  EXPECT_EQ(recent.failures_by_category_size(), 0);
  auto stats = Stats(absl::Minutes(15));
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(Find(*stats, "kling-v2-1"), nullptr);

  // A wider window sees them again.
  const v1::ModelStats wide = MustFind(absl::Minutes(30), "veo-3");
  EXPECT_EQ(At(wide.tasks_by_state(), "SUBMITTED"), 3);
  EXPECT_EQ(At(wide.tasks_by_state(), "FAILED"), 2);
  EXPECT_EQ(At(wide.failures_by_category(), "UPSTREAM_UNAVAILABLE"), 2);
  EXPECT_EQ(At(MustFind(absl::Minutes(30), "kling-v2-1").rejections_by_reason(),
               "RATIO_UNSUPPORTED"),
            1);
}

TEST_F(StatsTrackerTest, ModelFilterKeepsOnlyThatModel) {
  Finish("veo-3", 1, Completed());
  Finish("sora-2", 2, Completed());
  auto stats = Stats(absl::Minutes(15), "sora-2");
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->models_size(), 1);
  EXPECT_EQ(stats->models(0).model(), "sora-2");
  EXPECT_EQ(At(stats->models(0).tasks_by_state(), "SUCCEEDED"), 2);
  auto all = Stats(absl::Minutes(15));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->models_size(), 2);
}

TEST_F(StatsTrackerTest, QueueWaitsCoverTheWindow) {
  QueuedThenStarted("veo-3", absl::Minutes(30));  // leaves the queue at t+30m
  clock_.Advance(absl::Minutes(20));
  for (int i = 1; i <= 10; ++i) {
    QueuedThenStarted("veo-3", absl::Seconds(i));
  }
  const v1::ModelStats stats = MustFind(absl::Minutes(15), "veo-3");
  EXPECT_EQ(FromProtoDuration(stats.queue_wait_p50()), absl::Seconds(5));
  EXPECT_EQ(FromProtoDuration(stats.queue_wait_p90()), absl::Seconds(9));
}

TEST_F(StatsTrackerTest, IncidentNamesTheModelAndTheEvidence) {
  Finish("veo-3", 7, Failed(503, "", "upstream overloaded"));
  Finish("veo-3", 2, Completed());
  Finish("sora-2", 9, Completed());
  auto stats = Stats(absl::Minutes(15));
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->incidents_size(), 1);
  const std::string& incident = stats->incidents(0);
  EXPECT_THAT(incident, HasSubstr("veo-3"));
  EXPECT_THAT(incident, HasSubstr("7 of 9"));
  EXPECT_THAT(incident, HasSubstr("UPSTREAM_UNAVAILABLE 7"));
  EXPECT_THAT(incident, HasSubstr("provider"));
  EXPECT_THAT(incident, Not(HasSubstr("sora-2")));
}

TEST_F(StatsTrackerTest, IncidentThresholds) {
  struct Case {
    const char* name;
    int succeeded;
    int provider_failed;
    int config_failed;
    int canceled;
    bool incident;
  };
  for (const Case& c : {
           Case{"seven_of_nine", 2, 7, 0, 0, true},
           Case{"four_finished", 0, 4, 0, 0, false},
           Case{"five_finished", 0, 5, 0, 0, true},
           Case{"mostly_configuration", 0, 2, 4, 0, false},
           Case{"eighty_percent_provider", 0, 4, 1, 0, true},
           Case{"below_eighty_percent", 0, 3, 1, 0, false},
           Case{"fewer_than_half_failed", 6, 4, 0, 0, false},
           Case{"exactly_half_failed", 5, 5, 0, 0, true},
           Case{"cancels_count_as_finished", 0, 3, 0, 4, false},
       }) {
    SCOPED_TRACE(c.name);
    // Each case in its own 15-minute window.
    clock_.Advance(absl::Hours(1));
    const std::string model = "kling-v2-1";
    Finish(model, c.succeeded, Completed());
    Finish(model, c.provider_failed, Failed(502, "", "bad gateway"));
    Finish(model, c.config_failed, Failed(401, "", "invalid api key"));
    Finish(model, c.canceled, Canceled());
    auto stats = Stats(absl::Minutes(15));
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(stats->incidents_size(), c.incident ? 1 : 0)
        << (stats->incidents_size() > 0 ? stats->incidents(0) : "");
  }
}

TEST_F(StatsTrackerTest, WindowMustBeBetweenOneMinuteAndADay) {
  struct Case {
    absl::Duration window;
    bool ok;
  };
  for (const Case& c :
       {Case{absl::Hours(24), true},
        Case{absl::Hours(24) + absl::Seconds(1), false},
        Case{absl::Hours(48), false}, Case{absl::Minutes(1), true},
        Case{absl::Seconds(59), false}, Case{absl::Seconds(-60), false}}) {
    SCOPED_TRACE(absl::FormatDuration(c.window));
    auto stats = Stats(c.window);
    if (c.ok) {
      EXPECT_TRUE(stats.ok()) << stats.status();
    } else {
      EXPECT_EQ(stats.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
  // No window: the default of 15 minutes.
  v1::GetStatsRequest request;
  auto stats = tracker_->GetStats(request);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(FromProtoDuration(stats->window()), absl::Minutes(15));
}

TEST_F(StatsTrackerTest, CountersSurviveReopen) {
  Finish("veo-3", 5, Failed(503, "", "upstream overloaded"));
  SubmitInvalid("kling-v2-1", "4:3", 5);
  Reopen();
  clock_.Advance(absl::Minutes(1));
  auto stats = Stats(absl::Minutes(15));
  ASSERT_TRUE(stats.ok()) << stats.status();
  const v1::ModelStats* veo = Find(*stats, "veo-3");
  ASSERT_NE(veo, nullptr);
  EXPECT_EQ(At(veo->tasks_by_state(), "FAILED"), 5);
  EXPECT_EQ(At(veo->failures_by_origin(), "PROVIDER"), 5);
  EXPECT_EQ(FromProtoDuration(veo->queue_wait_p90()), absl::ZeroDuration());
  const v1::ModelStats* kling = Find(*stats, "kling-v2-1");
  ASSERT_NE(kling, nullptr);
  EXPECT_EQ(At(kling->rejections_by_reason(), "RATIO_UNSUPPORTED"), 1);
  ASSERT_EQ(stats->incidents_size(), 1);
  EXPECT_THAT(stats->incidents(0), HasSubstr("veo-3"));
}

}  // namespace
}  // namespace tasktrail
