// Domain tests: the Tracker on a real RocksDB store in a temp directory, with
// a manual clock so that time-dependent rules are exact.
#include "service/tracker/tracker.h"

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
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/rules/time_util.h"
#include "service/tracker/stripe_locks.h"
#include "tests/support/tracker_fixture.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;

class TrackerTest : public TrackerFixtureBase {
 protected:
  static v1::SubmitTaskRequest SubmitRequest(const std::string& account) {
    v1::SubmitTaskRequest request;
    request.set_account_id(account);
    request.set_model("veo-3");
    request.set_charge_units(10);
    request.mutable_params()->set_prompt("a fox in the snow");
    return request;
  }

  std::string Submit(const std::string& account = "acct") {
    auto response = AwaitWrite(*tracker_, &Tracker::SubmitTask,
                               SubmitRequest(account), "backend-1");
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
  EXPECT_TRUE(AwaitWrite(*tracker_, &Tracker::RecordEvent, at_limit, "").ok());

  v1::RecordEventRequest past_limit = Poll(id, 2);
  *past_limit.mutable_occur_time() =
      ToProtoTime(clock_.Now() + absl::Seconds(5) + absl::Milliseconds(1));
  auto refused = AwaitWrite(*tracker_, &Tracker::RecordEvent, past_limit, "");
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
  ASSERT_TRUE(AwaitWrite(*tracker_, &Tracker::RecordEvent, queued, "").ok());

  // A note recorded later does not move the bound.
  clock_.Advance(absl::Minutes(1));
  v1::AddNoteRequest note;
  note.set_task_id(id);
  note.set_text("looking");
  ASSERT_TRUE(AwaitWrite(*tracker_, &Tracker::AddNote, note, "").ok());

  v1::RecordEventRequest poll = Poll(id, 5);
  *poll.mutable_occur_time() = ToProtoTime(clock_.Now() - absl::Seconds(30));
  EXPECT_TRUE(AwaitWrite(*tracker_, &Tracker::RecordEvent, poll, "").ok());

  v1::RecordEventRequest earlier = Poll(id, 6);
  *earlier.mutable_occur_time() = ToProtoTime(clock_.Now() - absl::Seconds(31));
  EXPECT_EQ(
      AwaitWrite(*tracker_, &Tracker::RecordEvent, earlier, "").status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(TrackerTest, ReplayIsRecognisedBeforeLifecycleChecks) {
  const std::string id = Submit();
  v1::RecordEventRequest completed;
  completed.set_task_id(id);
  completed.set_event_id("done-1");
  completed.mutable_completed()->add_result_uris("https://cdn.example.com/a");
  ASSERT_TRUE(AwaitWrite(*tracker_, &Tracker::RecordEvent, completed, "").ok());
  // The task is finished; a second completion would be FAILED_PRECONDITION,
  // but a replay of the recorded one gets its original answer.
  auto replay = AwaitWrite(*tracker_, &Tracker::RecordEvent, completed, "");
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
  ASSERT_TRUE(AwaitWrite(*tracker_, &Tracker::RecordEvent, first, "").ok());
  auto folded = AwaitWrite(*tracker_, &Tracker::RecordEvent, second, "");
  ASSERT_TRUE(folded.ok());
  EXPECT_EQ(folded->seq(), 2);
  auto replay = AwaitWrite(*tracker_, &Tracker::RecordEvent, second, "");
  ASSERT_TRUE(replay.ok());
  EXPECT_FALSE(replay->applied());
  EXPECT_EQ(replay->task().poll_count(), 2);
}

TEST_F(TrackerTest, TruncatedSnapshotIsDataLossOnEveryRead) {
  const std::string id = Submit();
  ASSERT_TRUE(
      AwaitWrite(*tracker_, &Tracker::RecordEvent, Poll(id, 1), "").ok());
  v1::GetTaskRequest get;
  get.set_task_id(id);
  auto stored = tracker_->GetStoredTaskBytes(get);
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
    EXPECT_EQ(tracker_->GetStoredTaskBytes(get).status().code(),
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
  ASSERT_TRUE(
      AwaitWrite(*tracker_, &Tracker::RecordEvent, Poll(id, 1), "poller-7")
          .ok());
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
        auto result = AwaitWrite(*tracker_, &Tracker::RecordEvent,
                                 Poll(id, (t * kPerThread + i) % 100), "");
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
  ASSERT_TRUE(AwaitWrite(*tracker_, &Tracker::RecordEvent, failed, "").ok());
  v1::RecordEventRequest refund;
  refund.set_task_id(id);
  refund.mutable_refunded()->set_units(11);
  EXPECT_EQ(
      AwaitWrite(*tracker_, &Tracker::RecordEvent, refund, "").status().code(),
      absl::StatusCode::kInvalidArgument);
  refund.mutable_refunded()->set_units(10);
  EXPECT_TRUE(AwaitWrite(*tracker_, &Tracker::RecordEvent, refund, "").ok());
}

TEST_F(TrackerTest, FailedWithRefundCountsAsTheOneRefund) {
  const std::string id = Submit();
  v1::RecordEventRequest failed;
  failed.set_task_id(id);
  failed.mutable_failed()->set_http_status(503);
  failed.mutable_failed()->set_refunded(true);
  auto result = AwaitWrite(*tracker_, &Tracker::RecordEvent, failed, "");
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->task().refunded());
  v1::RecordEventRequest refund;
  refund.set_task_id(id);
  refund.mutable_refunded();
  auto second = AwaitWrite(*tracker_, &Tracker::RecordEvent, refund, "");
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
    EXPECT_EQ(tracker_->RecordEvent(
                  Poll(id, i), "", LockWait::kWait,
                  [&](absl::StatusOr<v1::RecordEventResponse> response) {
                    EXPECT_TRUE(response.ok()) << response.status();
                    const int64_t seq = response.ok() ? response->seq() : -1;
                    absl::StatusOr<std::vector<v1::TaskEvent>> stored =
                        tracker_->ReadEvents(id, seq - 1, 1);
                    absl::MutexLock lock(&mutex);
                    seqs.push_back(seq);
                    if (stored.ok() && stored->size() == 1) ++readable;
                  }),
              nullptr);
  }
  absl::MutexLock lock(&mutex);
  auto all_answered = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
    return seqs.size() == static_cast<size_t>(kEvents);
  };
  mutex.Await(absl::Condition(&all_answered));
  EXPECT_EQ(readable, kEvents);
  for (int i = 0; i < kEvents; ++i) EXPECT_EQ(seqs[i], i + 2);  // 1: SUBMITTED
}

// While a write's leases are held, a write that may not wait for them is
// given back untouched; once they are free it goes through. Every call here
// is LockWait::kNever, so each one's result is determined: a wrong answer
// fails the test instead of blocking it.
TEST_F(TrackerTest, WritesThatMustNotWaitAreGivenBackWhileTheirLockIsHeld) {
  // What the answers touch lives on the heap: an answer still pending when
  // an assertion ends the test runs later, when the fixture closes the store.
  struct Shared {
    absl::Mutex mutex;
    int answers ABSL_GUARDED_BY(mutex) = 0;
    absl::Notification stalled[2];
    absl::Notification resume[2];
  };
  auto shared = std::make_shared<Shared>();
  struct ResumeOnExit {
    Shared* shared;
    ~ResumeOnExit() {
      for (absl::Notification& resume : shared->resume) {
        if (!resume.HasBeenNotified()) resume.Notify();
      }
    }
  } resume_on_exit{shared.get()};
  constexpr absl::Duration kPatience = absl::Seconds(60);
  auto answers_reach = [shared, kPatience](int n) {
    absl::MutexLock lock(&shared->mutex);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared->mutex) {
      return shared->answers >= n;
    };
    return shared->mutex.AwaitWithTimeout(absl::Condition(&reached), kPatience);
  };
  auto answers = [shared] {
    absl::MutexLock lock(&shared->mutex);
    return shared->answers;
  };
  // A completion that expects success and counts its answer.
  auto counted = [shared](auto check) {
    return [shared, check](auto answer) {
      EXPECT_TRUE(answer.ok()) << answer.status();
      if (answer.ok()) check(*answer);
      absl::MutexLock lock(&shared->mutex);
      ++shared->answers;
    };
  };
  auto any = [](const auto&) {};

