// Retention and erasure on a real store with a manual clock: what is due is
// purged with every key it had, what is not stays, the indexes stay
// consistent, purges interleave with writes to other tasks, an erased
// task's request_id and content make a new task, and the NOT_FOUND answer
// says a task may have been purged.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/tracker/retention_sweeper.h"
#include "store/keys.h"
#include "tests/tracker/lifecycle_fixture.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAreArray;

constexpr absl::Duration kDay = absl::Hours(24);

class RetentionTest : public LifecycleFixture {
 protected:
  RetentionTest() {
    tracker_options_.task_retention = 90 * kDay;
    tracker_options_.unfinished_retention = 180 * kDay;
  }

  // Sweeps everything due now in batches of `batch_size`.
  int64_t Sweep(int batch_size = 3) {
    RetentionSweeper::Options options;
    options.batch_size = batch_size;
    options.pause = absl::ZeroDuration();
    RetentionSweeper sweeper(tracker_.get(), options);
    absl::StatusOr<int64_t> purged = sweeper.SweepNow();
    EXPECT_TRUE(purged.ok()) << purged.status();
    return purged.ok() ? *purged : -1;
  }

  // A task submitted with `request_id`, queued, completed, with a support
  // note and an audit entry.
  std::string FinishedTask(const std::string& request_id) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct");
    request.set_model("veo-3");
    request.set_request_id(request_id);
    request.mutable_params()->set_prompt(absl::StrCat("scene of ", request_id));
    auto submitted =
        AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "backend");
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    const std::string id = submitted.ok() ? submitted->task().task_id() : "";
    MustRecord(Queued(), id);
    MustRecord(Started(), id);
    MustRecord(Completed(), id);
    v1::AddNoteRequest note;
    note.set_task_id(id);
    note.set_text("customer asked about it");
    EXPECT_TRUE(AwaitWrite(*tracker_, &Tracker::AddNote, note, "alice").ok());
    const absl::string_view ids[] = {id};
    EXPECT_TRUE(tracker_->RecordAudit(ids, "alice", "support", "GetTask").ok());
    return id;
  }

  // Every key (and dedup value) of every column family that holds `id`.
  std::vector<std::string> KeysNaming(const std::string& id) {
    std::vector<std::string> found;
    for (int i = 0; i < store::kColumnFamilyCount; ++i) {
      const auto family = static_cast<store::ColumnFamily>(i);
      const absl::Status scanned = store_->ScanRange(
          family, "", std::string(32, '\xff'),
          [&](absl::string_view key, absl::string_view value) {
            if (absl::StrContains(key, id) || absl::StrContains(value, id)) {
              found.push_back(absl::StrCat(store::kColumnFamilyNames[i], ":",
                                           absl::CHexEscape(key)));
            }
            return true;
          });
      EXPECT_TRUE(scanned.ok()) << scanned;
    }
    return found;
  }

  absl::Status GetStatus(const std::string& id) {
    v1::GetTaskRequest request;
    request.set_task_id(id);
    return tracker_->GetTask(request).status();
  }

  absl::StatusOr<v1::PurgeTaskResponse> Erase(const std::string& id,
                                              const std::string& reason) {
    v1::PurgeTaskRequest request;
    request.set_task_id(id);
    request.set_reason(reason);
    return tracker_->PurgeTask(request, "root");
  }
};

