// Unit tests of the tasktrail CLI's pure output formats and exit statuses.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "cli/format.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace tasktrail::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// 2026-11-27 21:03:12 at UTC+01:00.
constexpr int64_t kOffset = 3600;

absl::TimeZone Zone() { return absl::FixedTimeZone(kOffset); }

absl::Time At(int h, int m, int s, int day = 27) {
  return absl::FromCivil(absl::CivilSecond(2026, 11, day, h, m, s), Zone());
}

google::protobuf::Timestamp Ts(absl::Time t) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(absl::ToUnixSeconds(t));
  return ts;
}

FormatOptions Opts(absl::Time now = At(21, 15, 12)) {
  FormatOptions opts;
  opts.zone = Zone();
  opts.now = now;
  return opts;
}

// ---- Relative times and spans ----------------------------------------------

TEST(FormatRelativeTest, PicksTheLargestWholeUnit) {
  absl::Time now = At(12, 0, 0);
  EXPECT_EQ(FormatRelative(now, now), "0s ago");
  EXPECT_EQ(FormatRelative(now - absl::Seconds(45), now), "45s ago");
  EXPECT_EQ(FormatRelative(now - absl::Seconds(59), now), "59s ago");
  EXPECT_EQ(FormatRelative(now - absl::Seconds(60), now), "1m ago");
  EXPECT_EQ(FormatRelative(now - absl::Minutes(12) - absl::Seconds(59), now),
            "12m ago");
  EXPECT_EQ(FormatRelative(now - absl::Hours(3), now), "3h ago");
  EXPECT_EQ(FormatRelative(now - absl::Hours(23) - absl::Minutes(59), now),
            "23h ago");
  EXPECT_EQ(FormatRelative(now - absl::Hours(48), now), "2d ago");
}

TEST(FormatRelativeTest, FutureTimes) {
  absl::Time now = At(12, 0, 0);
  EXPECT_EQ(FormatRelative(now + absl::Seconds(45), now), "in 45s");
  EXPECT_EQ(FormatRelative(now + absl::Hours(5), now), "in 5h");
}

TEST(FormatSpanTest, CompactSpans) {
  EXPECT_EQ(FormatSpan(absl::ZeroDuration()), "0s");
  EXPECT_EQ(FormatSpan(absl::Milliseconds(350)), "350ms");
  EXPECT_EQ(FormatSpan(absl::Seconds(45)), "45s");
  EXPECT_EQ(FormatSpan(absl::Minutes(6)), "6m");
  EXPECT_EQ(FormatSpan(absl::Minutes(6) + absl::Seconds(30)), "6m30s");
  EXPECT_EQ(FormatSpan(absl::Minutes(85)), "1h25m");
  EXPECT_EQ(FormatSpan(absl::Hours(51)), "2d3h");
}

// "Now" is 2026-11-27 21:15:12 at UTC+01:00 (Opts()) throughout.

TEST(FormatTimeTest, TodayIsAgeAndClock) {
  EXPECT_EQ(FormatTimeWithAge(At(21, 3, 12), Opts()), "12m ago, 21:03:12");
  EXPECT_EQ(FormatTimeWithAge(At(0, 0, 0), Opts()), "21h ago, 00:00:00");
  EXPECT_EQ(FormatClock(At(21, 3, 12), Opts()), "21:03:12");
  EXPECT_EQ(FormatTimeWithAge(absl::InfinitePast(), Opts()), "-");
  EXPECT_EQ(FormatClock(absl::InfinitePast(), Opts()), "-");
}

// Less than a day ago, but yesterday on the wall clock: the date says so.
TEST(FormatTimeTest, YesterdayHasTheDate) {
  EXPECT_EQ(FormatTimeWithAge(At(23, 59, 59, 26), Opts()),
            "21h ago, 2026-11-26 23:59:59");
  EXPECT_EQ(FormatClock(At(23, 59, 59, 26), Opts()), "2026-11-26 23:59:59");
  EXPECT_EQ(FormatTimeWithAge(At(21, 14, 3, 25), Opts()),
            "2d ago, 2026-11-25 21:14:03");
}

TEST(FormatTimeTest, FutureTimes) {
  EXPECT_EQ(FormatTimeWithAge(At(23, 15, 12), Opts()), "in 2h, 23:15:12");
  EXPECT_EQ(FormatTimeWithAge(At(2, 0, 0, 28), Opts()),
            "in 4h, 2026-11-28 02:00:00");
  EXPECT_EQ(FormatClock(At(2, 0, 0, 28), Opts()), "2026-11-28 02:00:00");
}

TEST(FormatTimeTest, AcrossAYear) {
  const absl::Time last_year =
      absl::FromCivil(absl::CivilSecond(2025, 11, 27, 21, 3, 12), Zone());
  EXPECT_EQ(FormatTimeWithAge(last_year, Opts()),
            "365d ago, 2025-11-27 21:03:12");
  const absl::Time new_year =
      absl::FromCivil(absl::CivilSecond(2027, 1, 1, 0, 0, 5), Zone());
  FormatOptions opts = Opts(new_year);
  EXPECT_EQ(FormatTimeWithAge(new_year - absl::Seconds(10), opts),
            "10s ago, 2026-12-31 23:59:55");
  EXPECT_EQ(FormatTimeWithAge(new_year, opts), "0s ago, 00:00:05");
}

// The same instant in UTC and at UTC+01:00: the clock and whether it is
// today follow the shown zone. At 00:30 at UTC+01:00 it is 23:30 the day
// before in UTC.
TEST(FormatTimeTest, TodayFollowsTheShownZone) {
  FormatOptions utc = Opts();
  utc.zone = absl::UTCTimeZone();
  EXPECT_EQ(FormatTimeWithAge(At(21, 3, 12), utc), "12m ago, 20:03:12");
  EXPECT_EQ(FormatClock(At(21, 3, 12), utc), "20:03:12");

  const absl::Time after_midnight = At(0, 30, 0, 28);
  FormatOptions plus_one = Opts(after_midnight + absl::Minutes(10));
  utc.now = plus_one.now;
  const absl::Time before_midnight = after_midnight - absl::Hours(1);
  EXPECT_EQ(FormatTimeWithAge(before_midnight, plus_one),
            "1h ago, 2026-11-27 23:30:00");
  EXPECT_EQ(FormatTimeWithAge(before_midnight, utc), "1h ago, 22:30:00");
  EXPECT_EQ(FormatTimeWithAge(after_midnight, plus_one), "10m ago, 00:30:00");
  EXPECT_EQ(FormatTimeWithAge(after_midnight, utc), "10m ago, 23:30:00");
}

