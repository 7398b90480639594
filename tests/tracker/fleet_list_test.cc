// ListTasks at fleet scale: unfinished and stale tasks, creation time
// ranges, exact account+state and model+state indexes, queue statuses, and
// page tokens bound to their filters. On a real store with a manual clock.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "service/rules/time_util.h"
#include "tests/tracker/lifecycle_fixture.h"

namespace tasktrail {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class FleetListTest : public LifecycleFixture {
 protected:
  // Every page of `request`, the ids in order; also sums scanned_count.
  std::vector<std::string> ListAll(v1::ListTasksRequest request,
                                   int64_t* scanned = nullptr) {
    std::vector<std::string> ids;
    for (int page = 0; page < 1000; ++page) {
      absl::StatusOr<v1::ListTasksResponse> response =
          tracker_->ListTasks(request);
      EXPECT_TRUE(response.ok()) << response.status();
      if (!response.ok()) break;
      for (const v1::Task& task : response->tasks()) {
        ids.push_back(task.task_id());
      }
      if (scanned != nullptr) *scanned += response->scanned_count();
      if (response->next_page_token().empty()) break;
      request.set_page_token(response->next_page_token());
    }
    return ids;
  }

  // The field the INVALID_ARGUMENT of `request` names (its message).
  std::string RefusalOf(const v1::ListTasksRequest& request) {
    absl::StatusOr<v1::ListTasksResponse> response =
        tracker_->ListTasks(request);
    EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument)
        << response.status();
    return std::string(response.status().message());
  }
};

TEST_F(FleetListTest, StaleForCountsFromTheLastUpstreamEventOrTheCreation) {
  const absl::Time t0 = clock_.Now();
  const std::string submitted = Submit();  // waits since t0
  clock_.Advance(absl::Minutes(1));
  const std::string queued = Submit();
  MustRecord(Queued(), queued);  // last upstream event at t0 + 1m
  clock_.Advance(absl::Minutes(1));
  const std::string running = Submit();
  MustRecord(Queued(), running);
  MustRecord(Started(), running);  // last upstream event at t0 + 2m
  const std::string finished = Submit();
  MustRecord(Failed(500, "", "boom"), finished);
  clock_.Set(t0 + absl::Minutes(10));

  auto stale = [&](absl::Duration stale_for) {
    v1::ListTasksRequest request;
    *request.mutable_stale_for() = ToProtoDuration(stale_for);
    request.set_oldest_first(true);
    return ListAll(request);
  };
  EXPECT_THAT(stale(absl::Minutes(10) + absl::Nanoseconds(1)), IsEmpty());
  EXPECT_THAT(stale(absl::Minutes(10)), ElementsAre(submitted));
  EXPECT_THAT(stale(absl::Minutes(9)), ElementsAre(submitted, queued));
  EXPECT_THAT(stale(absl::Minutes(8)), ElementsAre(submitted, queued, running));
  EXPECT_THAT(stale(absl::ZeroDuration()),
              ElementsAre(submitted, queued, running));

  v1::ListTasksRequest unfinished;
  unfinished.set_unfinished(true);
  EXPECT_THAT(ListAll(unfinished), ElementsAre(running, queued, submitted));
  unfinished.set_state(v1::TASK_STATE_FAILED);
  EXPECT_THAT(ListAll(unfinished), IsEmpty());
  unfinished.set_state(v1::TASK_STATE_QUEUED);
  EXPECT_THAT(ListAll(unfinished), ElementsAre(queued));

  // A poll is an upstream event: the queued task is no longer stale.
  MustRecord(Polled(10), queued);
  EXPECT_THAT(stale(absl::Minutes(9)), ElementsAre(submitted));
}

