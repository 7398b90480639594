// Unit tests of the pure lifecycle code: task ids, the lifecycle table and
// the timeline rules. No store, no server.

#include "service/rules/lifecycle.h"

#include <cstdint>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "service/rules/errors.h"
#include "service/rules/task_id.h"
#include "service/rules/time_util.h"
#include "service/rules/timeline.h"
#include "store/keys.h"
#include "tasktrail/v1/task.pb.h"
#include "tasktrail/v1/tracker.pb.h"

namespace tasktrail {
namespace {

using ::google::protobuf::TextFormat;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

// ---------------------------------------------------------------------------
// Task ids
// ---------------------------------------------------------------------------

constexpr uint64_t kSeed = 0x5eed1234;
const absl::Time kIdTime = absl::FromUnixMillis(1700000000123);

TEST(TaskIdTest, ManyIdsInOneMillisecondAreStrictlyIncreasing) {
  TaskIdGenerator generator(kSeed);
  std::string previous;
  for (int i = 0; i < 10000; ++i) {
    const std::string id = generator.Next(kIdTime);
    ASSERT_EQ(id.size(), kTaskIdLength) << id;
    ASSERT_EQ(id.size(), 26u);
    ASSERT_TRUE(LooksLikeTaskId(id)) << id;
    ASSERT_EQ(TaskIdTime(id), kIdTime) << id;
    if (i > 0) {
      ASSERT_LT(previous, id) << "at i=" << i;
    }
    previous = id;
  }
}

TEST(TaskIdTest, LaterTimesSortAfterEarlierOnes) {
  TaskIdGenerator generator(kSeed);
  const std::vector<absl::Time> times = {
      kIdTime,
      kIdTime + absl::Milliseconds(1),
      kIdTime + absl::Milliseconds(2),
      kIdTime + absl::Seconds(1),
      kIdTime + absl::Hours(24),
      kIdTime + absl::Hours(24 * 365 * 10),
  };
  std::string previous;
  for (absl::Time time : times) {
    const std::string id = generator.Next(time);
    SCOPED_TRACE(id);
    EXPECT_TRUE(LooksLikeTaskId(id));
    EXPECT_EQ(TaskIdTime(id), time);
    EXPECT_LT(previous, id);
    previous = id;
  }
  // Also across generators: a later id of another process sorts after.
  TaskIdGenerator other(kSeed + 1);
  EXPECT_LT(previous, other.Next(times.back() + absl::Milliseconds(1)));
  // Time going backwards for `other` keeps its ids above its own last one.
  EXPECT_LT(previous, other.Next(kIdTime));
}

TEST(TaskIdTest, TimeGoingBackwardsStillYieldsIncreasingIds) {
  TaskIdGenerator generator(kSeed);
  const std::vector<absl::Time> times = {
      kIdTime + absl::Seconds(10), kIdTime, kIdTime - absl::Hours(1),
      kIdTime + absl::Seconds(10), kIdTime + absl::Seconds(9)};
  std::string previous;
  for (absl::Time time : times) {
    const std::string id = generator.Next(time);
    SCOPED_TRACE(id);
    EXPECT_TRUE(LooksLikeTaskId(id));
    EXPECT_LT(previous, id);
    previous = id;
  }
}

TEST(TaskIdTest, TaskIdTimeReturnsTheMillisecondGiven) {
  struct Case {
    absl::Time now;
    absl::Time expected;
  };
  const std::vector<Case> cases = {
      {absl::FromUnixMillis(1), absl::FromUnixMillis(1)},
      {absl::FromUnixMillis(1700000000123),
       absl::FromUnixMillis(1700000000123)},
      // Sub-millisecond parts are dropped.
      {absl::FromUnixMicros(1700000000123999),
       absl::FromUnixMillis(1700000000123)},
      // The largest 48-bit millisecond (year 10889).
      {absl::FromUnixMillis((int64_t{1} << 48) - 1),
       absl::FromUnixMillis((int64_t{1} << 48) - 1)},
  };
  for (const Case& c : cases) {
    TaskIdGenerator generator(kSeed);  // fresh: no earlier id to stay above
    const std::string id = generator.Next(c.now);
    SCOPED_TRACE(id);
    ASSERT_TRUE(LooksLikeTaskId(id));
    EXPECT_EQ(TaskIdTime(id), c.expected);
  }
}

TEST(TaskIdTest, SameSeedGivesSameIds) {
  TaskIdGenerator a(kSeed);
  TaskIdGenerator b(kSeed);
  TaskIdGenerator c(kSeed + 1);
  for (int i = 0; i < 5; ++i) {
    const absl::Time t = kIdTime + absl::Milliseconds(i);
    const std::string from_a = a.Next(t);
    EXPECT_EQ(from_a, b.Next(t));
    EXPECT_NE(from_a, c.Next(t));
  }
}

TEST(TaskIdTest, LooksLikeTaskIdRejectsMalformedIds) {
  TaskIdGenerator generator(kSeed);
  const std::string good = generator.Next(kIdTime);
  ASSERT_TRUE(LooksLikeTaskId(good));
  ASSERT_TRUE(LooksLikeTaskId("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"));  // the largest
  ASSERT_TRUE(LooksLikeTaskId("00000000000000000000000000"));

  std::vector<std::string> bad = {
      "",
      good.substr(0, 25),
      good + "0",
      "8ZZZZZZZZZZZZZZZZZZZZZZZZZ",  // first digit above 7: over 128 bits
      "Z0000000000000000000000000",
  };
  // Characters outside Crockford base32 (upper case only), at the end and in
  // the middle of an otherwise good id.
  for (char c : {'i', 'l', 'o', 'u', 'I', 'L', 'O', 'U', 'a', 'z', '!', '-',
                 ' ', '\0'}) {
    std::string at_end = good;
    at_end.back() = c;
    bad.push_back(at_end);
    std::string in_middle = good;
    in_middle[13] = c;
    bad.push_back(in_middle);
  }
  for (const std::string& id : bad) {
    EXPECT_FALSE(LooksLikeTaskId(id)) << "'" << id << "'";
  }
}

// ---------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------

// The expected transition table, written out as data. kNo stands for a
// refusal (FAILED_PRECONDITION).
constexpr v1::TaskState kNo = v1::TASK_STATE_UNSPECIFIED;
constexpr v1::TaskState kSub = v1::TASK_STATE_SUBMITTED;
constexpr v1::TaskState kQue = v1::TASK_STATE_QUEUED;
constexpr v1::TaskState kRun = v1::TASK_STATE_RUNNING;
constexpr v1::TaskState kSuc = v1::TASK_STATE_SUCCEEDED;
constexpr v1::TaskState kFai = v1::TASK_STATE_FAILED;
constexpr v1::TaskState kCan = v1::TASK_STATE_CANCELED;

constexpr v1::EventType kTableEvents[] = {
    v1::EVENT_TYPE_QUEUED,     v1::EVENT_TYPE_STARTED,
    v1::EVENT_TYPE_POLLED,     v1::EVENT_TYPE_COMPLETED,
    v1::EVENT_TYPE_FAILED,     v1::EVENT_TYPE_DOWNLOADED,
    v1::EVENT_TYPE_CANCELED,   v1::EVENT_TYPE_REFUNDED,
    v1::EVENT_TYPE_NOTE_ADDED, v1::EVENT_TYPE_DUPLICATE_BLOCKED,
};

struct LifecycleRow {
  v1::TaskState current;
  const char* name;         // how error messages must name `current`
  v1::TaskState after[10];  // one per kTableEvents entry
};

// clang-format off
constexpr LifecycleRow kLifecycleTable[] = {
  //                      QUEUED STARTED POLLED COMPLETED FAILED DOWNLOADED CANCELED REFUNDED NOTE  DUPLICATE
  {kSub, "SUBMITTED", {kQue,  kRun,   kSub,  kSuc,     kFai,  kNo,       kCan,    kNo,     kSub, kSub}},
  {kQue, "QUEUED",    {kNo,   kRun,   kQue,  kSuc,     kFai,  kNo,       kCan,    kNo,     kQue, kQue}},
  {kRun, "RUNNING",   {kNo,   kNo,    kRun,  kSuc,     kFai,  kNo,       kCan,    kNo,     kRun, kRun}},
  {kSuc, "SUCCEEDED", {kNo,   kNo,    kNo,   kNo,      kNo,   kSuc,      kNo,     kNo,     kSuc, kSuc}},
  {kFai, "FAILED",    {kNo,   kNo,    kNo,   kNo,      kNo,   kNo,       kNo,     kFai,    kFai, kFai}},
  {kCan, "CANCELED",  {kNo,   kNo,    kNo,   kNo,      kNo,   kNo,       kNo,     kCan,    kCan, kCan}},
};
// clang-format on

TEST(LifecycleTest, StateAfterFollowsTheTransitionTable) {
  int refused = 0;
  for (const LifecycleRow& row : kLifecycleTable) {
    for (size_t i = 0; i < std::size(kTableEvents); ++i) {
      const v1::EventType type = kTableEvents[i];
      SCOPED_TRACE(absl::StrCat(row.name, " + ", v1::EventType_Name(type)));
      absl::StatusOr<v1::TaskState> after = StateAfter(row.current, type);
      if (row.after[i] == kNo) {
        ++refused;
        ASSERT_FALSE(after.ok()) << v1::TaskState_Name(*after);
        EXPECT_EQ(after.status().code(), absl::StatusCode::kFailedPrecondition)
            << after.status();
        // Support reads this message: it must say where the task is.
        EXPECT_THAT(after.status().message(), HasSubstr(row.name));
      } else {
        ASSERT_TRUE(after.ok()) << after.status();
        EXPECT_EQ(*after, row.after[i])
            << v1::TaskState_Name(*after) << " instead of "
            << v1::TaskState_Name(row.after[i]);
      }
    }
  }
  EXPECT_EQ(refused, 30);  // guards the table itself against typos
}

TEST(LifecycleTest, SubmittedAndUnspecifiedEventsAreInvalidArguments) {
  for (const LifecycleRow& row : kLifecycleTable) {
    for (v1::EventType type :
         {v1::EVENT_TYPE_SUBMITTED, v1::EVENT_TYPE_UNSPECIFIED}) {
      SCOPED_TRACE(absl::StrCat(row.name, " + ", v1::EventType_Name(type)));
      EXPECT_EQ(StateAfter(row.current, type).status().code(),
                absl::StatusCode::kInvalidArgument);
    }
  }
}

TEST(LifecycleTest, FinishedStatesAreExactlySucceededFailedCanceled) {
  EXPECT_FALSE(IsFinished(v1::TASK_STATE_SUBMITTED));
  EXPECT_FALSE(IsFinished(v1::TASK_STATE_QUEUED));
  EXPECT_FALSE(IsFinished(v1::TASK_STATE_RUNNING));
  EXPECT_TRUE(IsFinished(v1::TASK_STATE_SUCCEEDED));
  EXPECT_TRUE(IsFinished(v1::TASK_STATE_FAILED));
  EXPECT_TRUE(IsFinished(v1::TASK_STATE_CANCELED));
}

// ---------------------------------------------------------------------------
// Timeline
// ---------------------------------------------------------------------------

v1::RecordEventRequest ParseRequest(const std::string& text) {
  v1::RecordEventRequest request;
  EXPECT_TRUE(TextFormat::ParseFromString(text, &request)) << text;
  return request;
}

v1::TaskEvent ParseEvent(const std::string& text) {
  v1::TaskEvent event;
  EXPECT_TRUE(TextFormat::ParseFromString(text, &event)) << text;
  return event;
}

v1::Task ParseTask(const std::string& text) {
  v1::Task task;
  EXPECT_TRUE(TextFormat::ParseFromString(text, &task)) << text;
  return task;
}

// The field paths of the BadRequest attached to `status`.
std::vector<std::string> ViolatedFields(const absl::Status& status) {
  std::vector<std::string> fields;
  absl::optional<absl::Cord> payload = status.GetPayload(kBadRequestTypeUrl);
  if (!payload.has_value()) return fields;
  google::rpc::BadRequest bad_request;
  if (!bad_request.ParseFromString(std::string(*payload))) return fields;
  for (const auto& violation : bad_request.field_violations()) {
    fields.push_back(violation.field());
  }
  return fields;
}

TEST(TimelineTest, EventFromRequestCopiesEachKindOfEvent) {
  struct Case {
    std::string request;
    v1::EventType type;
  };
  const std::vector<Case> cases = {
      {R"(queued { upstream_task_id: "up-1" queue_position: 14 })",
       v1::EVENT_TYPE_QUEUED},
      {R"(queued {})", v1::EVENT_TYPE_QUEUED},
      {R"(started { progress_percent: 5 })", v1::EVENT_TYPE_STARTED},
      {R"(polled { upstream_status: "in_queue" progress_percent: 100
                   queue_position: 3 http_status: 599 eta { seconds: 60 } })",
       v1::EVENT_TYPE_POLLED},
      {R"(polled { progress_percent: 0 http_status: 100 })",
       v1::EVENT_TYPE_POLLED},
      {R"(completed { result_uris: "https://cdn/a.mp4"
                      result_uris: "https://cdn/b.mp4"
                      expire_time { seconds: 1700003600 } })",
       v1::EVENT_TYPE_COMPLETED},
      {R"(failed { http_status: 400 error_code: "image_too_large"
                   message: "reference image is 12 MB" refunded: true })",
       v1::EVENT_TYPE_FAILED},
      {R"(downloaded { uri: "https://cdn/a.mp4" client: "web" })",
       v1::EVENT_TYPE_DOWNLOADED},
      {R"(canceled { reason: "user asked" })", v1::EVENT_TYPE_CANCELED},
      {R"(refunded { units: 3 reason: "upstream outage" })",
       v1::EVENT_TYPE_REFUNDED},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.request);
    v1::RecordEventRequest request = ParseRequest(
        absl::StrCat(R"(task_id: "T1" event_id: "e1" )", c.request));
    absl::StatusOr<v1::TaskEvent> event = EventFromRequest(request);
    ASSERT_TRUE(event.ok()) << event.status();
    EXPECT_EQ(event->type(), c.type);

    // The detail lands in the TaskEvent field of the same name, unchanged.
    const auto* request_field =
        request.GetReflection()->GetOneofFieldDescriptor(
            request,
            v1::RecordEventRequest::descriptor()->FindOneofByName("event"));
    const auto* event_field = event->GetReflection()->GetOneofFieldDescriptor(
        *event, v1::TaskEvent::descriptor()->FindOneofByName("detail"));
    ASSERT_NE(request_field, nullptr);
    ASSERT_NE(event_field, nullptr);
    EXPECT_EQ(event_field->name(), request_field->name());
    EXPECT_TRUE(MessageDifferencer::Equals(
        event->GetReflection()->GetMessage(*event, event_field),
        request.GetReflection()->GetMessage(request, request_field)));
  }
}