TEST(FormatTimeTest, UnsetTimestampIsNotSet) {
  EXPECT_EQ(ToAbslTime(google::protobuf::Timestamp()), absl::InfinitePast());
  EXPECT_EQ(ToAbslTime(Ts(At(1, 2, 3))), At(1, 2, 3));
}

// ---- Names -----------------------------------------------------------------

TEST(NamesTest, StateNamesAreUpperCaseWords) {
  EXPECT_EQ(StateName(v1::TASK_STATE_SUBMITTED), "SUBMITTED");
  EXPECT_EQ(StateName(v1::TASK_STATE_QUEUED), "QUEUED");
  EXPECT_EQ(StateName(v1::TASK_STATE_RUNNING), "RUNNING");
  EXPECT_EQ(StateName(v1::TASK_STATE_SUCCEEDED), "SUCCEEDED");
  EXPECT_EQ(StateName(v1::TASK_STATE_FAILED), "FAILED");
  EXPECT_EQ(StateName(v1::TASK_STATE_CANCELED), "CANCELED");
  EXPECT_EQ(StateName(static_cast<v1::TaskState>(42)), "STATE_42");
}

TEST(NamesTest, ParseStateName) {
  EXPECT_EQ(ParseStateName("queued"), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(ParseStateName("canceled"), v1::TASK_STATE_CANCELED);
  EXPECT_EQ(ParseStateName("bogus"), v1::TASK_STATE_UNSPECIFIED);
}

TEST(NamesTest, EventTypeShortNames) {
  EXPECT_EQ(EventTypeName(v1::EVENT_TYPE_SUBMITTED), "submitted");
  EXPECT_EQ(EventTypeName(v1::EVENT_TYPE_POLLED), "polled");
  EXPECT_EQ(EventTypeName(v1::EVENT_TYPE_DUPLICATE_BLOCKED),
            "duplicate-blocked");
  EXPECT_EQ(EventTypeName(v1::EVENT_TYPE_NOTE_ADDED), "note");
  EXPECT_EQ(EventTypeName(v1::EVENT_TYPE_REFUNDED), "refunded");
  EXPECT_EQ(EventTypeName(v1::EVENT_TYPE_CHARGE_ADJUSTED), "charge-adjusted");
  EXPECT_EQ(EventTypeName(v1::EVENT_TYPE_LATE_UPSTREAM_RESULT), "late-result");
  EXPECT_EQ(EventTypeName(static_cast<v1::EventType>(99)), "event-99");
}

// ---- Charge, duplicates, notes ---------------------------------------------

TEST(OwedTest, RowsShowTheChargeAfterAdjustmentsAndTheTotal) {
  google::protobuf::RepeatedPtrField<v1::Task> tasks;
  v1::Task* provider = tasks.Add();
  provider->set_task_id("T1");
  provider->set_model("veo-3");
  provider->set_account_id("acct-1");
  provider->set_state(v1::TASK_STATE_FAILED);
  provider->mutable_failure()->set_origin(v1::FAILURE_ORIGIN_PROVIDER);
  provider->set_charge_units(40);
  provider->set_adjusted_units(8);
  *provider->mutable_finish_time() = Ts(At(21, 3, 12));
  v1::Task* canceled = tasks.Add();
  canceled->set_task_id("T2");
  canceled->set_model("kling");
  canceled->set_account_id("acct-2");
  canceled->set_state(v1::TASK_STATE_CANCELED);
  canceled->set_charge_units(10);
  *canceled->mutable_finish_time() = Ts(At(19, 15, 12));
  const std::string out = FormatOwed(tasks, Opts());
  EXPECT_THAT(out, HasSubstr("FAILED"));
  EXPECT_THAT(out, HasSubstr("provider"));
  EXPECT_THAT(out, HasSubstr("48"));
  EXPECT_THAT(out, HasSubstr("12m ago"));
  EXPECT_THAT(out, HasSubstr("2h ago"));
  EXPECT_THAT(out, HasSubstr("2 tasks owed · 58 units"));
  EXPECT_EQ(FormatOwed({}, Opts()), "nothing owed\n");

  absl::StatusOr<std::string> json =
      FormatOwedRowJson(tasks[0], At(21, 15, 12));
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr("\"owed_units\":48"));
  EXPECT_THAT(*json, HasSubstr("\"finished_seconds_ago\":720"));
  EXPECT_THAT(*json, HasSubstr("\"failure_origin\":\"PROVIDER\""));
}

TEST(ChargeLineTest, NotRefunded) {
  v1::Task task;
  task.set_charge_units(40);
  EXPECT_EQ(FormatChargeLine(task, Opts()), "charged 40 units · not refunded");
}

TEST(ChargeLineTest, RefundedShowsTheTime) {
  v1::Task task;
  task.set_charge_units(40);
  task.set_refunded(true);
  task.set_refunded_units(40);
  *task.mutable_refund_time() = Ts(At(21, 14, 3));
  EXPECT_EQ(FormatChargeLine(task, Opts()),
            "charged 40 units · refunded 21:14:03");
}

TEST(ChargeLineTest, PartialRefundShowsTheUnits) {
  v1::Task task;
  task.set_charge_units(40);
  task.set_refunded(true);
  task.set_refunded_units(10);
  *task.mutable_refund_time() = Ts(At(21, 14, 3));
  EXPECT_EQ(FormatChargeLine(task, Opts()),
            "charged 40 units · refunded 10 units 21:14:03");
}