TEST_F(FleetListTest, QueueStatusesAreGetQueueStatusAnswers) {
  const std::string submitted = Submit();
  const std::string queued = Submit();
  MustRecord(Queued(), queued);
  clock_.Advance(absl::Minutes(30));  // past the stale limit
  v1::ListTasksRequest request;
  request.set_unfinished(true);
  request.set_include_queue_status(true);
  absl::StatusOr<v1::ListTasksResponse> listed = tracker_->ListTasks(request);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->tasks_size(), 2);
  ASSERT_EQ(listed->queue_statuses_size(), 2);
  for (int i = 0; i < 2; ++i) {
    v1::GetQueueStatusRequest get;
    get.set_task_id(listed->tasks(i).task_id());
    v1::QueueStatus expected;
    ASSERT_TRUE(tracker_->GetQueueStatus(get, &expected).ok());
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
        listed->queue_statuses(i), expected))
        << listed->queue_statuses(i).DebugString() << expected.DebugString();
  }
  EXPECT_EQ(listed->queue_statuses(0).verdict(),
            v1::QUEUE_VERDICT_POLLING_STALLED);
  EXPECT_EQ(listed->queue_statuses(1).verdict(),
            v1::QUEUE_VERDICT_WAITING_FOR_UPSTREAM);
  request.set_include_queue_status(false);
  listed = tracker_->ListTasks(request);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->queue_statuses_size(), 0);
}

TEST_F(FleetListTest, CreateTimeRangeIsHalfOpenAndExact) {
  const absl::Time t0 = clock_.Now();
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    clock_.Set(t0 + absl::Seconds(i));
    ids.push_back(Submit());
  }
  // The clock steps back: this task's id sorts after the others, its
  // create_time does not.
  clock_.Set(t0 + absl::Seconds(5) + absl::Milliseconds(500));
  const std::string stepped_back = Submit();
  ASSERT_GT(stepped_back, ids.back());

  v1::ListTasksRequest request;
  *request.mutable_create_time_after() = ToProtoTime(t0 + absl::Seconds(3));
  *request.mutable_create_time_before() = ToProtoTime(t0 + absl::Seconds(7));
  EXPECT_THAT(ListAll(request),
              ElementsAre(stepped_back, ids[6], ids[5], ids[4], ids[3]));
  request.set_oldest_first(true);
  EXPECT_THAT(ListAll(request),
              ElementsAre(ids[3], ids[4], ids[5], ids[6], stepped_back));
  request.clear_create_time_before();
  request.set_oldest_first(false);
  request.set_page_size(2);
  EXPECT_THAT(ListAll(request),
              ElementsAre(stepped_back, ids[9], ids[8], ids[7], ids[6], ids[5],
                          ids[4], ids[3]));

  v1::ListTasksRequest before_only;
  *before_only.mutable_create_time_before() =
      ToProtoTime(t0 + absl::Seconds(1));
  EXPECT_THAT(ListAll(before_only), ElementsAre(ids[0]));
}

TEST_F(FleetListTest, MalformedFiltersAreRefusedNamingTheField) {
  v1::ListTasksRequest request;
  request.mutable_stale_for()->set_seconds(-1);
  EXPECT_THAT(RefusalOf(request), HasSubstr("stale_for"));
  request.Clear();
  request.mutable_stale_for()->set_nanos(-5);
  request.mutable_stale_for()->set_seconds(1);
  EXPECT_THAT(RefusalOf(request), HasSubstr("stale_for"));
  request.Clear();
  request.mutable_create_time_after()->set_nanos(2000000000);
  EXPECT_THAT(RefusalOf(request), HasSubstr("create_time_after"));
  request.Clear();
  *request.mutable_create_time_after() = ToProtoTime(absl::FromUnixSeconds(10));
  *request.mutable_create_time_before() =
      ToProtoTime(absl::FromUnixSeconds(10));
  EXPECT_THAT(RefusalOf(request), HasSubstr("create_time_before"));
}