TEST_F(RetentionTest, DueFinishedTasksGoWithEveryKeyTheyHad) {
  const std::string old_a = FinishedTask("req-a");
  const std::string old_b = FinishedTask("req-b");
  ASSERT_THAT(KeysNaming(old_a), ::testing::Not(IsEmpty()));
  clock_.Advance(10 * kDay);
  const std::string young = FinishedTask("req-c");
  const std::string unfinished = Submit();

  clock_.Advance(80 * kDay);  // old ones finished 90 days ago, not yet past
  EXPECT_EQ(Sweep(), 0);
  EXPECT_TRUE(GetStatus(old_a).ok());

  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Sweep(/*batch_size=*/1), 2);
  for (const std::string& id : {old_a, old_b}) {
    EXPECT_THAT(KeysNaming(id), IsEmpty()) << id;
    const absl::Status status = GetStatus(id);
    EXPECT_TRUE(absl::IsNotFound(status)) << status;
    EXPECT_EQ(status.message(), absl::StrCat("task ", id,
                                             " not found; finished tasks are "
                                             "kept 90d"));
  }
  EXPECT_TRUE(GetStatus(young).ok());
  EXPECT_TRUE(GetStatus(unfinished).ok());
  EXPECT_EQ(Get(young).events_size(), 5);  // submitted ... note added
  EXPECT_TRUE(store_->VerifyIndexes().ok()) << store_->VerifyIndexes();
  EXPECT_EQ(Sweep(), 0);
}

TEST_F(RetentionTest, UnfinishedTasksAreKeptUntilTheirOwnLimit) {
  const std::string abandoned = Submit();
  MustRecord(Queued(), abandoned);
  const std::string finished = FinishedTask("req-f");
  clock_.Advance(90 * kDay + absl::Seconds(1));
  EXPECT_EQ(Sweep(), 1);
  EXPECT_TRUE(absl::IsNotFound(GetStatus(finished)));
  EXPECT_TRUE(GetStatus(abandoned).ok());

  // An event restarts an unfinished task's retention.
  clock_.Advance(80 * kDay);
  MustRecord(Polled(5), abandoned);
  clock_.Advance(20 * kDay);  // 190 days after submission, 20 after the poll
  EXPECT_EQ(Sweep(), 0);
  EXPECT_TRUE(GetStatus(abandoned).ok());

  clock_.Advance(160 * kDay + absl::Seconds(1));
  EXPECT_EQ(Sweep(), 1);
  EXPECT_THAT(KeysNaming(abandoned), IsEmpty());
  EXPECT_TRUE(store_->VerifyIndexes().ok()) << store_->VerifyIndexes();
}

TEST_F(RetentionTest, ZeroRetentionKeepsForever) {
  tracker_options_.task_retention = absl::ZeroDuration();
  tracker_options_.unfinished_retention = absl::ZeroDuration();
  Reopen();
  const std::string finished = FinishedTask("req-z");
  const std::string unfinished = Submit();
  clock_.Advance(10000 * kDay);
  EXPECT_EQ(Sweep(), 0);
  EXPECT_TRUE(GetStatus(finished).ok());
  EXPECT_TRUE(GetStatus(unfinished).ok());
  const absl::Status unknown = GetStatus("01ARZ3NDEKTSV4RRFFQ69G5FAV");
  EXPECT_EQ(unknown.message(), "task 01ARZ3NDEKTSV4RRFFQ69G5FAV not found");
}

TEST_F(RetentionTest, NotFoundSaysPurgedOnlyForIdsOlderThanTheRetention) {
  // Made now: no task this young can have been purged.
  const std::string young_unknown = TaskIdFloor(clock_.Now());
  EXPECT_EQ(GetStatus(young_unknown).message(),
            absl::StrCat("task ", young_unknown, " not found"));
  const std::string old_unknown = TaskIdFloor(clock_.Now() - 91 * kDay);
  EXPECT_EQ(GetStatus(old_unknown).message(),
            absl::StrCat("task ", old_unknown,
                         " not found; finished tasks are kept 90d"));
}

