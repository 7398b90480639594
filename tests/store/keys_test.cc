// Unit tests of the key encoding (store/keys.h): round trips, byte order and
// the prefixes that keep owners apart. No store is opened.

#include "store/keys.h"

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
#include "service/rules/lifecycle.h"
#include "service/rules/task_id.h"
#include "service/rules/time_util.h"
#include "service/rules/timeline.h"
#include "store/records.h"
#include "tasktrail/v1/task.pb.h"
#include "tasktrail/v1/tracker.pb.h"

namespace tasktrail {
namespace {

using ::google::protobuf::TextFormat;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

const std::vector<std::string>& SampleTaskIds() {
  static const auto* const kIds = new std::vector<std::string>{
      "A",
      "AB",
      "ABC",
      "01HZX3K9Q7RM2W8C4T6V5N1PJD",
      "task/with:punctuation",
      std::string("nul\0inside", 10),
      std::string("\xff\xfe high bytes", 13),
      std::string(300, 'x'),  // longer than 255: needs both length bytes
  };
  return *kIds;
}

const std::vector<int64_t>& SampleSeqs() {
  static const auto* const kSeqs = new std::vector<int64_t>{
      0, 1, 255, 256, int64_t{1} << 40, std::numeric_limits<int64_t>::max()};
  return *kSeqs;
}

TEST(KeysTest, EventKeyRoundTrips) {
  for (const std::string& task_id : SampleTaskIds()) {
    for (int64_t seq : SampleSeqs()) {
      SCOPED_TRACE(absl::StrCat("task_id size ", task_id.size(), " seq ", seq));
      const std::string key = store::EventKey(task_id, seq);
      EXPECT_TRUE(absl::StartsWith(key, store::EventPrefix(task_id)));
      absl::optional<store::ParsedEventKey> parsed = store::ParseEventKey(key);
      ASSERT_TRUE(parsed.has_value());
      EXPECT_EQ(parsed->task_id, task_id);
      EXPECT_EQ(parsed->seq, seq);
    }
  }
}

TEST(KeysTest, ParseEventKeyRejectsMalformedKeys) {
  const std::string good = store::EventKey("ABC", 7);
  const std::vector<std::string> bad = {
      "",
      std::string(1, '\0'),
      good.substr(0, good.size() - 1),  // truncated seq
      good + "x",                       // trailing garbage
      store::EventPrefix("ABC"),        // no seq at all
  };
  for (const std::string& key : bad) {
    SCOPED_TRACE(absl::StrCat("key size ", key.size()));
    EXPECT_FALSE(store::ParseEventKey(key).has_value());
  }
}

TEST(KeysTest, EventKeyByteOrderIsSeqOrder) {
  for (const std::string& task_id : SampleTaskIds()) {
    const std::vector<int64_t>& seqs = SampleSeqs();  // ascending
    for (size_t i = 0; i < seqs.size(); ++i) {
      for (size_t j = i + 1; j < seqs.size(); ++j) {
        SCOPED_TRACE(absl::StrCat(seqs[i], " < ", seqs[j]));
        EXPECT_LT(store::EventKey(task_id, seqs[i]),
                  store::EventKey(task_id, seqs[j]));
      }
    }
  }
}

TEST(KeysTest, EventsOfOneTaskNeverShareAnotherTasksPrefix) {
  // "AB" is a string prefix of "ABC"; the length prefix must keep their
  // timelines apart in both directions, for every seq.
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"AB", "ABC"}, {"A", "AB"}, {"", "A"}, {"T0001", "T00010"}};
  for (const auto& [shorter, longer] : pairs) {
    for (int64_t seq : SampleSeqs()) {
      SCOPED_TRACE(absl::StrCat(shorter, " vs ", longer, " seq ", seq));
      EXPECT_FALSE(absl::StartsWith(store::EventKey(shorter, seq),
                                    store::EventPrefix(longer)));
      EXPECT_FALSE(absl::StartsWith(store::EventKey(longer, seq),
                                    store::EventPrefix(shorter)));
    }
  }
}

TEST(KeysTest, IndexKeysSortByTaskIdWithinAPrefix) {
  const std::vector<std::string> sorted_ids = {"T0001", "T0002", "T0010",
                                               "T0100", "U0000"};
  for (store::IndexKind kind :
       {store::IndexKind::kAccount, store::IndexKind::kState,
        store::IndexKind::kModel, store::IndexKind::kUpstream,
        store::IndexKind::kRequest, store::IndexKind::kUnfinished,
        store::IndexKind::kAccountState, store::IndexKind::kModelState}) {
    const std::string prefix = store::IndexPrefix(kind, "acct-1");
    for (size_t i = 0; i < sorted_ids.size(); ++i) {
      const std::string key = store::IndexKey(kind, "acct-1", sorted_ids[i]);
      EXPECT_TRUE(absl::StartsWith(key, prefix));
      if (i + 1 < sorted_ids.size()) {
        EXPECT_LT(key, store::IndexKey(kind, "acct-1", sorted_ids[i + 1]));
      }
    }
  }
}