TEST(ChargeLineTest, AdjustedShowsTheSettlementAndTheNet) {
  v1::Task task;
  task.set_charge_units(40);
  task.set_adjusted_units(8);
  task.set_net_units(48);
  task.set_last_ledger_ref("L-991");
  EXPECT_EQ(FormatChargeLine(task, Opts()),
            "charged 40 · adjusted +8 (ledger L-991) · refunded 0 · net 48");
  task.set_adjusted_units(-8);
  task.set_refunded(true);
  task.set_refunded_units(32);
  task.set_net_units(0);
  task.clear_last_ledger_ref();
  *task.mutable_refund_time() = Ts(At(21, 14, 3));
  EXPECT_EQ(FormatChargeLine(task, Opts()),
            "charged 40 · adjusted -8 · refunded 32 21:14:03 · net 0");
}

TEST(LateResultLineTest, SaysWhatTheProviderDidAfterTheTaskFinishedHere) {
  v1::Task task;
  EXPECT_EQ(FormatLateResultLine(task), "");
  task.set_state(v1::TASK_STATE_FAILED);
  task.mutable_failure()->set_origin(v1::FAILURE_ORIGIN_GATEWAY);
  *task.mutable_finish_time() = Ts(At(20, 50, 0));
  *task.mutable_late_result_time() = Ts(At(21, 2, 0));
  task.set_late_outcome(v1::TASK_STATE_SUCCEEDED);
  task.set_refunded(true);
  task.set_refunded_units(40);
  EXPECT_EQ(FormatLateResultLine(task),
            "provider completed 12m after the gateway failed it · refunded 40");
  task.mutable_failure()->set_origin(v1::FAILURE_ORIGIN_PROVIDER);
  task.set_refunded(false);
  EXPECT_EQ(FormatLateResultLine(task),
            "provider completed 12m after it failed here · not refunded");
  task.set_state(v1::TASK_STATE_CANCELED);
  task.set_late_outcome(v1::TASK_STATE_FAILED);
  *task.mutable_late_result_time() = Ts(At(20, 53, 30));
  EXPECT_EQ(FormatLateResultLine(task),
            "provider failed 3m30s after it was canceled · not refunded");
}

TEST(ChargeLineTest, NoCharge) {
  EXPECT_EQ(FormatChargeLine(v1::Task(), Opts()), "not charged");
}

TEST(DuplicatesLineTest, EmptyWithoutDuplicates) {
  EXPECT_EQ(FormatDuplicatesLine(v1::Task(), Opts()), "");
}

TEST(DuplicatesLineTest, CountAndLastTime) {
  v1::Task task;
  task.set_duplicate_count(2);
  *task.mutable_last_duplicate_time() = Ts(At(21, 3, 12));
  EXPECT_EQ(FormatDuplicatesLine(task, Opts()),
            "blocked 2 duplicate submissions (last 21:03:12)");
  task.set_duplicate_count(1);
  EXPECT_EQ(FormatDuplicatesLine(task, Opts()),
            "blocked 1 duplicate submission (last 21:03:12)");
}

TEST(NoteTest, AuthorTimeTextAndFinalCause) {
  v1::Note note;
  note.set_author("alice");
  note.set_text("user asked twice");
  note.set_final_cause("copied credential contained whitespace");
  *note.mutable_create_time() = Ts(At(21, 14, 59));
  EXPECT_EQ(FormatNote(note, Opts()),
            "note by alice (21:14:59): user asked twice — final cause: copied "
            "credential contained whitespace");
  *note.mutable_create_time() = Ts(At(9, 0, 0, 26));
  EXPECT_THAT(FormatNote(note, Opts()),
              HasSubstr("note by alice (2026-11-26 09:00:00): "));
}

// ---- Events ----------------------------------------------------------------

TEST(EventDetailTest, FoldedPolls) {
  v1::TaskEvent event;
  event.set_type(v1::EVENT_TYPE_POLLED);
  event.mutable_polled()->set_upstream_status("in_queue");
  event.mutable_polled()->set_queue_position(14);
  event.set_repeat_count(12);
  *event.mutable_last_time() = Ts(At(21, 10, 0));
  EXPECT_EQ(FormatEventDetail(event, Opts()),
            "in_queue · position 14 ×12 until 21:10:00");
}

TEST(EventDetailTest, SinglePollIsNotFolded) {
  v1::TaskEvent event;
  event.set_type(v1::EVENT_TYPE_POLLED);
  event.mutable_polled()->set_upstream_status("running");
  event.set_repeat_count(1);
  EXPECT_EQ(FormatEventDetail(event, Opts()), "running");
}

TEST(EventDetailTest, FailedAndDuplicate) {
  v1::TaskEvent failed;
  failed.mutable_failed()->set_http_status(400);
  failed.mutable_failed()->set_error_code("invalid_param");
  failed.mutable_failed()->set_refunded(true);
  EXPECT_EQ(FormatEventDetail(failed, Opts()),
            "HTTP 400 · invalid_param · refunded");
  v1::TaskEvent dup;
  dup.mutable_duplicate_blocked()->set_reason(v1::DEDUP_REASON_SAME_CONTENT);
  dup.mutable_duplicate_blocked()->set_client("web");
  EXPECT_EQ(FormatEventDetail(dup, Opts()), "same content · from web");
}