  v1::SubmitTaskRequest original = SubmitRequest("acct-a");
  original.set_request_id("rq-busy");
  auto submitted = AwaitWrite(*tracker_, &Tracker::SubmitTask, original, "");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string busy_task = submitted->task().task_id();
  const std::string other_task = Submit("acct-c");
  v1::SubmitTaskRequest fresh = original;
  fresh.set_request_id("rq-fresh");
  fresh.mutable_params()->set_prompt("a hare in the snow");
  v1::AddNoteRequest note;
  note.set_task_id(busy_task);
  note.set_text("looking");

  // The commit thread answers writes in queue order: while it is held in
  // the answer of a write to another task, every write queued after that
  // one keeps its leases.
  auto stall_commits = [&](int stall, int progress) {
    Completion<v1::RecordEventResponse> hold =
        [shared, stall, kPatience](absl::StatusOr<v1::RecordEventResponse>) {
          shared->stalled[stall].Notify();
          shared->resume[stall].WaitForNotificationWithTimeout(kPatience);
        };
    EXPECT_EQ(tracker_->RecordEvent(Poll(other_task, progress), "",
                                    LockWait::kNever, std::move(hold)),
              nullptr);
    return shared->stalled[stall].WaitForNotificationWithTimeout(kPatience);
  };