TEST(KeysTest, PairIndexValuesOfDifferentFirstPartsNeverSharePrefixes) {
  // "acct" in state 4 and "acct\x04" (any state) stay apart.
  const std::string a = store::PairIndexValue("acct", "\x04");
  const std::string b = store::PairIndexValue(std::string("acct\x04"), "\x04");
  EXPECT_NE(a, b);
  EXPECT_FALSE(absl::StartsWith(b, a));
  EXPECT_FALSE(absl::StartsWith(a, b));
  EXPECT_FALSE(store::TaskIdFromIndexKey(
      store::IndexPrefix(store::IndexKind::kAccountState, a),
      store::IndexKey(store::IndexKind::kAccountState, b, "T0001")));
  EXPECT_EQ(store::PairIndexValue("m", "\x02"),
            std::string("\x00\x01m\x02", 4));
}

TEST(KeysTest, TaskIdFromIndexKeyRoundTripsAndRejectsForeignPrefixes) {
  using store::IndexKind;
  const std::string prefix = store::IndexPrefix(IndexKind::kAccount, "acct");
  for (const std::string& task_id : SampleTaskIds()) {
    SCOPED_TRACE(absl::StrCat("task_id size ", task_id.size()));
    const std::string key =
        store::IndexKey(IndexKind::kAccount, "acct", task_id);
    absl::optional<std::string> parsed = store::TaskIdFromIndexKey(prefix, key);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, task_id);

    // Same value under another index, another value under the same index.
    EXPECT_FALSE(store::TaskIdFromIndexKey(
                     store::IndexPrefix(IndexKind::kModel, "acct"), key)
                     .has_value());
    EXPECT_FALSE(store::TaskIdFromIndexKey(
                     store::IndexPrefix(IndexKind::kAccount, "acct2"), key)
                     .has_value());
    EXPECT_FALSE(store::TaskIdFromIndexKey(
                     store::IndexPrefix(IndexKind::kAccount, "acc"), key)
                     .has_value());
  }
  // A key that is only the prefix names no task.
  EXPECT_FALSE(store::TaskIdFromIndexKey(prefix, prefix).has_value());
}

TEST(KeysTest, IndexPrefixOfAValueIsNotAPrefixOfALongerValue) {
  using store::IndexKind;
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"a", "ab"}, {"", "a"}, {"acct-1", "acct-10"}};
  for (const auto& [shorter, longer] : pairs) {
    SCOPED_TRACE(absl::StrCat(shorter, " vs ", longer));
    const std::string short_prefix =
        store::IndexPrefix(IndexKind::kAccount, shorter);
    const std::string long_prefix =
        store::IndexPrefix(IndexKind::kAccount, longer);
    EXPECT_FALSE(absl::StartsWith(long_prefix, short_prefix));
    // So a task of account "ab" is never listed under account "a", even when
    // its task id starts with the missing letter.
    EXPECT_FALSE(
        store::TaskIdFromIndexKey(
            short_prefix, store::IndexKey(IndexKind::kAccount, longer, "T1"))
            .has_value());
    EXPECT_FALSE(
        store::TaskIdFromIndexKey(
            long_prefix, store::IndexKey(IndexKind::kAccount, shorter,
                                         longer.substr(shorter.size()) + "T1"))
            .has_value());
  }
}

TEST(KeysTest, EventIdAndDedupKeysDoNotCollideAcrossOwners) {
  // (task "AB", event "Cx") and (task "ABC", event "x") concatenate to the
  // same bytes; a replayed event id must never be found on the other task.
  // Likewise a dedup key of one scope must never match in another scope.
  const std::vector<std::pair<std::string, std::string>> owners = {
      {"AB", "Cx"}, {"ABC", "x"}, {"A", "BCx"}, {"ABCx", ""}};
  for (size_t i = 0; i < owners.size(); ++i) {
    for (size_t j = i + 1; j < owners.size(); ++j) {
      SCOPED_TRACE(absl::StrCat(i, " vs ", j));
      EXPECT_NE(store::EventIdKey(owners[i].first, owners[i].second),
                store::EventIdKey(owners[j].first, owners[j].second));
      EXPECT_NE(store::DedupKey(owners[i].first, owners[i].second),
                store::DedupKey(owners[j].first, owners[j].second));
    }
  }
  // All keys of a scope share DedupKey(scope, ""); a longer scope does not.
  const std::string scope_prefix = store::DedupKey("acct-1", "");
  EXPECT_TRUE(absl::StartsWith(store::DedupKey("acct-1", "fp"), scope_prefix));
  EXPECT_FALSE(
      absl::StartsWith(store::DedupKey("acct-10", "fp"), scope_prefix));
}

