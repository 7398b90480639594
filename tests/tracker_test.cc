// Domain tests: the Tracker on a real RocksDB store in a temp directory, with
// a manual clock so that time-dependent rules are exact.
#include "service/tracker.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/stripe_locks.h"
#include "service/time_util.h"
#include "tests/tracker_fixture.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;

class TrackerTest : public TrackerFixtureBase {
 protected:
  std::string Submit(const std::string& account = "acct") {
    v1::SubmitTaskRequest request;
    request.set_account_id(account);
    request.set_model("veo-3");
    request.set_charge_units(10);
    request.mutable_params()->set_prompt("a fox in the snow");
    auto response = tracker_->SubmitTask(request, "backend-1");
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->task().task_id() : "";
  }

  static v1::RecordEventRequest Poll(const std::string& task_id, int progress) {
    v1::RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_polled()->set_upstream_status("running");
    request.mutable_polled()->set_progress_percent(progress);
    return request;
  }
};

TEST_F(TrackerTest, OccurTimeFutureLimitIsFiveSecondsExactly) {
  const std::string id = Submit();
  v1::RecordEventRequest at_limit = Poll(id, 1);
  *at_limit.mutable_occur_time() = ToProtoTime(clock_.Now() + absl::Seconds(5));
  EXPECT_TRUE(tracker_->RecordEvent(at_limit, "").ok());

  v1::RecordEventRequest past_limit = Poll(id, 2);
  *past_limit.mutable_occur_time() =
      ToProtoTime(clock_.Now() + absl::Seconds(5) + absl::Milliseconds(1));
  auto refused = tracker_->RecordEvent(past_limit, "");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("occur_time"));
}