TEST(EventLineTest, OneLineWithSeqTimeTypeActor) {
  v1::TaskEvent event;
  event.set_seq(3);
  event.set_type(v1::EVENT_TYPE_QUEUED);
  event.set_actor("poller");
  *event.mutable_time() = Ts(At(21, 3, 12));
  event.mutable_queued()->set_upstream_task_id("up-1");
  std::string line = FormatEventLine(event, Opts());
  EXPECT_THAT(line, HasSubstr("#3"));
  EXPECT_THAT(line, HasSubstr("2026-11-27 21:03:12 +01:00"));
  EXPECT_THAT(line, HasSubstr("queued"));
  EXPECT_THAT(line, HasSubstr("poller"));
  EXPECT_THAT(line, HasSubstr("upstream id up-1"));
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(TimelineTest, AlignedColumnsAndDatesOffToday) {
  google::protobuf::RepeatedPtrField<v1::TaskEvent> events;
  v1::TaskEvent* a = events.Add();
  a->set_seq(1);
  a->set_type(v1::EVENT_TYPE_SUBMITTED);
  a->set_actor("gateway");
  *a->mutable_time() = Ts(At(21, 3, 12));
  v1::TaskEvent* b = events.Add();
  b->set_seq(2);
  b->set_type(v1::EVENT_TYPE_DUPLICATE_BLOCKED);
  *b->mutable_time() = Ts(At(0, 1, 0, 28));
  EXPECT_EQ(FormatTimeline(events, Opts()),
            "SEQ  TIME                 EVENT              ACTOR    DETAIL\n"
            "1    21:03:12             submitted          gateway\n"
            "2    2026-11-28 00:01:00  duplicate-blocked  -\n");
  // Read two days later, every time carries its date.
  EXPECT_EQ(FormatTimeline(events, Opts(At(10, 0, 0, 29))),
            "SEQ  TIME                 EVENT              ACTOR    DETAIL\n"
            "1    2026-11-27 21:03:12  submitted          gateway\n"
            "2    2026-11-28 00:01:00  duplicate-blocked  -\n");
}

// ---- Task report -----------------------------------------------------------

v1::Task SampleTask() {
  v1::Task task;
  task.set_task_id("tt_1");
  task.set_account_id("acme");
  task.set_api_key_id("key_12");
  task.set_model("veo-3");
  task.set_kind(v1::TASK_KIND_VIDEO);
  task.set_state(v1::TASK_STATE_FAILED);
  *task.mutable_create_time() = Ts(At(21, 3, 12));
  task.mutable_params()->set_prompt(std::string(150, 'p'));
  task.mutable_params()->set_aspect_ratio("16:9");
  task.set_charge_units(40);
  task.mutable_failure()->set_category(v1::FAILURE_CATEGORY_INVALID_PARAMS);
  task.mutable_failure()->set_origin(v1::FAILURE_ORIGIN_CONFIGURATION);
  task.mutable_failure()->set_http_status(400);
  task.mutable_failure()->set_cause("reference image is 12 MB");
  task.mutable_failure()->set_rule("kling-parameters");
  v1::Note* note = task.add_notes();
  note->set_author("bob");
  note->set_text("checked");
  v1::TaskEvent* e = task.add_events();
  e->set_seq(1);
  e->set_type(v1::EVENT_TYPE_SUBMITTED);
  *e->mutable_time() = Ts(At(21, 3, 12));
  return task;
}

TEST(FormatTaskTest, OneScreenReport) {
  std::string out = FormatTask(SampleTask(), Opts());
  EXPECT_THAT(out, HasSubstr("tt_1"));
  EXPECT_THAT(out, HasSubstr("FAILED"));
  EXPECT_THAT(out, HasSubstr("veo-3 (video)"));
  EXPECT_THAT(out, HasSubstr("api key key_12"));
  EXPECT_THAT(out, HasSubstr("note by bob: checked"));
  EXPECT_THAT(out, HasSubstr("12m ago, 21:03:12"));
  EXPECT_THAT(out, HasSubstr("invalid params"));
  EXPECT_THAT(out, HasSubstr("HTTP 400"));
  EXPECT_THAT(out,
              HasSubstr("reference image is 12 MB · rule kling-parameters"));
  EXPECT_THAT(out, HasSubstr("retrying unchanged will fail again"));
  EXPECT_THAT(out, HasSubstr("charged 40 units · not refunded"));
  EXPECT_THAT(out, HasSubstr("ratio 16:9"));
  EXPECT_THAT(out, HasSubstr(std::string(99, 'p') + "…"));
  EXPECT_THAT(out, Not(HasSubstr(std::string(101, 'p'))));
  EXPECT_THAT(out, Not(HasSubstr("duplicate")));
  EXPECT_THAT(out, HasSubstr("SEQ"));
  EXPECT_THAT(out, HasSubstr("submitted"));
  // Notes come right below the header, before the rest of the report.
  EXPECT_LT(out.find("note by bob"), out.find("created"));
}

TEST(FormatTaskTest, NoTimelineWithoutEvents) {
  v1::Task task = SampleTask();
  task.clear_events();
  EXPECT_THAT(FormatTask(task, Opts()), Not(HasSubstr("SEQ")));
}

// ---- Other commands --------------------------------------------------------

TEST(QueueStatusTest, NeverInventsAnEta) {
  v1::QueueStatus status;
  status.set_task_id("tt_1");
  status.set_state(v1::TASK_STATE_QUEUED);
  status.set_verdict(v1::QUEUE_VERDICT_QUEUED_NORMAL);
  status.mutable_time_in_queue()->set_seconds(20 * 60);
  status.mutable_typical_wait_p50()->set_seconds(6 * 60);
  status.mutable_typical_wait_p90()->set_seconds(25 * 60);
  status.set_typical_wait_samples(120);
  status.set_queue_position(14);
  std::string out = FormatQueueStatus(status, Opts());
  EXPECT_THAT(out, HasSubstr("QUEUED · queued normal"));
  EXPECT_THAT(out, HasSubstr("20m (typical for this model: p50 6m · p90 25m"));
  EXPECT_THAT(out, HasSubstr("position 14"));
  EXPECT_THAT(out, HasSubstr("none given by the upstream"));
  EXPECT_THAT(out, HasSubstr("not advised"));
}

TEST(TaskListTest, TableAndNextPage) {
  v1::ListTasksResponse response;
  v1::Task* t = response.add_tasks();
  t->set_task_id("tt_1");
  t->set_account_id("acme");
  t->set_model("veo-3");
  t->set_state(v1::TASK_STATE_QUEUED);
  *t->mutable_create_time() = Ts(At(21, 3, 12));
  response.set_next_page_token("XYZ");
  std::string out = FormatTaskList(response, Opts());
  EXPECT_THAT(out, HasSubstr("TASK ID"));
  EXPECT_THAT(out, HasSubstr("12m ago"));
  EXPECT_THAT(out, HasSubstr("QUEUED"));
  EXPECT_TRUE(absl::EndsWith(out, "next page: --page-token XYZ\n"));
  EXPECT_EQ(FormatTaskList(v1::ListTasksResponse(), Opts()), "no tasks\n");
  // The creation time itself, not only its age.
  EXPECT_THAT(out, HasSubstr("21:03:12"));
}

TEST(TaskListTest, StoppingAtTheWorkBoundNeverSaysNoTasks) {
  v1::ListTasksResponse response;
  response.set_scanned_count(100000);
  response.set_next_page_token("XYZ");
  const std::string out =
      FormatTaskList(response, Opts(), /*stopped_at_work_bound=*/true);
  EXPECT_THAT(out, Not(HasSubstr("no tasks")));
  EXPECT_THAT(out, HasSubstr("next page: --page-token XYZ\n"));
  EXPECT_TRUE(absl::EndsWith(
      out, "scanned 100000 tasks; more may exist (--all to go on)\n"));
}

TEST(StuckTest, RowsUpToTheLimitAndTotalsOverAllMostUrgentFirst) {
  v1::ListTasksResponse matching;
  const v1::QueueVerdict verdicts[] = {
      v1::QUEUE_VERDICT_QUEUED_LONGER_THAN_USUAL,
      v1::QUEUE_VERDICT_POLLING_STALLED,
      v1::QUEUE_VERDICT_QUEUED_LONGER_THAN_USUAL,
      v1::QUEUE_VERDICT_WAITING_FOR_UPSTREAM};
  for (int i = 0; i < 4; ++i) {
    v1::Task* t = matching.add_tasks();
    t->set_task_id(absl::StrCat("tt_", i));
    t->set_model("veo-3");
    t->set_account_id("acme");
    t->set_state(i == 3 ? v1::TASK_STATE_SUBMITTED : v1::TASK_STATE_QUEUED);
    *t->mutable_create_time() = Ts(At(20, 0, 0));
    *t->mutable_last_upstream_event_time() = Ts(At(21, 0, 12));
    matching.add_queue_statuses()->set_verdict(verdicts[i]);
  }
  const std::string out = FormatStuck(matching, 2, Opts());
  EXPECT_THAT(out, HasSubstr("tt_0"));
  EXPECT_THAT(out, HasSubstr("tt_1"));
  EXPECT_THAT(out, Not(HasSubstr("tt_2")));
  EXPECT_THAT(out, HasSubstr("15m"));  // since the last upstream event
  EXPECT_THAT(out, HasSubstr("… and 2 more (--limit)\n"));
  EXPECT_TRUE(absl::EndsWith(out,
                             "1 POLLING_STALLED · 2 QUEUED_LONGER_THAN_USUAL · "
                             "1 WAITING_FOR_UPSTREAM\n"))
      << out;
  // A submitted task waits since its creation.
  EXPECT_THAT(FormatStuck(matching, 4, Opts()), HasSubstr("1h15m"));
  EXPECT_EQ(FormatStuck(v1::ListTasksResponse(), 10, Opts()),
            "no stuck tasks\n");
}

TEST(ParseTimeTest, RfcThreeThreeNineTimesAndSpansBackFromNow) {
  const absl::Time now = At(21, 15, 12);
  absl::StatusOr<absl::Time> t =
      ParseTimeOrAgo("2026-12-04T21:00:00+01:00", now);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, absl::FromCivil(absl::CivilSecond(2026, 12, 4, 20, 0, 0),
                                absl::UTCTimeZone()));
  t = ParseTimeOrAgo("2026-12-04T20:00:00.250Z", now);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, absl::FromCivil(absl::CivilSecond(2026, 12, 4, 20, 0, 0),
                                absl::UTCTimeZone()) +
                    absl::Milliseconds(250));
  EXPECT_EQ(*ParseTimeOrAgo("2h", now), now - absl::Hours(2));
  EXPECT_EQ(*ParseTimeOrAgo("90s", now), now - absl::Seconds(90));
  EXPECT_EQ(*ParseTimeOrAgo("7d", now), now - absl::Hours(7 * 24));
  for (const char* bad : {"yesterday", "2026-12-04 21:00",
                          "2026-12-04T21:00:00", "-2h", "", "7x"}) {
    EXPECT_FALSE(ParseTimeOrAgo(bad, now).ok()) << bad;
  }
  EXPECT_EQ(*ParseSpan("15m"), absl::Minutes(15));
  EXPECT_EQ(*ParseSpan("0s"), absl::ZeroDuration());
  EXPECT_FALSE(ParseSpan("-1m").ok());
}