TEST(KeysTest, AuditKeyRoundTripsAndRejectsMalformedKeys) {
  using store::AuditKey;
  using store::EventKey;
  using store::ParseAuditKey;
  const std::string key = AuditKey("T0001", 1700000000123456, 42);
  absl::optional<store::ParsedAuditKey> parsed = ParseAuditKey(key);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->task_id, "T0001");
  EXPECT_EQ(parsed->unix_micros, 1700000000123456);
  EXPECT_EQ(parsed->nonce, 42u);
  EXPECT_FALSE(ParseAuditKey("").has_value());
  EXPECT_FALSE(ParseAuditKey(key.substr(0, key.size() - 1)).has_value());
  EXPECT_FALSE(ParseAuditKey(EventKey("T0001", 1)).has_value());
}

TEST(KeysTest, BigEndian64RoundTripsAndPreservesOrder) {
  // Ascending.
  const std::vector<uint64_t> values = {0,
                                        1,
                                        255,
                                        256,
                                        uint64_t{1} << 40,
                                        0x0102030405060708ULL,
                                        uint64_t{1} << 63,
                                        std::numeric_limits<uint64_t>::max()};
  std::string previous;
  for (uint64_t value : values) {
    SCOPED_TRACE(value);
    std::string encoded = "pre";
    store::AppendBigEndian64(value, &encoded);
    ASSERT_EQ(encoded.size(), 3u + 8u);
    EXPECT_EQ(encoded.substr(0, 3), "pre");  // appends, does not overwrite
    const std::string bytes = encoded.substr(3);
    EXPECT_EQ(store::ReadBigEndian64(bytes), value);
    if (!previous.empty()) {
      EXPECT_LT(previous, bytes);
    }
    previous = bytes;
  }
  std::string bytes;
  store::AppendBigEndian64(0x0102030405060708ULL, &bytes);
  EXPECT_EQ(bytes, std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
}

// The named dedup scopes, counter names and sample keys are the on-disk
// strings written before they had names: a store written then reads the same.
TEST(KeysTest, NamedDedupScopesKeepTheirOnDiskBytes) {
  EXPECT_EQ(store::RequestIdDedupKey("acct-1", "req-9"),
            store::DedupKey("r:acct-1", "req-9"));
  EXPECT_EQ(store::ContentDedupKey("acct-1", "fp"),
            store::DedupKey("c:acct-1", "fp"));
  EXPECT_NE(store::RequestIdDedupKey("acct-1", "x"),
            store::ContentDedupKey("acct-1", "x"));
}

TEST(KeysTest, CounterNamesKeepTheirOnDiskStringsAndParseBack) {
  using store::CounterKind;
  const struct {
    CounterKind kind;
    const char* detail;
    const char* name;
  } kCases[] = {
      {CounterKind::kEnteredState, "RUNNING", "state:RUNNING"},
      {CounterKind::kFailureCategory, "TIMEOUT", "failure_category:TIMEOUT"},
      {CounterKind::kFailureOrigin, "PROVIDER", "failure_origin:PROVIDER"},
      {CounterKind::kRejectedReason, "UNKNOWN_MODEL", "rejected:UNKNOWN_MODEL"},
      {CounterKind::kRejected, "", "rejected"},
      {CounterKind::kDuplicatesBlocked, "", "duplicates_blocked"},
      {CounterKind::kUnclassifiedMessage, "job <id>: sampler failed",
       "unclassified:job <id>: sampler failed"},
  };
  for (const auto& c : kCases) {
    EXPECT_EQ(store::CounterName(c.kind, c.detail), c.name);
    absl::optional<store::ParsedCounterName> parsed =
        store::ParseCounterName(c.name);
    ASSERT_TRUE(parsed.has_value()) << c.name;
    EXPECT_EQ(parsed->kind, c.kind) << c.name;
    EXPECT_EQ(parsed->detail, c.detail) << c.name;
  }
  EXPECT_FALSE(store::ParseCounterName("submits").has_value());
  EXPECT_FALSE(store::ParseCounterName("").has_value());
}

TEST(KeysTest, QueueSampleKeysParseBack) {
  const std::string key = store::QueueSampleKey("veo-3", 1234567, "T0001");
  absl::optional<store::ParsedQueueSampleKey> parsed =
      store::ParseQueueSampleKey(key);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->model, "veo-3");
  EXPECT_EQ(parsed->exit_unix_micros, 1234567);
  EXPECT_EQ(parsed->task_id, "T0001");
  EXPECT_FALSE(store::ParseQueueSampleKey(store::QueueSamplePrefix("veo-3"))
                   .has_value());
  EXPECT_FALSE(
      store::ParseQueueSampleKey(store::CounterKey(1, "veo-3", "rejected"))
          .has_value());
}

}  // namespace
}  // namespace tasktrail
