// The pure checks of request fields: protobuf's Timestamp and Duration ranges,
// the plausible spans of an event's times, control characters in
// identifiers.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "service/rules/errors.h"
#include "service/rules/time_util.h"
#include "service/rules/timeline.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;

// The field of the single BadRequest violation `status` carries, and its
// reason ("" when there is none).
std::string ViolatedField(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kBadRequestTypeUrl);
  google::rpc::BadRequest bad_request;
  if (!payload.has_value() ||
      !bad_request.ParseFromString(std::string(*payload)) ||
      bad_request.field_violations_size() != 1) {
    return "";
  }
  return bad_request.field_violations(0).field() + " " +
         bad_request.field_violations(0).reason();
}

google::protobuf::Duration Duration(int64_t seconds, int32_t nanos) {
  google::protobuf::Duration duration;
  duration.set_seconds(seconds);
  duration.set_nanos(nanos);
  return duration;
}

google::protobuf::Timestamp Timestamp(int64_t seconds, int32_t nanos) {
  google::protobuf::Timestamp time;
  time.set_seconds(seconds);
  time.set_nanos(nanos);
  return time;
}

TEST(TimeRangesTest, DurationsFollowProtobufsRangeAndSignRule) {
  EXPECT_TRUE(IsValidDuration(Duration(0, 0)));
  EXPECT_TRUE(IsValidDuration(Duration(315576000000, 999999999)));
  EXPECT_TRUE(IsValidDuration(Duration(-315576000000, -999999999)));
  EXPECT_TRUE(IsValidDuration(Duration(0, -5)));
  EXPECT_TRUE(IsValidDuration(Duration(-3, -5)));
  EXPECT_FALSE(IsValidDuration(Duration(315576000001, 0)));
  EXPECT_FALSE(IsValidDuration(Duration(-315576000001, 0)));
  EXPECT_FALSE(
      IsValidDuration(Duration(std::numeric_limits<int64_t>::max(), 0)));
  EXPECT_FALSE(IsValidDuration(Duration(0, 1000000000)));
  EXPECT_FALSE(IsValidDuration(Duration(0, -1000000000)));
  EXPECT_FALSE(IsValidDuration(Duration(3, -5)));
  EXPECT_FALSE(IsValidDuration(Duration(-3, 5)));
}

TEST(TimeRangesTest, OutOfRangeFieldsAreNamedWithTheValidRange) {
  EXPECT_TRUE(
      CheckTimestampField("t", Timestamp(253402300799, 999999999)).ok());
  EXPECT_TRUE(CheckTimestampField("t", Timestamp(-62135596800, 0)).ok());
  const absl::Status late =
      CheckTimestampField("completed.expire_time", Timestamp(1000000000000, 0));
  EXPECT_TRUE(absl::IsInvalidArgument(late));
  EXPECT_EQ(ViolatedField(late), "completed.expire_time FIELD_OUT_OF_RANGE");
  EXPECT_THAT(late.message(), HasSubstr("9999-12-31T23:59:59.999999999Z"));
  EXPECT_FALSE(CheckTimestampField("t", Timestamp(-62135596801, 0)).ok());
  EXPECT_FALSE(CheckTimestampField("t", Timestamp(0, -1)).ok());

  EXPECT_TRUE(CheckDurationField("window", Duration(60, 0)).ok());
  const absl::Status mixed = CheckDurationField("window", Duration(120, -5));
  EXPECT_EQ(ViolatedField(mixed), "window FIELD_OUT_OF_RANGE");
}

v1::RecordEventRequest Poll(google::protobuf::Duration eta) {
  v1::RecordEventRequest request;
  request.set_task_id("t-1");
  *request.mutable_polled()->mutable_eta() = eta;
  return request;
}

TEST(EventTimesTest, AnEtaIsAtMostThirtyDaysAndNotNegative) {
  EXPECT_TRUE(EventFromRequest(Poll(Duration(0, 0))).ok());
  EXPECT_TRUE(EventFromRequest(Poll(Duration(30 * 86400, 0))).ok());
  for (const google::protobuf::Duration& eta :
       {Duration(30 * 86400, 1), Duration(-1, 0), Duration(0, -1),
        Duration(std::numeric_limits<int64_t>::max(), 0),
        Duration(5, 1000000000)}) {
    EXPECT_EQ(ViolatedField(EventFromRequest(Poll(eta)).status()),
              "polled.eta FIELD_OUT_OF_RANGE")
        << eta.ShortDebugString();
  }
}