TEST(ValidationTest, ViolationsAndValid) {
  v1::ValidateTaskResponse response;
  EXPECT_EQ(FormatValidation(response, "veo-3"), "valid for veo-3\n");
  v1::FieldViolation* v = response.add_violations();
  v->set_field("params.aspect_ratio");
  v->set_reason("RATIO_UNSUPPORTED");
  v->set_description("allowed: 16:9, 9:16");
  EXPECT_EQ(FormatValidation(response, "veo-3"),
            "params.aspect_ratio: allowed: 16:9, 9:16 (RATIO_UNSUPPORTED)\n");
}

TEST(ModelsTest, Table) {
  v1::ListModelsResponse response;
  v1::ModelSpec* m = response.add_models();
  m->set_name("veo-3");
  m->set_kind(v1::TASK_KIND_VIDEO);
  std::string out = FormatModels(response);
  EXPECT_THAT(out, HasSubstr("NAME"));
  EXPECT_THAT(out, HasSubstr("veo-3  video"));
}

TEST(StatsTest, ModelsAndIncidents) {
  v1::Stats stats;
  stats.mutable_window()->set_seconds(15 * 60);
  v1::ModelStats* m = stats.add_models();
  m->set_model("kling-v2-1");
  (*m->mutable_tasks_by_state())["FAILED"] = 8;
  (*m->mutable_tasks_by_state())["SUCCEEDED"] = 2;
  (*m->mutable_failures_by_category())["UPSTREAM_UNAVAILABLE"] = 8;
  stats.add_incidents("kling-v2-1: 80% of failures are upstream 5xx");
  std::string out = FormatStats(stats, Opts());
  EXPECT_THAT(out, HasSubstr("window 15m"));
  EXPECT_THAT(out, HasSubstr("kling-v2-1"));
  EXPECT_THAT(out, HasSubstr("UPSTREAM_UNAVAILABLE 8"));
  EXPECT_THAT(out, HasSubstr("  - kling-v2-1: 80% of failures"));
}