TEST(TimelineTest, EventFromRequestRejectsBadFieldsNamingThem) {
  struct Case {
    std::string request;
    std::string field;
  };
  std::vector<Case> cases = {
      {"", "event"},
      {"polled { progress_percent: 101 }", "polled.progress_percent"},
      {"polled { progress_percent: -1 }", "polled.progress_percent"},
      {"started { progress_percent: 101 }", "started.progress_percent"},
      {"queued { queue_position: -1 }", "queued.queue_position"},
      {"polled { queue_position: -3 }", "polled.queue_position"},
      {"polled { http_status: 42 }", "polled.http_status"},
      {"polled { http_status: 600 }", "polled.http_status"},
      {"failed { http_status: 42 }", "failed.http_status"},
      {"failed { http_status: -200 }", "failed.http_status"},
      {"polled { eta { seconds: -5 } }", "polled.eta"},
      {"refunded { units: -1 }", "refunded.units"},
      {absl::StrCat("queued { upstream_task_id: \"", std::string(129, 'u'),
                    "\" }"),
       "queued.upstream_task_id"},
      {absl::StrCat("failed { message: \"", std::string(4097, 'm'), "\" }"),
       "failed.message"},
      {absl::StrCat("completed { result_uris: \"ok\" result_uris: \"",
                    std::string(2049, 'r'), "\" }"),
       "completed.result_uris[1]"},
  };
  std::string too_many_uris = "completed {";
  for (int i = 0; i < 65; ++i)
    absl::StrAppend(&too_many_uris, " result_uris: \"u\"");
  cases.push_back({too_many_uris + " }", "completed.result_uris"});

  for (const Case& c : cases) {
    SCOPED_TRACE(c.request.substr(0, 80));
    absl::StatusOr<v1::TaskEvent> event = EventFromRequest(
        ParseRequest(absl::StrCat(R"(task_id: "T1" )", c.request)));
    ASSERT_FALSE(event.ok());
    EXPECT_EQ(event.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(ViolatedFields(event.status()),
                ::testing::ElementsAre(c.field));
    EXPECT_THAT(event.status().message(), HasSubstr(c.field));
  }
}

TEST(TimelineTest, EventFromRequestRejectsANegativeSubSecondEta) {
  absl::StatusOr<v1::TaskEvent> event = EventFromRequest(ParseRequest(
      R"(task_id: "T1" polled { eta { seconds: 0 nanos: -500000000 } })"));
  ASSERT_FALSE(event.ok());
  EXPECT_EQ(event.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolatedFields(event.status()),
              ::testing::ElementsAre(::testing::StartsWith("polled.eta")));
}

constexpr char kBasePoll[] = R"(
  seq: 4 type: EVENT_TYPE_POLLED time { seconds: 1700000000 }
  polled { upstream_status: "in_queue" progress_percent: 10 queue_position: 14
           http_status: 200 eta { seconds: 300 } })";

