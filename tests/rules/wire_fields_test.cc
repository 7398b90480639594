// ForEachWireField and the queue facts read through it from a stored
// snapshot's bytes: every fact a full parse would give, and no message that
// protobuf's own parser accepts refused.
#include "service/rules/wire_fields.h"

#include <ostream>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "google/protobuf/io/coded_stream.h"
#include "gtest/gtest.h"
#include "service/rules/queue_verdict.h"
#include "service/rules/time_util.h"
#include "tasktrail/v1/task.pb.h"

namespace tasktrail {

void PrintTo(const ProtoSpan& span, std::ostream* out) {
  *out << span.seconds << "s+" << span.nanos << "ns";
}

void PrintTo(const QueueFacts& facts, std::ostream* out) {
  auto span = [](const ProtoSpan& span) {
    return absl::StrCat(span.seconds, "s+", span.nanos, "ns");
  };
  auto optional_span = [&span](const absl::optional<ProtoSpan>& optional) {
    return optional.has_value() ? span(*optional) : "none";
  };
  *out << "{task_id=" << facts.task_id << " model=" << facts.model
       << " state=" << facts.state << " create=" << span(facts.create_time)
       << " enter=" << span(facts.queue_enter_time)
       << " exit=" << span(facts.queue_exit_time)
       << " upstream=" << span(facts.last_upstream_event_time)
       << " poll=" << optional_span(facts.last_poll_time)
       << " upstream_status=" << facts.upstream_status
       << " position=" << facts.queue_position
       << " progress=" << facts.progress_percent
       << " eta=" << optional_span(facts.upstream_eta) << " failure={"
       << facts.failure_category << " " << facts.failure_message << " "
       << facts.failure_cause << " " << facts.failure_retryable << "}}";
}

namespace {

using google::protobuf::io::CodedOutputStream;

std::string Varint(uint64_t value) {
  uint8_t buffer[10];
  const uint8_t* end = CodedOutputStream::WriteVarint64ToArray(value, buffer);
  return std::string(reinterpret_cast<const char*>(buffer), end - buffer);
}

std::string Tag(int number, int wire_type) {
  return Varint((static_cast<uint64_t>(number) << 3) | wire_type);
}

std::string Delimited(int number, const std::string& payload) {
  return Tag(number, 2) + Varint(payload.size()) + payload;
}

std::string Fixed64(uint64_t value) {
  uint8_t buffer[8];
  CodedOutputStream::WriteLittleEndian64ToArray(value, buffer);
  return std::string(reinterpret_cast<const char*>(buffer), 8);
}

std::string Fixed32(uint32_t value) {
  uint8_t buffer[4];
  CodedOutputStream::WriteLittleEndian32ToArray(value, buffer);
  return std::string(reinterpret_cast<const char*>(buffer), 4);
}

// What a visit saw, comparable.
struct Seen {
  int number;
  WireType type;
  uint64_t value;
  std::string payload;
  bool operator==(const Seen& other) const {
    return number == other.number && type == other.type &&
           value == other.value && payload == other.payload;
  }
};

void PrintTo(const Seen& seen, std::ostream* out) {
  *out << "{" << seen.number << " type " << static_cast<int>(seen.type) << " "
       << seen.value << " '" << seen.payload << "'}";
}

std::vector<Seen> Walk(const std::string& message, bool* well_formed) {
  std::vector<Seen> seen;
  *well_formed = ForEachWireField(message, [&seen](const WireField& field) {
    seen.push_back(
        {field.number, field.type, field.value, std::string(field.payload)});
  });
  return seen;
}

TEST(WireFieldsTest, VisitsEachFieldInWireOrder) {
  const std::string message =
      Tag(1, 0) + Varint(150) + Tag(2, 1) + Fixed64(0x0102030405060708) +
      Delimited(3, "abc") + Tag(4, 5) + Fixed32(7) + Delimited(5, "") +
      Tag(1, 0) + Varint(3) + Tag(536870911, 0) + Varint(1);
  bool well_formed = false;
  const std::vector<Seen> seen = Walk(message, &well_formed);
  EXPECT_TRUE(well_formed);
  const std::vector<Seen> expected = {
      {1, WireType::kVarint, 150, ""},
      {2, WireType::kFixed64, 0x0102030405060708, ""},
      {3, WireType::kLengthDelimited, 0, "abc"},
      {4, WireType::kFixed32, 7, ""},
      {5, WireType::kLengthDelimited, 0, ""},
      {1, WireType::kVarint, 3, ""},
      {536870911, WireType::kVarint, 1, ""}};
  EXPECT_EQ(seen, expected);
}

TEST(WireFieldsTest, EmptyMessageHasNoFields) {
  bool well_formed = false;
  EXPECT_TRUE(Walk("", &well_formed).empty());
  EXPECT_TRUE(well_formed);
}

TEST(WireFieldsTest, GroupsAreSkippedAsProtobufKeepsThem) {
  // Group 5 holding a varint and an empty group 6, then field 2.
  const std::string message = Tag(5, 3) + Tag(1, 0) + Varint(1) + Tag(6, 3) +
                              Tag(6, 4) + Tag(5, 4) + Tag(2, 0) + Varint(9);
  bool well_formed = false;
  const std::vector<Seen> seen = Walk(message, &well_formed);
  EXPECT_TRUE(well_formed);
  EXPECT_EQ(seen, (std::vector<Seen>{{2, WireType::kVarint, 9, ""}}));
  // protobuf's parser accepts the same bytes (as unknown fields).
  v1::Task task;
  EXPECT_TRUE(task.ParseFromString(message));
}

std::string NestedGroups(int depth) {
  std::string message;
  for (int i = 0; i < depth; ++i) message += Tag(5, 3);
  for (int i = 0; i < depth; ++i) message += Tag(5, 4);
  return message;
}

TEST(WireFieldsTest, MalformedMessagesAreRefusedAsProtobufRefusesThem) {
  const struct {
    const char* name;
    std::string message;
    size_t visited_before;
  } cases[] = {
      {"truncated varint", Tag(1, 0) + "\x96", 0},
      {"truncated tag", Tag(1, 0) + Varint(1) + "\x80", 1},
      {"payload longer than the message", Tag(3, 2) + Varint(5) + "ab", 0},
      {"truncated length", Tag(3, 2) + "\x80", 0},
      {"truncated fixed64", Tag(2, 1) + "\x01\x02", 0},
      {"truncated fixed32", Tag(4, 5) + "\x01", 0},
      {"field number 0", Tag(1, 0) + Varint(1) + Tag(0, 0) + Varint(1), 1},
      {"wire type 6", Tag(1, 6), 0},
      {"wire type 7", Tag(1, 7), 0},
      {"end tag outside a group", Tag(1, 4), 0},
      {"group without its end", Tag(5, 3) + Tag(1, 0) + Varint(1), 0},
      {"group ended by another number", Tag(5, 3) + Tag(6, 4), 0},
      {"groups nested 129 deep", NestedGroups(129), 0},
      {"tag of 6 bytes", std::string("\x88\x80\x80\x80\x80\x00", 6), 0},
      {"length of 6 bytes",
       Tag(3, 2) + std::string("\x83\x80\x80\x80\x80\x00", 6) + "abc", 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    bool well_formed = true;
    EXPECT_EQ(Walk(c.message, &well_formed).size(), c.visited_before);
    EXPECT_FALSE(well_formed);
    v1::Task task;
    EXPECT_FALSE(task.ParseFromString(c.message));
  }
}

TEST(WireFieldsTest, GroupsNestedAsDeepAsProtobufAllowsAreSkipped) {
  const std::string message = NestedGroups(99) + Tag(2, 0) + Varint(4);
  v1::Task task;
  ASSERT_TRUE(task.ParseFromString(message));
  bool well_formed = false;
  EXPECT_EQ(Walk(message, &well_formed).size(), 1u);
  EXPECT_TRUE(well_formed);
  // The walker's own limit lies beyond protobuf's.
  EXPECT_FALSE(task.ParseFromString(NestedGroups(128)));
  EXPECT_EQ(Walk(NestedGroups(128), &well_formed).size(), 0u);
  EXPECT_TRUE(well_formed);
}

TEST(WireFieldsTest, Utf8IsValidExactlyWhereProtobufAcceptsAStringField) {
  const struct {
    const char* name;
    std::string text;
    bool valid;
  } cases[] = {
      {"empty", "", true},
      {"ascii", "queued at the provider", true},
      {"two bytes", "caf\xC3\xA9", true},
      {"three bytes", "\xE2\x80\xA6", true},
      {"four bytes", "\xF0\x9F\x98\x80", true},
      {"last code point", "\xF4\x8F\xBF\xBF", true},
      {"cut short", "caf\xC3", false},
      {"lone continuation byte", "\x80", false},
      {"overlong two bytes", "\xC0\xAF", false},
      {"overlong three bytes", "\xE0\x80\xAF", false},
      {"surrogate", "\xED\xA0\x80", false},
      {"past U+10FFFF", "\xF4\x90\x80\x80", false},
      {"five-byte form", "\xF8\x88\x80\x80\x80", false},
      {"byte FF", "\xFF", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(IsValidUtf8(c.text), c.valid);
    v1::Task task;
    EXPECT_EQ(task.ParseFromString(
                  Delimited(v1::Task::kUpstreamStatusFieldNumber, c.text)),
              c.valid);
  }
}

// ---------------------------------------------------------------------------
// ReadQueueFacts against QueueFactsOf(the parsed task).

// Reads the facts of `snapshot` and checks them against a full parse.
void ExpectFactsOfParse(const std::string& snapshot) {
  v1::Task parsed;
  ASSERT_TRUE(parsed.ParseFromString(snapshot));
  const absl::optional<QueueFacts> read = ReadQueueFacts(snapshot);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(*read, QueueFactsOf(parsed));
}

// Every field of a task set, each fact to a value no other fact has.
v1::Task FullTask() {
  v1::Task task;
  task.set_task_id("01TESTTASK0000000000000001");
  task.set_account_id("acct-1");
  task.set_api_key_id("key-1");
  task.set_group("default");
  task.set_model("veo-3");
  task.set_kind(v1::TASK_KIND_VIDEO);
  task.set_endpoint("/v1/videos");
  task.mutable_params()->set_prompt("a fox in the snow");
  task.set_state(v1::TASK_STATE_RUNNING);
  *task.mutable_create_time() = ToProtoTime(absl::FromUnixSeconds(1001));
  *task.mutable_update_time() = ToProtoTime(absl::FromUnixSeconds(1002));
  task.set_request_id("req-1");
  task.set_upstream_task_id("up-1");
  task.set_upstream_status("processing");
  task.set_queue_position(17);
  task.set_progress_percent(42);
  *task.mutable_last_poll_time() =
      ToProtoTime(absl::FromUnixSeconds(1003) + absl::Nanoseconds(5));
  task.set_poll_count(9);
  task.add_result_uris("https://cdn.example/r.mp4");
  *task.mutable_result_expire_time() = ToProtoTime(absl::FromUnixSeconds(1004));
  task.set_download_count(1);
  *task.mutable_last_download_time() = ToProtoTime(absl::FromUnixSeconds(1005));
  v1::Failure* failure = task.mutable_failure();
  failure->set_category(v1::FAILURE_CATEGORY_UPSTREAM_UNAVAILABLE);
  failure->set_origin(v1::FAILURE_ORIGIN_PROVIDER);
  failure->set_http_status(503);
  failure->set_error_code("overloaded");
  failure->set_message("upstream busy");
  failure->set_cause("the provider was busy");
  failure->set_retryable(true);
  task.set_charge_units(10);
  task.set_refunded(true);
  *task.mutable_refund_time() = ToProtoTime(absl::FromUnixSeconds(1006));
  task.set_refunded_units(10);
  task.set_duplicate_count(2);
  task.set_catalog_version("7");
  task.add_notes()->set_text("looked at it");
  task.set_last_event_seq(12);
  *task.mutable_last_upstream_event_time() =
      ToProtoTime(absl::FromUnixSeconds(1007));
  *task.mutable_queue_enter_time() = ToProtoTime(absl::FromUnixSeconds(1008));
  *task.mutable_queue_exit_time() = ToProtoTime(absl::FromUnixSeconds(1009));
  *task.mutable_finish_time() = ToProtoTime(absl::FromUnixSeconds(1010));
  *task.mutable_last_duplicate_time() =
      ToProtoTime(absl::FromUnixSeconds(1011));
  *task.mutable_upstream_eta() = ToProtoDuration(absl::Seconds(95));
  return task;
}

TEST(QueueFactsTest, ReadFromTheBytesTheyAreThoseOfTheParsedTask) {
  const v1::Task task = FullTask();
  const std::string snapshot = task.SerializeAsString();
  ExpectFactsOfParse(snapshot);
  // And they are the task's own (QueueFactsOf itself is not blind).
  const absl::optional<QueueFacts> read = ReadQueueFacts(snapshot);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->task_id, "01TESTTASK0000000000000001");
  EXPECT_EQ(read->state, v1::TASK_STATE_RUNNING);
  EXPECT_EQ(read->queue_exit_time, (ProtoSpan{1009, 0}));
  EXPECT_EQ(read->last_poll_time, (ProtoSpan{1003, 5}));
  EXPECT_EQ(read->upstream_eta, (ProtoSpan{95, 0}));
  EXPECT_EQ(read->failure_cause, "the provider was busy");
  EXPECT_TRUE(read->failure_retryable);
}

TEST(QueueFactsTest, EachFactAloneIsReadFromItsOwnField) {
  const v1::Task full = FullTask();
  const v1::Failure& failure = full.failure();
  // One task per fact, with only the field behind that fact set: a fact read
  // from another field's number would differ from the parse.
  const std::vector<std::function<void(v1::Task*)>> setters = {
      [&](v1::Task* t) { t->set_task_id(full.task_id()); },
      [&](v1::Task* t) { t->set_model(full.model()); },
      [&](v1::Task* t) { t->set_state(full.state()); },
      [&](v1::Task* t) { *t->mutable_create_time() = full.create_time(); },
      [&](v1::Task* t) {
        *t->mutable_queue_enter_time() = full.queue_enter_time();
      },
      [&](v1::Task* t) {
        *t->mutable_queue_exit_time() = full.queue_exit_time();
      },
      [&](v1::Task* t) {
        *t->mutable_last_upstream_event_time() =
            full.last_upstream_event_time();
      },
      [&](v1::Task* t) {
        *t->mutable_last_poll_time() = full.last_poll_time();
      },
      [&](v1::Task* t) { t->mutable_last_poll_time(); },  // set, at the epoch
      [&](v1::Task* t) { t->set_upstream_status(full.upstream_status()); },
      [&](v1::Task* t) { t->set_queue_position(full.queue_position()); },
      [&](v1::Task* t) { t->set_queue_position(-3); },
      [&](v1::Task* t) { t->set_progress_percent(full.progress_percent()); },
      [&](v1::Task* t) { *t->mutable_upstream_eta() = full.upstream_eta(); },
      [&](v1::Task* t) { t->mutable_upstream_eta(); },  // set, zero
      [&](v1::Task* t) {
        t->mutable_failure()->set_category(failure.category());
      },
      [&](v1::Task* t) {
        t->mutable_failure()->set_message(failure.message());
      },
      [&](v1::Task* t) { t->mutable_failure()->set_cause(failure.cause()); },
      [&](v1::Task* t) {
        t->mutable_failure()->set_retryable(failure.retryable());
      },
  };
  ExpectFactsOfParse("");
  for (size_t i = 0; i < setters.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("fact setter ", i));
    v1::Task task;
    setters[i](&task);
    ExpectFactsOfParse(task.SerializeAsString());
  }
}

TEST(QueueFactsTest, FieldsRepeatedOnTheWireResolveAsProtobufResolvesThem) {
  // Concatenated messages parse as their merge: the later scalar wins,
  // submessages merge field by field.
  v1::Task first;
  first.set_state(v1::TASK_STATE_QUEUED);
  first.set_model("veo-3");
  first.mutable_create_time()->set_seconds(100);
  first.mutable_failure()->set_cause("first cause");
  first.mutable_failure()->set_retryable(true);
  first.mutable_upstream_eta()->set_seconds(30);
  v1::Task second;
  second.set_state(v1::TASK_STATE_RUNNING);
  second.mutable_create_time()->set_nanos(5);
  second.mutable_failure()->set_message("second message");
  second.mutable_upstream_eta()->set_nanos(7);
  ExpectFactsOfParse(first.SerializeAsString() + second.SerializeAsString());
}

TEST(QueueFactsTest, KnownFieldWithAnotherWireTypeIsIgnoredAsProtobufDoes) {
  // protobuf keeps such a field as an unknown field, at every level.
  ExpectFactsOfParse(Delimited(v1::Task::kStateFieldNumber, "x") +
                     Tag(v1::Task::kModelFieldNumber, 0) + Varint(1) +
                     Tag(v1::Task::kCreateTimeFieldNumber, 0) + Varint(2));
  ExpectFactsOfParse(Delimited(v1::Task::kQueueEnterTimeFieldNumber,
                               Delimited(1, "x") + Tag(2, 0) + Varint(5)));
  ExpectFactsOfParse(
      Delimited(v1::Task::kFailureFieldNumber,
                Tag(v1::Failure::kCauseFieldNumber, 0) + Varint(1) +
                    Delimited(v1::Failure::kCategoryFieldNumber, "x") +
                    Tag(v1::Failure::kRetryableFieldNumber, 0) + Varint(1)));
}

TEST(QueueFactsTest, TimesAndEtaAreEchoedAsStored) {
  // Not normalized, and an ETA past what absl::Duration holds in
  // nanoseconds: the facts keep both as they are on the wire.
  v1::Task task;
  task.mutable_last_poll_time()->set_seconds(1);
  task.mutable_last_poll_time()->set_nanos(-1000000000);
  task.mutable_upstream_eta()->set_seconds(1000000000000);
  const std::string snapshot = task.SerializeAsString();
  ExpectFactsOfParse(snapshot);
  const absl::optional<QueueFacts> read = ReadQueueFacts(snapshot);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->last_poll_time, (ProtoSpan{1, -1000000000}));
  EXPECT_EQ(read->upstream_eta, (ProtoSpan{1000000000000, 0}));
}

TEST(QueueFactsTest, StringsReadMustBeUtf8OthersAreNotLookedInto) {
  // A string the facts hold (and the answer would copy) that is not UTF-8:
  // no facts, as a full parse would refuse the snapshot.
  const std::string bad_model =
      Delimited(v1::Task::kModelFieldNumber, "veo\xFF");
  EXPECT_FALSE(ReadQueueFacts(bad_model).has_value());
  const std::string bad_cause =
      Delimited(v1::Task::kFailureFieldNumber,
                Delimited(v1::Failure::kCauseFieldNumber, "\xC3"));
  EXPECT_FALSE(ReadQueueFacts(bad_cause).has_value());
  // Fields the facts do not read are not looked into: a full parse refuses
  // these snapshots, the facts are still read.
  const std::string bad_account =
      Delimited(v1::Task::kModelFieldNumber, "veo-3") +
      Delimited(v1::Task::kAccountIdFieldNumber, "\xFF");
  const std::string cut_params =
      Delimited(v1::Task::kModelFieldNumber, "veo-3") +
      Delimited(v1::Task::kParamsFieldNumber, Tag(1, 2) + Varint(9) + "ab");
  for (const std::string& snapshot : {bad_account, cut_params}) {
    v1::Task task;
    EXPECT_FALSE(task.ParseFromString(snapshot));
    const absl::optional<QueueFacts> read = ReadQueueFacts(snapshot);
    ASSERT_TRUE(read.has_value());
    EXPECT_EQ(read->model, "veo-3");
  }
}

TEST(QueueFactsTest, SnapshotThatIsNotWellFormedHasNoFacts) {
  const std::string snapshot = FullTask().SerializeAsString();
  EXPECT_FALSE(ReadQueueFacts(snapshot.substr(0, snapshot.size() - 1)));
  // A failure whose own fields are cut short, in an otherwise whole task.
  const std::string cut_failure =
      Delimited(v1::Task::kTaskIdFieldNumber, "01TESTTASK0000000000000001") +
      Delimited(v1::Task::kFailureFieldNumber,
                Tag(v1::Failure::kCauseFieldNumber, 2) + Varint(9) + "short");
  v1::Task task;
  EXPECT_FALSE(task.ParseFromString(cut_failure));
  EXPECT_FALSE(ReadQueueFacts(cut_failure));
  const std::string cut_time =
      Delimited(v1::Task::kQueueEnterTimeFieldNumber, Tag(1, 0) + "\xff");
  EXPECT_FALSE(task.ParseFromString(cut_time));
  EXPECT_FALSE(ReadQueueFacts(cut_time));
}

}  // namespace
}  // namespace tasktrail