TEST(StatsTest, UnclassifiedMessagesAreListedUnderTheirModel) {
  v1::Stats stats;
  stats.mutable_window()->set_seconds(15 * 60);
  v1::ModelStats* m = stats.add_models();
  m->set_model("veo-3");
  (*m->mutable_failures_by_category())["UNKNOWN"] = 5;
  v1::UnclassifiedMessage* first = m->add_unclassified();
  first->set_message("sampler wandered off on job <id>");
  first->set_count(3);
  v1::UnclassifiedMessage* second = m->add_unclassified();
  second->set_message("(no message)");
  second->set_count(2);
  EXPECT_THAT(FormatStats(stats, Opts()),
              HasSubstr("\nveo-3\n"
                        "  failures  UNKNOWN 5\n"
                        "  unclassified\n"
                        "    3 × sampler wandered off on job <id>\n"
                        "    2 × (no message)\n"));
  m->clear_unclassified();
  EXPECT_THAT(FormatStats(stats, Opts()), Not(HasSubstr("unclassified")));
}

TEST(StatsTest, RowsByRouteNameTheRouteAndShowRunAndEndToEndTimes) {
  v1::Stats stats;
  stats.mutable_window()->set_seconds(15 * 60);
  v1::ModelStats* m = stats.add_models();
  m->set_model("kling-v2-1");
  m->set_route("key-7");
  (*m->mutable_tasks_by_state())["FAILED"] = 9;
  (*m->mutable_failures_by_category())["UPSTREAM_UNAVAILABLE"] = 9;
  m->mutable_run_time_p50()->set_seconds(180);
  m->mutable_run_time_p90()->set_seconds(300);
  m->mutable_end_to_end_p50()->set_seconds(189);
  m->mutable_end_to_end_p90()->set_seconds(320);
  const std::string out = FormatStats(stats, Opts());
  EXPECT_THAT(out, HasSubstr("MODEL       ROUTE  SUBMITTED"));
  EXPECT_THAT(out, HasSubstr("RUN P50  RUN P90  E2E P50  E2E P90"));
  EXPECT_THAT(out, HasSubstr("3m       5m       3m9s     5m20s"));
  EXPECT_THAT(out, HasSubstr("\nkling-v2-1 route key-7\n"
                             "  entered   FAILED 9\n"));
  m->clear_route();
  m->set_group("vip");
  EXPECT_THAT(FormatStats(stats, Opts()), HasSubstr("MODEL       GROUP"));
  EXPECT_THAT(FormatStats(stats, Opts()),
              HasSubstr("\nkling-v2-1 group vip\n"));
  m->clear_group();
  EXPECT_THAT(FormatStats(stats, Opts()), Not(HasSubstr("ROUTE")));
  EXPECT_THAT(FormatStats(stats, Opts()), Not(HasSubstr("GROUP")));
}

TEST(ClassificationTest, ShowsTheFailureAndTheRuleThatDecided) {
  v1::Failure failure;
  failure.set_category(v1::FAILURE_CATEGORY_RATE_LIMITED);
  failure.set_origin(v1::FAILURE_ORIGIN_PROVIDER);
  failure.set_http_status(429);
  failure.set_error_code("RESOURCE_EXHAUSTED");
  failure.set_message("Quota exceeded");
  failure.set_cause("wait a minute");
  failure.set_retryable(true);
  failure.set_rule("google-resource-exhausted");
  EXPECT_EQ(FormatClassification(failure, "veo-3"),
            "model       veo-3\n"
            "failure     rate limited · origin provider · HTTP 429 · code "
            "RESOURCE_EXHAUSTED\n"
            "message     Quota exceeded\n"
            "cause       wait a minute\n"
            "retryable   yes — a retry may succeed\n"
            "rule        google-resource-exhausted\n");
  failure.clear_rule();
  EXPECT_THAT(FormatClassification(failure, "veo-3"),
              HasSubstr("rule        none matched — unclassified; add a rule "
                        "for it\n"));
}

TEST(JsonTest, ProtoFieldNamesAndDefaults) {
  v1::Task task;
  task.set_task_id("tt_1");
  absl::StatusOr<std::string> compact = ToJson(task, /*pretty=*/false);
  ASSERT_TRUE(compact.ok()) << compact.status();
  EXPECT_THAT(*compact, HasSubstr("\"task_id\":\"tt_1\""));
  EXPECT_THAT(*compact, HasSubstr("\"charge_units\""));
  EXPECT_EQ(compact->find('\n'), compact->size() - 1);
  absl::StatusOr<std::string> pretty = ToJson(task, /*pretty=*/true);
  ASSERT_TRUE(pretty.ok()) << pretty.status();
  EXPECT_THAT(*pretty, HasSubstr("\n "));
}

TEST(JsonTest, ATimeOutsideProtobufsRangeIsAnErrorNotAnEmptyObject) {
  v1::Task task;
  task.set_task_id("tt_1");
  task.mutable_upstream_eta()->set_seconds(INT64_MAX);
  absl::StatusOr<std::string> json = ToJson(task, /*pretty=*/true);
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(json.status().message().empty());
}

// ---- Terminal safety -------------------------------------------------------