TEST_F(RetentionTest, PurgesInterleaveWithEventsOnOtherTasks) {
  std::vector<std::string> due;
  for (int i = 0; i < 40; ++i) due.push_back(FinishedTask(absl::StrCat(i)));
  clock_.Advance(91 * kDay);
  std::vector<std::string> live;
  for (int i = 0; i < 8; ++i) live.push_back(Submit());

  std::atomic<bool> sweeping{true};
  std::atomic<int> polls{0};
  std::thread poller([&] {
    for (int round = 0; round < 200 && (sweeping.load() || round < 20);
         ++round) {
      for (const std::string& id : live) {
        auto recorded = Record(Polled(round % 100), id);
        ASSERT_TRUE(recorded.ok()) << recorded.status();
        polls.fetch_add(1);
      }
    }
  });
  // A due task whose lock a poll holds at that moment is busy and left to
  // the next sweep (a sweep never waits on foreground writes).
  const int64_t purged_while_polling = Sweep(/*batch_size=*/4);
  sweeping.store(false);
  poller.join();
  EXPECT_GT(polls.load(), 0);
  EXPECT_GE(purged_while_polling, 0);
  EXPECT_EQ(purged_while_polling + Sweep(/*batch_size=*/4), 40);
  EXPECT_EQ(Sweep(/*batch_size=*/4), 0);
  for (const std::string& id : due) EXPECT_THAT(KeysNaming(id), IsEmpty());
  for (const std::string& id : live) {
    const v1::Task task = Get(id);
    EXPECT_EQ(task.state(), v1::TASK_STATE_SUBMITTED);
  }
  EXPECT_TRUE(store_->VerifyIndexes().ok()) << store_->VerifyIndexes();
}

TEST_F(RetentionTest, ErasureLeavesOnlyItsAuditEntry) {
  const std::string id = FinishedTask("req-e");
  const absl::Status no_reason = Erase(id, "").status();
  EXPECT_TRUE(absl::IsInvalidArgument(no_reason)) << no_reason;
  EXPECT_THAT(std::string(no_reason.message()), HasSubstr("reason"));
  EXPECT_TRUE(GetStatus(id).ok());

  auto erased = Erase(id, "GDPR request 42");
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_EQ(erased->audit_entry().reason(), "GDPR request 42");
  EXPECT_TRUE(absl::IsNotFound(GetStatus(id)));
  EXPECT_TRUE(absl::IsNotFound(Erase(id, "again").status()));
  EXPECT_TRUE(store_->VerifyIndexes().ok()) << store_->VerifyIndexes();

  v1::ListAuditRequest request;
  request.set_task_id(id);
  auto audit = tracker_->ListAudit(request);
  ASSERT_TRUE(audit.ok()) << audit.status();
  ASSERT_EQ(audit->entries_size(), 1);
  const v1::AuditEntry& entry = audit->entries(0);
  EXPECT_EQ(entry.task_id(), id);
  EXPECT_EQ(entry.principal(), "root");
  EXPECT_EQ(entry.rpc(), "PurgeTask");
  EXPECT_EQ(entry.reason(), "GDPR request 42");
  EXPECT_EQ(entry.role(), "");
  EXPECT_EQ(FromProtoTime(entry.time()), clock_.Now());
  // The audit entry is all that is left of the task.
  const std::vector<std::string> left = KeysNaming(id);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_THAT(left[0], ::testing::StartsWith("audit:"));
}

TEST_F(RetentionTest, AnErasedTasksRequestIdAndContentMakeANewTask) {
  v1::SubmitTaskRequest request;
  request.set_account_id("acct");
  request.set_model("veo-3");
  request.set_request_id("req-again");
  request.mutable_params()->set_prompt("a lighthouse at dusk");
  auto first = AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "backend");
  ASSERT_TRUE(first.ok()) << first.status();
  // Before the erasure the same request_id returns the original.
  auto replay = AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "backend");
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->task().task_id(), first->task().task_id());

  ASSERT_TRUE(Erase(first->task().task_id(), "erasure").ok());
  auto second = AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "backend");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(second->task().task_id(), first->task().task_id());
  EXPECT_FALSE(second->deduplicated());
  EXPECT_THAT(KeysNaming(first->task().task_id()),
              ::testing::Each(::testing::StartsWith("audit:")));
}

}  // namespace
}  // namespace tasktrail