TEST_F(TrackerTest, OccurTimeIsOrderedOnlyAgainstUpstreamEvents) {
  const std::string id = Submit();
  clock_.Advance(absl::Minutes(1));
  v1::RecordEventRequest queued;
  queued.set_task_id(id);
  queued.mutable_queued()->set_upstream_task_id("up-1");
  *queued.mutable_occur_time() = ToProtoTime(clock_.Now());
  ASSERT_TRUE(tracker_->RecordEvent(queued, "").ok());

  // A note recorded later does not move the bound.
  clock_.Advance(absl::Minutes(1));
  v1::AddNoteRequest note;
  note.set_task_id(id);
  note.set_text("looking");
  ASSERT_TRUE(tracker_->AddNote(note, "").ok());

  v1::RecordEventRequest poll = Poll(id, 5);
  *poll.mutable_occur_time() = ToProtoTime(clock_.Now() - absl::Seconds(30));
  EXPECT_TRUE(tracker_->RecordEvent(poll, "").ok());

  v1::RecordEventRequest earlier = Poll(id, 6);
  *earlier.mutable_occur_time() = ToProtoTime(clock_.Now() - absl::Seconds(31));
  EXPECT_EQ(tracker_->RecordEvent(earlier, "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TrackerTest, ReplayIsRecognisedBeforeLifecycleChecks) {
  const std::string id = Submit();
  v1::RecordEventRequest completed;
  completed.set_task_id(id);
  completed.set_event_id("done-1");
  completed.mutable_completed()->add_result_uris("https://cdn.example.com/a");
  ASSERT_TRUE(tracker_->RecordEvent(completed, "").ok());
  // The task is finished; a second completion would be FAILED_PRECONDITION,
  // but a replay of the recorded one gets its original answer.
  auto replay = tracker_->RecordEvent(completed, "");
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_FALSE(replay->applied());
  EXPECT_EQ(replay->seq(), 2);
}

TEST_F(TrackerTest, FoldedPollKeepsItsEventIdReplayable) {
  const std::string id = Submit();
  v1::RecordEventRequest first = Poll(id, 10);
  first.set_event_id("p1");
  v1::RecordEventRequest second = Poll(id, 10);
  second.set_event_id("p2");
  ASSERT_TRUE(tracker_->RecordEvent(first, "").ok());
  auto folded = tracker_->RecordEvent(second, "");
  ASSERT_TRUE(folded.ok());
  EXPECT_EQ(folded->seq(), 2);
  auto replay = tracker_->RecordEvent(second, "");
  ASSERT_TRUE(replay.ok());
  EXPECT_FALSE(replay->applied());
  EXPECT_EQ(replay->task().poll_count(), 2);
}

TEST_F(TrackerTest, TruncatedSnapshotIsDataLossOnEveryRead) {
  const std::string id = Submit();
  ASSERT_TRUE(tracker_->RecordEvent(Poll(id, 1), "").ok());
  v1::GetTaskRequest get;
  get.set_task_id(id);
  auto stored = tracker_->GetTaskBytes(get);
  ASSERT_TRUE(stored.ok()) << stored.status();
  // The stored snapshot, cut inside its last field.
  ASSERT_TRUE(store_
                  ->WriteRaw({store::RawMutation{
                      store::ColumnFamily::kTasks, id,
                      stored->substr(0, stored->size() - 1)}})
                  .ok());
  for (const bool include_events : {false, true}) {
    SCOPED_TRACE(include_events);
    get.set_include_events(include_events);
    EXPECT_EQ(tracker_->GetTaskBytes(get).status().code(),
              absl::StatusCode::kDataLoss);
    EXPECT_EQ(tracker_->GetTask(get).status().code(),
              absl::StatusCode::kDataLoss);
  }
  v1::GetQueueStatusRequest queue;
  queue.set_task_id(id);
  v1::QueueStatus status;
  EXPECT_EQ(tracker_->GetQueueStatus(queue, &status).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(status.ByteSizeLong(), 0u);
}

TEST_F(TrackerTest, ActorIsRecordedOnEveryEvent) {
  const std::string id = Submit();
  ASSERT_TRUE(tracker_->RecordEvent(Poll(id, 1), "poller-7").ok());
  v1::GetTaskRequest get;
  get.set_task_id(id);
  get.set_include_events(true);
  auto task = tracker_->GetTask(get);
  ASSERT_TRUE(task.ok());
  ASSERT_EQ(task->events_size(), 2);
  EXPECT_EQ(task->events(0).actor(), "backend-1");
  EXPECT_EQ(task->events(1).actor(), "poller-7");
}

TEST_F(TrackerTest, ConcurrentEventsOnOneTaskGetGaplessSeqs) {
  const std::string id = Submit();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Distinct progress values so that no poll folds.
        auto result =
            tracker_->RecordEvent(Poll(id, (t * kPerThread + i) % 100), "");
        EXPECT_TRUE(result.ok()) << result.status();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  v1::GetTaskRequest get;
  get.set_task_id(id);
  get.set_include_events(true);
  auto task = tracker_->GetTask(get);
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->poll_count(), kThreads * kPerThread);
  // Every poll is either its own entry or folded into the one before.
  int64_t repeats = 0;
  for (int i = 0; i < task->events_size(); ++i) {
    EXPECT_EQ(task->events(i).seq(), i + 1);
    if (task->events(i).type() == v1::EVENT_TYPE_POLLED) {
      repeats += task->events(i).repeat_count();
    }
  }
  EXPECT_EQ(repeats, kThreads * kPerThread);
  EXPECT_EQ(task->last_event_seq(), task->events_size());
}

TEST_F(TrackerTest, ListPagesCoverEveryTaskOnceWhenFiltersAreSparse) {
  std::set<std::string> wanted;
  for (int i = 0; i < 60; ++i) {
    clock_.Advance(absl::Milliseconds(3));
    const std::string id = Submit(i % 20 == 0 ? "rare" : "common");
    if (i % 20 == 0) wanted.insert(id);
  }
  v1::ListTasksRequest request;
  request.set_account_id("rare");
  request.set_page_size(1);
  std::set<std::string> seen;
  for (int page = 0; page < 10; ++page) {
    auto response = tracker_->ListTasks(request);
    ASSERT_TRUE(response.ok());
    for (const v1::Task& task : response->tasks()) {
      EXPECT_TRUE(seen.insert(task.task_id()).second);
    }
    if (response->next_page_token().empty()) break;
    request.set_page_token(response->next_page_token());
  }
  EXPECT_EQ(seen, wanted);
}

TEST_F(TrackerTest, RefundCannotExceedTheCharge) {
  const std::string id = Submit();
  v1::RecordEventRequest failed;
  failed.set_task_id(id);
  failed.mutable_failed()->set_http_status(500);
  ASSERT_TRUE(tracker_->RecordEvent(failed, "").ok());
  v1::RecordEventRequest refund;
  refund.set_task_id(id);
  refund.mutable_refunded()->set_units(11);
  EXPECT_EQ(tracker_->RecordEvent(refund, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  refund.mutable_refunded()->set_units(10);
  EXPECT_TRUE(tracker_->RecordEvent(refund, "").ok());
}

TEST_F(TrackerTest, FailedWithRefundCountsAsTheOneRefund) {
  const std::string id = Submit();
  v1::RecordEventRequest failed;
  failed.set_task_id(id);
  failed.mutable_failed()->set_http_status(503);
  failed.mutable_failed()->set_refunded(true);
  auto result = tracker_->RecordEvent(failed, "");
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->task().refunded());
  v1::RecordEventRequest refund;
  refund.set_task_id(id);
  refund.mutable_refunded();
  auto second = tracker_->RecordEvent(refund, "");
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("already refunded at"));
}

TEST_F(TrackerTest, AsyncEventsAreAnsweredInOrderOnceReadable) {
  // Events sent without waiting for answers: each one waits (on the calling
  // thread) for the previous write to its task to become durable, and is
  // answered from the commit thread once its own entry can be read.
  const std::string id = Submit();
  constexpr int kEvents = 50;
  absl::Mutex mutex;
  std::vector<int64_t> seqs;
  int readable = 0;
  for (int i = 0; i < kEvents; ++i) {
    tracker_->RecordEvent(
        Poll(id, i), "", [&](absl::StatusOr<v1::RecordEventResponse> response) {
          EXPECT_TRUE(response.ok()) << response.status();
          const int64_t seq = response.ok() ? response->seq() : -1;
          absl::StatusOr<std::vector<v1::TaskEvent>> stored =
              tracker_->ReadEvents(id, seq - 1, 1);
          absl::MutexLock lock(&mutex);
          seqs.push_back(seq);
          if (stored.ok() && stored->size() == 1) ++readable;
        });
  }
  absl::MutexLock lock(&mutex);
  auto all_answered = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
    return seqs.size() == static_cast<size_t>(kEvents);
  };
  mutex.Await(absl::Condition(&all_answered));
  EXPECT_EQ(readable, kEvents);
  for (int i = 0; i < kEvents; ++i) EXPECT_EQ(seqs[i], i + 2);  // 1: SUBMITTED
}

TEST_F(TrackerTest, WritesThatMustNotWaitAreGivenBackWhileTheirLockIsHeld) {
  const std::string busy_task = Submit("acct-a");
  const std::string other_task = Submit("acct-c");

  // The commit thread runs answers in queue order: while the first one is
  // held here, every write queued after it keeps its locks.
  absl::Notification holding, release;
  tracker_->RecordEvent(Poll(other_task, 1), "",
                        [&](absl::StatusOr<v1::RecordEventResponse> answer) {
                          EXPECT_TRUE(answer.ok()) << answer.status();
                          holding.Notify();
                          release.WaitForNotification();
                        });
  holding.WaitForNotification();
  absl::Notification event_done, submit_done;
  tracker_->RecordEvent(Poll(busy_task, 2), "",
                        [&](absl::StatusOr<v1::RecordEventResponse> answer) {
                          EXPECT_TRUE(answer.ok()) << answer.status();
                          event_done.Notify();
                        });
  v1::SubmitTaskRequest first;
  first.set_account_id("acct-b");
  first.set_model("veo-3");
  first.mutable_params()->set_prompt("a fox in the snow");
  tracker_->SubmitTask(first, "",
                       [&](absl::StatusOr<v1::SubmitTaskResponse> answer) {
                         EXPECT_TRUE(answer.ok()) << answer.status();
                         submit_done.Notify();
                       });

  // The task's and the account's locks are held: nothing is done, and the
  // completions are left to the caller, uncalled.
  absl::Mutex mutex;
  int answers = 0;
  auto count = [&] {
    absl::MutexLock lock(&mutex);
    ++answers;
  };
  auto await_answers = [&](int n) {
    absl::MutexLock lock(&mutex);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
      return answers == n;
    };
    mutex.Await(absl::Condition(&reached));
  };
  Completion<v1::RecordEventResponse> event_answer =
      [&](absl::StatusOr<v1::RecordEventResponse> answer) {
        EXPECT_TRUE(answer.ok()) << answer.status();
        if (answer.ok()) EXPECT_EQ(answer->seq(), 3);
        count();
      };
  EXPECT_FALSE(tracker_->RecordEvent(Poll(busy_task, 3), "", LockWait::kNever,
                                     &event_answer));
  EXPECT_TRUE(static_cast<bool>(event_answer));
  v1::SubmitTaskRequest second = first;
  second.mutable_params()->set_prompt("a hare in the snow");
  Completion<v1::SubmitTaskResponse> submit_answer =
      [&](absl::StatusOr<v1::SubmitTaskResponse> answer) {
        EXPECT_TRUE(answer.ok()) << answer.status();
        count();
      };
  EXPECT_FALSE(
      tracker_->SubmitTask(second, "", LockWait::kNever, &submit_answer));
  EXPECT_TRUE(static_cast<bool>(submit_answer));
  v1::AddNoteRequest note;
  note.set_task_id(busy_task);
  note.set_text("looking");
  Completion<v1::Task> note_answer = [&](absl::StatusOr<v1::Task> answer) {
    EXPECT_TRUE(answer.ok()) << answer.status();
    count();
  };
  EXPECT_FALSE(tracker_->AddNote(note, "", LockWait::kNever, &note_answer));
  EXPECT_TRUE(static_cast<bool>(note_answer));
  await_answers(0);

  // Once the earlier writes are durable the same calls go through (each
  // awaited, since each holds the task's lock until it is durable).
  release.Notify();
  event_done.WaitForNotification();
  submit_done.WaitForNotification();
  ASSERT_TRUE(tracker_->RecordEvent(Poll(busy_task, 3), "", LockWait::kNever,
                                    &event_answer));
  await_answers(1);
  ASSERT_TRUE(
      tracker_->SubmitTask(second, "", LockWait::kNever, &submit_answer));
  ASSERT_TRUE(tracker_->AddNote(note, "", LockWait::kNever, &note_answer));
  await_answers(3);

  // The refused tries left no trace: one entry per accepted write.
  v1::GetTaskRequest get;
  get.set_task_id(busy_task);
  get.set_include_events(true);
  auto task = tracker_->GetTask(get);
  ASSERT_TRUE(task.ok()) << task.status();
  ASSERT_EQ(task->events_size(), 4);  // submitted, two polls, the note
  EXPECT_EQ(task->poll_count(), 2);
  EXPECT_EQ(task->events(3).type(), v1::EVENT_TYPE_NOTE_ADDED);
  v1::ListTasksRequest list;
  list.set_account_id("acct-b");
  auto tasks = tracker_->ListTasks(list);
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  EXPECT_EQ(tasks->tasks_size(), 2);
}

TEST(StripeLocksTest, TryAcquireTakesOnlyAFreeStripe) {
  StripeLocks locks;
  absl::optional<StripeLocks::Lease> first = locks.TryAcquire("task-1");
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(locks.TryAcquire("task-1").has_value());
  first->Release();
  absl::optional<StripeLocks::Lease> again = locks.TryAcquire("task-1");
  EXPECT_TRUE(again.has_value());
}

TEST(StripeLocksTest, ALeaseReleasedOnAnotherThreadAdmitsTheWaiter) {
  StripeLocks locks;
  StripeLocks::Lease lease = locks.Acquire("task-1");
  std::atomic<bool> acquired{false};
  std::thread waiter([&] {
    StripeLocks::Lease second = locks.Acquire("task-1");
    acquired = true;
  });
  std::thread releaser([&, lease = std::move(lease)]() mutable {
    // The waiter cannot hold the stripe while this lease does.
    EXPECT_FALSE(acquired.load());
    lease.Release();
  });
  releaser.join();
  waiter.join();
  EXPECT_TRUE(acquired.load());
}

}  // namespace
}  // namespace tasktrail