TEST(EscapeTest, ControlCharactersBecomeVisibleAndTheRestIsKept) {
  EXPECT_EQ(EscapeControlCharacters("plain text, ünïcödé 视频"),
            "plain text, ünïcödé 视频");
  EXPECT_EQ(EscapeControlCharacters("\x1b]0;owned\x07\x1b[2J"),
            "\\x1b]0;owned\\x07\\x1b[2J");
  EXPECT_EQ(EscapeControlCharacters("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(EscapeControlCharacters(std::string("nul\0del\x7f", 8)),
            "nul\\x00del\\x7f");
  // U+009B (CSI in C1) is \xc2\x9b in UTF-8; U+00A0 (\xc2\xa0) is printable.
  EXPECT_EQ(EscapeControlCharacters("\xc2\x9b"
                                    "2J\xc2\xa0"),
            "\\u009b2J\xc2\xa0");
}

TEST(EscapeTest, EveryStringFieldOfAMessageIsEscapedAtAnyDepth) {
  v1::Task task;
  task.set_account_id("acct\x1b[2J");
  task.mutable_params()->set_prompt("line1\nline2");
  task.add_result_uris("https://cdn.example.com/\x07");
  v1::Note* note = task.add_notes();
  note->set_text("\x1b]0;title\x07");
  v1::TaskEvent* event = task.add_events();
  event->mutable_failed()->set_message("boom\x1b[31m");
  v1::Stats stats;
  (*stats.add_models()->mutable_rejections_by_reason())["R\x1b"] = 1;

  EscapeControlCharactersIn(&task);
  EscapeControlCharactersIn(&stats);
  EXPECT_EQ(task.account_id(), "acct\\x1b[2J");
  EXPECT_EQ(task.params().prompt(), "line1\\nline2");
  EXPECT_EQ(task.result_uris(0), "https://cdn.example.com/\\x07");
  EXPECT_EQ(task.notes(0).text(), "\\x1b]0;title\\x07");
  EXPECT_EQ(task.events(0).failed().message(), "boom\\x1b[31m");
  EXPECT_EQ(stats.models(0).rejections_by_reason().count("R\\x1b"), 1u);
  EXPECT_EQ(stats.models(0).rejections_by_reason().count("R\x1b"), 0u);

  const std::string report = FormatTask(task, Opts());
  EXPECT_EQ(report.find('\x1b'), std::string::npos);
  EXPECT_EQ(report.find('\x07'), std::string::npos);
}

TEST(FormatTaskTest, SaysHowManyEventsTheServerOmittedAndHowToSeeThem) {
  v1::Task task;
  task.set_task_id("tt_long");
  task.add_events()->set_seq(1);
  task.add_events()->set_seq(20002);
  task.set_omitted_event_count(20000);
  EXPECT_THAT(FormatTask(task, Opts()),
              HasSubstr("… 20000 earlier events omitted; `tasktrail watch "
                        "tt_long` replays them all"));
  task.set_omitted_event_count(0);
  EXPECT_THAT(FormatTask(task, Opts()), Not(HasSubstr("omitted")));
}

// ---- Exit statuses and errors ----------------------------------------------

TEST(ExitCodeTest, TableOfApiMd) {
  using grpc::StatusCode;
  EXPECT_EQ(ExitCodeFor(StatusCode::OK, ""), 0);
  EXPECT_EQ(ExitCodeFor(StatusCode::INVALID_ARGUMENT, ""), 1);
  EXPECT_EQ(ExitCodeFor(StatusCode::FAILED_PRECONDITION, ""), 1);
  EXPECT_EQ(ExitCodeFor(StatusCode::ALREADY_EXISTS, ""), 1);
  EXPECT_EQ(ExitCodeFor(StatusCode::OUT_OF_RANGE, ""), 1);
  EXPECT_EQ(ExitCodeFor(StatusCode::RESOURCE_EXHAUSTED,
                        "Received message larger than max (5 vs. 4)"),
            1);
  EXPECT_EQ(ExitCodeFor(StatusCode::RESOURCE_EXHAUSTED, "request too large"),
            1);
  EXPECT_EQ(ExitCodeFor(StatusCode::RESOURCE_EXHAUSTED, "overloaded"), 4);
  EXPECT_EQ(ExitCodeFor(StatusCode::NOT_FOUND, ""), 3);
  EXPECT_EQ(ExitCodeFor(StatusCode::UNAVAILABLE, ""), 4);
  EXPECT_EQ(ExitCodeFor(StatusCode::DEADLINE_EXCEEDED, ""), 4);
  EXPECT_EQ(ExitCodeFor(StatusCode::UNAUTHENTICATED, ""), 5);
  EXPECT_EQ(ExitCodeFor(StatusCode::PERMISSION_DENIED, ""), 5);
  EXPECT_EQ(ExitCodeFor(StatusCode::UNIMPLEMENTED, ""), 6);
  EXPECT_EQ(ExitCodeFor(StatusCode::INTERNAL, ""), 6);
  EXPECT_EQ(ExitCodeFor(StatusCode::UNKNOWN, ""), 6);
  EXPECT_EQ(ExitCodeFor(StatusCode::CANCELLED, ""), 6);
  EXPECT_EQ(ExitCodeFor(StatusCode::DATA_LOSS, ""), 6);
}

TEST(RpcErrorTest, UnreachableNamesTheAddress) {
  EXPECT_EQ(FormatRpcError(grpc::StatusCode::UNAVAILABLE, "connect failed",
                           "127.0.0.1:50051"),
            "cannot reach tasktraild at 127.0.0.1:50051: connect failed "
            "(UNAVAILABLE)");
  EXPECT_THAT(FormatRpcError(grpc::StatusCode::DEADLINE_EXCEEDED, "", "host:1"),
              HasSubstr("host:1"));
}

TEST(RpcErrorTest, DecodesBadRequestViolations) {
  google::rpc::BadRequest bad;
  auto* v = bad.add_field_violations();
  v->set_field("params.aspect_ratio");
  v->set_description("allowed: 16:9");
  v->set_reason("RATIO_UNSUPPORTED");
  google::rpc::ErrorInfo info;
  info.set_reason("INVALID_TASK_PARAMETERS");
  google::rpc::Status status;
  status.set_code(3);
  status.add_details()->PackFrom(bad);
  status.add_details()->PackFrom(info);
  EXPECT_EQ(FormatErrorDetails(status.SerializeAsString()),
            "  params.aspect_ratio: allowed: 16:9 (RATIO_UNSUPPORTED)\n");
  EXPECT_EQ(FormatErrorDetails(""), "");
  EXPECT_EQ(FormatErrorDetails("\xff\xff garbage"), "");
}

// ---- Arguments -------------------------------------------------------------

TEST(ReferenceImageTest, ParsesAllFields) {
  auto image = ParseReferenceImage("https://x/a.png,image/png,1024,640x480");
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->uri(), "https://x/a.png");
  EXPECT_EQ(image->mime_type(), "image/png");
  EXPECT_EQ(image->size_bytes(), 1024);
  EXPECT_EQ(image->width(), 640);
  EXPECT_EQ(image->height(), 480);
}