TEST(TimelineTest, FoldsIntoOnlyIdenticalPolls) {
  const v1::TaskEvent last = ParseEvent(kBasePoll);
  struct Case {
    std::string poll;
    bool folds;
  };
  const std::vector<Case> cases = {
      // Same detail, other seq/time/event_id/record_time: a repeat.
      {R"(seq: 5 type: EVENT_TYPE_POLLED time { seconds: 1700000030 }
          event_id: "p2" record_time { seconds: 1700000031 }
          polled { upstream_status: "in_queue" progress_percent: 10
                   queue_position: 14 http_status: 200 eta { seconds: 300 } })",
       true},
      {R"(type: EVENT_TYPE_POLLED polled { upstream_status: "running"
          progress_percent: 10 queue_position: 14 http_status: 200
          eta { seconds: 300 } })",
       false},
      {R"(type: EVENT_TYPE_POLLED polled { upstream_status: "in_queue"
          progress_percent: 11 queue_position: 14 http_status: 200
          eta { seconds: 300 } })",
       false},
      {R"(type: EVENT_TYPE_POLLED polled { upstream_status: "in_queue"
          progress_percent: 10 queue_position: 13 http_status: 200
          eta { seconds: 300 } })",
       false},
      {R"(type: EVENT_TYPE_POLLED polled { upstream_status: "in_queue"
          progress_percent: 10 queue_position: 14 http_status: 503
          eta { seconds: 300 } })",
       false},
      {R"(type: EVENT_TYPE_POLLED polled { upstream_status: "in_queue"
          progress_percent: 10 queue_position: 14 http_status: 200
          eta { seconds: 299 } })",
       false},
      {R"(type: EVENT_TYPE_POLLED polled { upstream_status: "in_queue"
          progress_percent: 10 queue_position: 14 http_status: 200 })",
       false},
      // Not a poll at all.
      {R"(type: EVENT_TYPE_STARTED started { progress_percent: 10 })", false},
      {R"(type: EVENT_TYPE_QUEUED queued { queue_position: 14 })", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.poll);
    EXPECT_EQ(FoldsInto(last, ParseEvent(c.poll)), c.folds);
  }
  // A poll never folds into a non-poll, whatever its detail.
  EXPECT_FALSE(FoldsInto(
      ParseEvent(
          R"(type: EVENT_TYPE_STARTED started { progress_percent: 10 })"),
      last));
  EXPECT_FALSE(FoldsInto(ParseEvent("type: EVENT_TYPE_NOTE_ADDED"),
                         ParseEvent("type: EVENT_TYPE_NOTE_ADDED")));
}

