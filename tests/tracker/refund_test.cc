// Refund once: a charge is refunded at most once (a second refund names the
// first), after a failure or a cancel, never above the charge, and
// concurrent refunds record exactly one. Through the Tracker on a real
// RocksDB store with a manual clock.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/rules/time_util.h"
#include "service/tracker/tracker.h"
#include "tests/tracker/lifecycle_fixture.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;

class RefundTest : public LifecycleFixture {
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

}  // namespace
}  // namespace tasktrail