TEST(EventTimesTest, AnExpireTimeIsInRangeAndAfterTheCompletion) {
  const absl::Time at = absl::FromUnixSeconds(1790000000);
  v1::RecordEventRequest request;
  request.set_task_id("t-1");
  *request.mutable_completed()->mutable_expire_time() =
      Timestamp(1000000000000, 0);
  EXPECT_EQ(ViolatedField(EventFromRequest(request).status()),
            "completed.expire_time FIELD_OUT_OF_RANGE");

  *request.mutable_completed()->mutable_expire_time() =
      ToProtoTime(at + absl::Hours(24));
  absl::StatusOr<v1::TaskEvent> event = EventFromRequest(request);
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_TRUE(CheckEventTimes(*event, at).ok());
  EXPECT_EQ(ViolatedField(CheckEventTimes(*event, at + absl::Hours(24))),
            "completed.expire_time FIELD_OUT_OF_RANGE");
  EXPECT_EQ(ViolatedField(CheckEventTimes(*event, at + absl::Hours(48))),
            "completed.expire_time FIELD_OUT_OF_RANGE");

  // Without an expiry there is nothing to compare.
  request.mutable_completed()->clear_expire_time();
  event = EventFromRequest(request);
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_TRUE(CheckEventTimes(*event, at).ok());
}

TEST(IdentifierTest, ControlCharactersAreFoundInC0DelAndC1) {
  EXPECT_EQ(FindControlCharacter("acct-1"), absl::string_view::npos);
  EXPECT_EQ(FindControlCharacter(""), absl::string_view::npos);
  // Printable non-ASCII characters are not control characters: U+00A0 (the
  // first after C1), U+00E9, U+4E2D, U+1F600.
  EXPECT_EQ(FindControlCharacter(
                "\xc2\xa0 caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80"),
            absl::string_view::npos);
  EXPECT_EQ(FindControlCharacter(std::string("a\0b", 3)), 1u);
  EXPECT_EQ(FindControlCharacter("ab\x1b[2J"), 2u);
  EXPECT_EQ(FindControlCharacter("tab\there"), 3u);
  EXPECT_EQ(FindControlCharacter("x\x7f"), 1u);
  EXPECT_EQ(FindControlCharacter("c1\xc2\x80"), 2u);
  EXPECT_EQ(FindControlCharacter("c1\xc2\x9b"), 2u);
  EXPECT_EQ(FindControlCharacter("\xc2"), absl::string_view::npos);
}

TEST(IdentifierTest, AControlCharacterIsNamedByCodePointNeverEchoed) {
  std::vector<v1::FieldViolation> violations;
  CheckIdentifier("account_id", "acct\x1b]0;x\x07", true, 128, &violations);
  CheckIdentifier("endpoint", "/v1\xc2\x9b", false, 128, &violations);
  CheckIdentifier("group", "", false, 128, &violations);
  CheckIdentifier("model", "veo-3", true, 128, &violations);
  ASSERT_EQ(violations.size(), 2u);
  EXPECT_EQ(violations[0].field(), "account_id");
  EXPECT_EQ(violations[0].reason(), "FIELD_CONTROL_CHARACTER");
  EXPECT_THAT(violations[0].description(), HasSubstr("U+001B at byte 4"));
  EXPECT_EQ(violations[0].description().find('\x1b'), std::string::npos);
  EXPECT_EQ(violations[1].field(), "endpoint");
  EXPECT_THAT(violations[1].description(), HasSubstr("U+009B at byte 3"));

  // One violation per field: too long wins.
  violations.clear();
  CheckIdentifier("request_id", std::string(200, '\n'), false, 128,
                  &violations);
  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0].reason(), "FIELD_TOO_LONG");
}

TEST(IdentifierTest, EventIdentifiersRefuseControlCharactersFreeTextKeepsThem) {
  v1::RecordEventRequest request;
  request.set_task_id("t-1");
  request.mutable_downloaded()->set_client("app\x1b[2J");
  EXPECT_EQ(ViolatedField(EventFromRequest(request).status()),
            "downloaded.client FIELD_CONTROL_CHARACTER");
  request.mutable_queued()->set_upstream_task_id("up\n1");
  EXPECT_EQ(ViolatedField(EventFromRequest(request).status()),
            "queued.upstream_task_id FIELD_CONTROL_CHARACTER");
  request.mutable_failed()->set_message("line one\nline two\x1b[1m");
  EXPECT_TRUE(EventFromRequest(request).ok());
  request.mutable_canceled()->set_reason("user left\n");
  EXPECT_TRUE(EventFromRequest(request).ok());
}

}  // namespace
}  // namespace tasktrail