TEST(TimelineTest, FoldCountsRepeatsAndMovesLastTime) {
  for (int64_t initial : {int64_t{1}, int64_t{0} /* unset means one poll */}) {
    SCOPED_TRACE(initial);
    v1::TaskEvent last = ParseEvent(kBasePoll);
    last.set_repeat_count(initial);
    const v1::TaskEvent original = last;

    v1::TaskEvent poll = ParseEvent(kBasePoll);
    *poll.mutable_time() = ToProtoTime(absl::FromUnixSeconds(1700000030));
    Fold(poll, &last);
    EXPECT_EQ(last.repeat_count(), 2);
    EXPECT_EQ(last.last_time().seconds(), 1700000030);

    *poll.mutable_time() = ToProtoTime(absl::FromUnixSeconds(1700000060));
    Fold(poll, &last);
    EXPECT_EQ(last.repeat_count(), 3);
    EXPECT_EQ(last.last_time().seconds(), 1700000060);

    // The entry keeps its place, first time and detail.
    EXPECT_EQ(last.seq(), original.seq());
    EXPECT_TRUE(MessageDifferencer::Equals(last.time(), original.time()));
    EXPECT_TRUE(MessageDifferencer::Equals(last.polled(), original.polled()));
  }
}

constexpr char kDigestBase[] = R"(
  task_id: "T1" event_id: "e1" occur_time { seconds: 1700000000 nanos: 5 }
  polled { upstream_status: "in_queue" progress_percent: 10 queue_position: 14
           http_status: 200 eta { seconds: 300 } })";