TEST(ReferenceImageTest, OptionalFieldsAndCommasInUri) {
  auto only_uri = ParseReferenceImage("https://x/a.png");
  ASSERT_TRUE(only_uri.ok());
  EXPECT_EQ(only_uri->size_bytes(), 0);
  auto commas = ParseReferenceImage("https://x/a,b.png,image/png,,");
  ASSERT_TRUE(commas.ok());
  EXPECT_EQ(commas->uri(), "https://x/a,b.png");
  EXPECT_EQ(commas->mime_type(), "image/png");
}

TEST(ReferenceImageTest, RejectsBadNumbers) {
  EXPECT_FALSE(ParseReferenceImage("u,image/png,big,1x1").ok());
  EXPECT_FALSE(ParseReferenceImage("u,image/png,1,wide").ok());
  EXPECT_FALSE(ParseReferenceImage(",image/png").ok());
}

// ---- Several tasks ---------------------------------------------------------

TEST(TaskSummariesTest, OneRowPerTaskWithVerdictOrCauseThenTheMissingIds) {
  v1::BatchGetTasksResponse response;
  v1::Task* failed = response.add_tasks();
  failed->set_task_id("01JEX4T6Q0M3V8D2S5K7N9P1RA");
  failed->set_model("kling-v2-1");
  failed->set_state(v1::TASK_STATE_FAILED);
  *failed->mutable_create_time() = Ts(At(18, 0, 0));
  failed->set_charge_units(40);
  failed->mutable_failure()->set_cause("the account's balance ran out");
  v1::Task* queued = response.add_tasks();
  queued->set_task_id("01JEX5B2W7R4C1H6Y8E3J0T5GZ");
  queued->set_model("veo-3");
  queued->set_state(v1::TASK_STATE_QUEUED);
  v1::Task* canceled = response.add_tasks();
  canceled->set_task_id("01JEX6AAAAAAAAAAAAAAAAAAAA");
  canceled->set_state(v1::TASK_STATE_CANCELED);
  canceled->mutable_failure()->set_category(v1::FAILURE_CATEGORY_CANCELED);
  v1::Task* unknown = response.add_tasks();
  unknown->set_task_id("01JEX7BBBBBBBBBBBBBBBBBBBB");
  unknown->set_state(v1::TASK_STATE_RUNNING);
  response.add_missing_ids("kl-nope");
  response.add_missing_ids("01ARZ3NDEKTSV4RRFFQ69G5FAV");
  QueueVerdicts verdicts;
  verdicts[queued->task_id()] = v1::QUEUE_VERDICT_QUEUED_LONGER_THAN_USUAL;

  const std::string out = FormatTaskSummaries(response, verdicts, Opts());
  const std::vector<std::string> lines = absl::StrSplit(out, '\n');
  ASSERT_EQ(lines.size(), 7u) << out;  // header, 4 rows, missing, ""
  EXPECT_THAT(lines[0], HasSubstr("VERDICT / CAUSE"));
  EXPECT_THAT(lines[1], HasSubstr("01JEX4T6Q0M3V8D2S5K7N9P1RA"));
  EXPECT_THAT(lines[1], HasSubstr("the account's balance ran out"));
  EXPECT_THAT(lines[1], HasSubstr("charged 40 units · not refunded"));
  EXPECT_THAT(lines[1], HasSubstr("3h ago, 18:00:00"));
  EXPECT_THAT(lines[2], HasSubstr("queued longer than usual"));
  EXPECT_THAT(lines[2], HasSubstr("not charged"));
  EXPECT_THAT(lines[3], HasSubstr("canceled"));
  // No creation time and no verdict known.
  EXPECT_THAT(lines[4],
              ::testing::ContainsRegex("RUNNING +- +- +not charged$"));
  EXPECT_EQ(lines[5], "not found: kl-nope, 01ARZ3NDEKTSV4RRFFQ69G5FAV");

  v1::BatchGetTasksResponse none;
  none.add_missing_ids("kl-nope");
  EXPECT_EQ(FormatTaskSummaries(none, {}, Opts()), "not found: kl-nope\n");
}

TEST(TaskSummariesTest, AnAmbiguousUpstreamIdListsEveryTask) {
  google::protobuf::RepeatedPtrField<v1::Task> tasks;
  for (const char* id :
       {"01JEX4T6Q0M3V8D2S5K7N9P1RA", "01JEX5B2W7R4C1H6Y8E3J0T5GZ"}) {
    v1::Task* task = tasks.Add();
    task->set_task_id(id);
    task->set_model("veo-3");
    task->set_state(v1::TASK_STATE_QUEUED);
  }
  const std::string out = FormatAmbiguousId("kl-dup", tasks, Opts());
  EXPECT_THAT(out, HasSubstr("upstream id kl-dup matches 2 tasks"));
  EXPECT_THAT(out, HasSubstr("01JEX4T6Q0M3V8D2S5K7N9P1RA  veo-3  QUEUED"));
  EXPECT_THAT(out, HasSubstr("01JEX5B2W7R4C1H6Y8E3J0T5GZ  veo-3  QUEUED"));
}

}  // namespace
}  // namespace tasktrail::cli