  // 1. The task's lease held by a poll: events, notes and a duplicate of
  // the task's submission (whose account lease is free) are given back.
  ASSERT_TRUE(stall_commits(0, 1));
  Completion<v1::RecordEventResponse> holding_poll =
      counted([](const v1::RecordEventResponse& r) { EXPECT_EQ(r.seq(), 2); });
  ASSERT_EQ(tracker_->RecordEvent(Poll(busy_task, 2), "", LockWait::kNever,
                                  std::move(holding_poll)),
            nullptr);
  Completion<v1::RecordEventResponse> poll =
      counted([](const v1::RecordEventResponse& r) { EXPECT_EQ(r.seq(), 4); });
  poll = tracker_->RecordEvent(Poll(busy_task, 3), "", LockWait::kNever,
                               std::move(poll));
  EXPECT_NE(poll, nullptr);
  Completion<v1::Task> noted = counted(any);
  noted = tracker_->AddNote(note, "", LockWait::kNever, std::move(noted));
  EXPECT_NE(noted, nullptr);
  auto blocked_as_duplicate = [busy_task](const v1::SubmitTaskResponse& r) {
    EXPECT_TRUE(r.deduplicated());
    EXPECT_EQ(r.task().task_id(), busy_task);
  };
  Completion<v1::SubmitTaskResponse> duplicate = counted(blocked_as_duplicate);
  duplicate = tracker_->SubmitTask(original, "", LockWait::kNever,
                                   std::move(duplicate));
  EXPECT_NE(duplicate, nullptr);
  EXPECT_EQ(answers(), 0);
  shared->resume[0].Notify();
  ASSERT_TRUE(answers_reach(1));

  // 2. The account's and the task's leases held by a duplicate submission
  // (which also shows that the refused duplicate above left the account's
  // lease free): a new submission of the account is given back.
  ASSERT_TRUE(stall_commits(1, 2));
  Completion<v1::SubmitTaskResponse> holding_duplicate =
      counted(blocked_as_duplicate);
  ASSERT_EQ(tracker_->SubmitTask(original, "", LockWait::kNever,
                                 std::move(holding_duplicate)),
            nullptr);
  Completion<v1::SubmitTaskResponse> new_task =
      counted([busy_task](const v1::SubmitTaskResponse& r) {
        EXPECT_FALSE(r.deduplicated());
        EXPECT_NE(r.task().task_id(), busy_task);
      });
  new_task =
      tracker_->SubmitTask(fresh, "", LockWait::kNever, std::move(new_task));
  EXPECT_NE(new_task, nullptr);
  poll = tracker_->RecordEvent(Poll(busy_task, 3), "", LockWait::kNever,
                               std::move(poll));
  EXPECT_NE(poll, nullptr);
  EXPECT_EQ(answers(), 1);
  shared->resume[1].Notify();
  ASSERT_TRUE(answers_reach(2));

  // 3. Nothing held: the writes given back go through, each answered once
  // (each is awaited, as each holds the task's lease until it is durable).
  ASSERT_EQ(tracker_->RecordEvent(Poll(busy_task, 3), "", LockWait::kNever,
                                  std::move(poll)),
            nullptr);
  ASSERT_TRUE(answers_reach(3));
  ASSERT_EQ(tracker_->AddNote(note, "", LockWait::kNever, std::move(noted)),
            nullptr);
  ASSERT_TRUE(answers_reach(4));
  ASSERT_EQ(tracker_->SubmitTask(original, "", LockWait::kNever,
                                 std::move(duplicate)),
            nullptr);
  ASSERT_TRUE(answers_reach(5));
  ASSERT_EQ(
      tracker_->SubmitTask(fresh, "", LockWait::kNever, std::move(new_task)),
      nullptr);
  ASSERT_TRUE(answers_reach(6));

  // The refused tries left no trace: one entry per accepted write.
  v1::GetTaskRequest get;
  get.set_task_id(busy_task);
  get.set_include_events(true);
  auto task = tracker_->GetTask(get);
  ASSERT_TRUE(task.ok()) << task.status();
  std::vector<v1::EventType> types;
  for (const v1::TaskEvent& event : task->events()) {
    types.push_back(event.type());
  }
  EXPECT_THAT(types,
              ::testing::ElementsAre(
                  v1::EVENT_TYPE_SUBMITTED, v1::EVENT_TYPE_POLLED,
                  v1::EVENT_TYPE_DUPLICATE_BLOCKED, v1::EVENT_TYPE_POLLED,
                  v1::EVENT_TYPE_NOTE_ADDED, v1::EVENT_TYPE_DUPLICATE_BLOCKED));
  EXPECT_EQ(task->poll_count(), 2);
  EXPECT_EQ(task->duplicate_count(), 2);
  v1::ListTasksRequest list;
  list.set_account_id("acct-a");
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

TEST(StripeLocksTest, TryAcquireDoesNotOvertakeAWaiter) {
  StripeLocks locks;
  absl::optional<StripeLocks::Lease> first = locks.TryAcquire("task-1");
  ASSERT_TRUE(first.has_value());
  absl::Notification checked;
  std::thread waiter([&] {
    StripeLocks::Lease second = locks.Acquire("task-1");
    checked.WaitForNotification();
  });
  while (locks.Waiting("task-1") == 0) std::this_thread::yield();
  first->Release();
  // Free of its lease, the stripe is the waiter's: still waited for, or
  // already held by the waiter.
  EXPECT_FALSE(locks.TryAcquire("task-1").has_value());
  checked.Notify();
  waiter.join();
  EXPECT_TRUE(locks.TryAcquire("task-1").has_value());
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