TEST(TimelineTest, RequestDigestIgnoresIdsAndSeesEveryBodyField) {
  const std::string base = RequestDigest(ParseRequest(kDigestBase));
  EXPECT_FALSE(base.empty());

  v1::RecordEventRequest other_ids = ParseRequest(kDigestBase);
  other_ids.set_task_id("T2");
  other_ids.set_event_id("e2");
  EXPECT_EQ(RequestDigest(other_ids), base);
  other_ids.clear_task_id();
  other_ids.clear_event_id();
  EXPECT_EQ(RequestDigest(other_ids), base);

  const std::vector<std::string> different = {
      // occur_time
      R"(occur_time { seconds: 1700000001 nanos: 5 } polled { upstream_status: "in_queue" progress_percent: 10 queue_position: 14 http_status: 200 eta { seconds: 300 } })",
      R"(occur_time { seconds: 1700000000 nanos: 6 } polled { upstream_status: "in_queue" progress_percent: 10 queue_position: 14 http_status: 200 eta { seconds: 300 } })",
      R"(polled { upstream_status: "in_queue" progress_percent: 10 queue_position: 14 http_status: 200 eta { seconds: 300 } })",
      // each detail field
      R"(occur_time { seconds: 1700000000 nanos: 5 } polled { upstream_status: "running" progress_percent: 10 queue_position: 14 http_status: 200 eta { seconds: 300 } })",
      R"(occur_time { seconds: 1700000000 nanos: 5 } polled { upstream_status: "in_queue" progress_percent: 11 queue_position: 14 http_status: 200 eta { seconds: 300 } })",
      R"(occur_time { seconds: 1700000000 nanos: 5 } polled { upstream_status: "in_queue" progress_percent: 10 queue_position: 15 http_status: 200 eta { seconds: 300 } })",
      R"(occur_time { seconds: 1700000000 nanos: 5 } polled { upstream_status: "in_queue" progress_percent: 10 queue_position: 14 http_status: 202 eta { seconds: 300 } })",
      R"(occur_time { seconds: 1700000000 nanos: 5 } polled { upstream_status: "in_queue" progress_percent: 10 queue_position: 14 http_status: 200 eta { seconds: 301 } })",
      R"(occur_time { seconds: 1700000000 nanos: 5 } polled { upstream_status: "in_queue" progress_percent: 10 queue_position: 14 http_status: 200 })",
      // another kind of event
      R"(occur_time { seconds: 1700000000 nanos: 5 } queued { queue_position: 14 })",
  };
  for (const std::string& text : different) {
    SCOPED_TRACE(text);
    v1::RecordEventRequest request = ParseRequest(text);
    request.set_task_id("T1");
    request.set_event_id("e1");
    EXPECT_NE(RequestDigest(request), base);
  }
}