TEST_F(FleetListTest, PageTokensAreBoundToTheirFilters) {
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(absl::Milliseconds(5));
    Submit("veo-3", 10, "acct-a");
  }
  v1::ListTasksRequest request;
  request.set_account_id("acct-a");
  request.set_page_size(1);
  absl::StatusOr<v1::ListTasksResponse> first = tracker_->ListTasks(request);
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(first->next_page_token().empty());

  // The same filters with another page size go on.
  v1::ListTasksRequest next = request;
  next.set_page_token(first->next_page_token());
  next.set_page_size(5);
  absl::StatusOr<v1::ListTasksResponse> second = tracker_->ListTasks(next);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->tasks_size(), 2);

  for (auto change : std::vector<void (*)(v1::ListTasksRequest*)>{
           [](v1::ListTasksRequest* r) { r->set_model("veo-3"); },
           [](v1::ListTasksRequest* r) { r->set_account_id("acct-b"); },
           [](v1::ListTasksRequest* r) { r->set_oldest_first(true); },
           [](v1::ListTasksRequest* r) { r->set_unfinished(true); },
           [](v1::ListTasksRequest* r) { r->set_include_queue_status(true); },
           [](v1::ListTasksRequest* r) {
             r->mutable_create_time_after()->set_seconds(1);
           }}) {
    v1::ListTasksRequest other = next;
    change(&other);
    const std::string refusal = RefusalOf(other);
    EXPECT_THAT(refusal, HasSubstr("page_token"));
    EXPECT_THAT(refusal, HasSubstr("other filters"));
  }
  v1::ListTasksRequest old_format = request;
  old_format.set_page_token("djE6MDFIWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFg=");
  EXPECT_THAT(RefusalOf(old_format), HasSubstr("page_token"));
}

TEST_F(FleetListTest, AccountAndStateAndModelAndStateReadOnlyTheirTasks) {
  std::vector<std::string> failed_of_a;
  std::vector<std::string> queued_veo;
  for (int i = 0; i < 60; ++i) {
    clock_.Advance(absl::Milliseconds(5));
    const std::string account = i % 10 == 0 ? "acct-a" : "acct-b";
    const std::string model = i % 3 == 0 ? "veo-3" : "sora-2";
    const std::string id = Submit(model, 10, account);
    if (i % 4 == 0) {
      MustRecord(Failed(500, "", "boom"), id);
      if (account == "acct-a") failed_of_a.insert(failed_of_a.begin(), id);
    } else if (i % 4 == 1) {
      MustRecord(Queued(), id);
      if (model == "veo-3") queued_veo.insert(queued_veo.begin(), id);
    }
  }
  ASSERT_FALSE(failed_of_a.empty());
  int64_t scanned = 0;
  v1::ListTasksRequest request;
  request.set_account_id("acct-a");
  request.set_state(v1::TASK_STATE_FAILED);
  EXPECT_THAT(ListAll(request, &scanned), ElementsAreArray(failed_of_a));
  EXPECT_EQ(scanned, static_cast<int64_t>(failed_of_a.size()));

  scanned = 0;
  request.Clear();
  request.set_model("veo-3");
  request.set_state(v1::TASK_STATE_QUEUED);
  EXPECT_THAT(ListAll(request, &scanned), ElementsAreArray(queued_veo));
  EXPECT_EQ(scanned, static_cast<int64_t>(queued_veo.size()));

  // Unfinished tasks of one account: only the tasks in flight are read.
  scanned = 0;
  request.Clear();
  request.set_unfinished(true);
  request.set_account_id("acct-b");
  const std::vector<std::string> in_flight = ListAll(request, &scanned);
  EXPECT_EQ(in_flight.size(), 42u);  // 54 of acct-b, 12 of them failed
  v1::ListTasksRequest every_unfinished;
  every_unfinished.set_unfinished(true);
  EXPECT_EQ(scanned, static_cast<int64_t>(ListAll(every_unfinished).size()));
}

}  // namespace
}  // namespace tasktrail