TEST(TimelineTest, ApplyPollCountsItAndKeepsTheUpstreamView) {
  v1::Task task = ParseTask(R"(task_id: "T1" poll_count: 2
                               upstream_status: "submitted")");
  v1::TaskEvent poll = ParseEvent(kBasePoll);
  ApplyToSnapshot(poll, &task);
  EXPECT_EQ(task.poll_count(), 3);
  EXPECT_TRUE(MessageDifferencer::Equals(task.last_poll_time(), poll.time()));
  EXPECT_EQ(task.upstream_status(), "in_queue");
  EXPECT_EQ(task.progress_percent(), 10);
  EXPECT_EQ(task.queue_position(), 14);
  EXPECT_EQ(task.upstream_eta().seconds(), 300);

  // A later poll without an ETA removes the old one: never a stale promise.
  v1::TaskEvent later = poll;
  later.mutable_polled()->clear_eta();
  later.mutable_polled()->set_queue_position(3);
  *later.mutable_time() = ToProtoTime(absl::FromUnixSeconds(1700000100));
  ApplyToSnapshot(later, &task);
  EXPECT_EQ(task.poll_count(), 4);
  EXPECT_EQ(task.last_poll_time().seconds(), 1700000100);
  EXPECT_EQ(task.queue_position(), 3);
  EXPECT_FALSE(task.has_upstream_eta());
}

TEST(TimelineTest, ApplyCompletedRecordsResultsAndFinish) {
  v1::Task task = ParseTask(R"(task_id: "T1" progress_percent: 40
                               queue_position: 2 upstream_eta { seconds: 9 })");
  const v1::TaskEvent event = ParseEvent(R"(
      seq: 6 type: EVENT_TYPE_COMPLETED time { seconds: 1700000500 }
      completed { result_uris: "https://cdn/a.png" result_uris: "https://cdn/b.png"
                  expire_time { seconds: 1700086900 } })");
  ApplyToSnapshot(event, &task);
  EXPECT_THAT(task.result_uris(),
              ::testing::ElementsAre("https://cdn/a.png", "https://cdn/b.png"));
  EXPECT_EQ(task.result_expire_time().seconds(), 1700086900);
  EXPECT_EQ(task.progress_percent(), 100);
  EXPECT_EQ(task.finish_time().seconds(), 1700000500);
  EXPECT_EQ(task.queue_position(), 0);
  EXPECT_FALSE(task.has_upstream_eta());
}

TEST(TimelineTest, ApplyFailedWithRefundRefundsTheWholeCharge) {
  struct Case {
    bool refunded_in_event;
    bool expect_refunded;
    int64_t expect_units;
  };
  for (const Case& c : {Case{true, true, 7}, Case{false, false, 0}}) {
    SCOPED_TRACE(c.refunded_in_event);
    v1::Task task = ParseTask(R"(task_id: "T1" charge_units: 7)");
    v1::TaskEvent event = ParseEvent(R"(
        seq: 3 type: EVENT_TYPE_FAILED time { seconds: 1700000500 }
        record_time { seconds: 1700000501 }
        failed { http_status: 400 error_code: "image_too_large"
                 message: "reference image is 12 MB" })");
    event.mutable_failed()->set_refunded(c.refunded_in_event);
    ApplyToSnapshot(event, &task);
    EXPECT_EQ(task.refunded(), c.expect_refunded);
    EXPECT_EQ(task.refunded_units(), c.expect_units);
    EXPECT_EQ(task.has_refund_time(), c.expect_refunded);
    EXPECT_EQ(task.failure().http_status(), 400);
    EXPECT_EQ(task.failure().error_code(), "image_too_large");
    EXPECT_EQ(task.failure().message(), "reference image is 12 MB");
    EXPECT_EQ(task.finish_time().seconds(), 1700000500);
    EXPECT_EQ(task.charge_units(), 7);  // the charge itself is history
  }
}

TEST(TimelineTest, ApplyDownloadedCountsDownloads) {
  v1::Task task = ParseTask(R"(task_id: "T1")");
  for (int i = 1; i <= 3; ++i) {
    v1::TaskEvent event = ParseEvent(R"(
        type: EVENT_TYPE_DOWNLOADED downloaded { uri: "https://cdn/a.png" })");
    *event.mutable_time() = ToProtoTime(absl::FromUnixSeconds(1700000000 + i));
    ApplyToSnapshot(event, &task);
    EXPECT_EQ(task.download_count(), i);
    EXPECT_EQ(task.last_download_time().seconds(), 1700000000 + i);
  }
}

TEST(TimelineTest, LastUpstreamEventTimeOnlyMovesForwardOnUpstreamEvents) {
  v1::Task task = ParseTask(R"(task_id: "T1")");
  v1::TaskEvent poll = ParseEvent(kBasePoll);  // t = 1700000000
  ApplyToSnapshot(poll, &task);
  EXPECT_EQ(task.last_upstream_event_time().seconds(), 1700000000);

  // An older upstream report (late delivery) does not move it back.
  *poll.mutable_time() = ToProtoTime(absl::FromUnixSeconds(1699999000));
  ApplyToSnapshot(poll, &task);
  EXPECT_EQ(task.last_upstream_event_time().seconds(), 1700000000);

  // A download is not an upstream report.
  ApplyToSnapshot(ParseEvent(R"(type: EVENT_TYPE_DOWNLOADED
                                time { seconds: 1700009999 })"),
                  &task);
  EXPECT_EQ(task.last_upstream_event_time().seconds(), 1700000000);
}

}  // namespace
}  // namespace tasktrail
