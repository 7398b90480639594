// WatchCursor without a daemon: the checks of a watch request, what a stream
// sends (the stored timeline after after_seq, in batches, then the live
// entries its hub subscription receives in memory, and those another writer
// of the store wrote once the hub re-reads them) and when it ends (also
// NOT_FOUND once the task is purged); and that a watcher never holds up the
// writes of the Tracker it watches.
#include "service/tracker/watch_cursor.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/tracker_fixture.h"

namespace tasktrail {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class WatchCursorTest : public TrackerFixtureBase {
 protected:
  std::string Submit() {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct");
    request.set_model("veo-3");
    request.mutable_params()->set_prompt("a fox in the snow");
    auto response =
        AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "backend");
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->task().task_id() : "";
  }

  void Poll(const std::string& task_id, int progress) {
    v1::RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_polled()->set_upstream_status("running");
    request.mutable_polled()->set_progress_percent(progress);
    ASSERT_TRUE(
        AwaitWrite(*tracker_, &Tracker::RecordEvent, request, "poller").ok());
  }

  // Records polls with `progresses` through another writer of the same
  // store (a Tracker with a hub of its own): the fixture's hub never sees
  // them published.
  void PollElsewhere(const std::string& task_id,
                     const std::vector<int>& progresses) {
    EventHub elsewhere_hub;
    Tracker elsewhere(store_.get(), &catalog_, &clock_, &elsewhere_hub);
    v1::RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_polled()->set_upstream_status("running");
    for (int progress : progresses) {
      request.mutable_polled()->set_progress_percent(progress);
      ASSERT_TRUE(
          AwaitWrite(elsewhere, &Tracker::RecordEvent, request, "poller").ok());
    }
  }

  void Fail(const std::string& task_id) {
    v1::RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_failed()->set_http_status(500);
    ASSERT_TRUE(
        AwaitWrite(*tracker_, &Tracker::RecordEvent, request, "poller").ok());
  }

  // The seqs of the events the cursor sends until it has nothing to send,
  // and the action that stopped it (kWait or kEnd).
  static std::vector<int64_t> Drain(WatchCursor* cursor,
                                    WatchCursor::Step* last) {
    std::vector<int64_t> seqs;
    for (;;) {
      *last = cursor->Next();
      if (last->action != WatchCursor::Action::kSend) return seqs;
      seqs.push_back(last->event->event.seq());
    }
  }

  // Like Drain, but waits (up to 10 s) until the cursor has sent at least
  // `count` events or ends: live entries arrive from the hub's thread, not
  // necessarily all at once.
  static std::vector<int64_t> DrainLive(WatchCursor* cursor,
                                        WatchCursor::Step* last,
                                        size_t count = 1) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    std::vector<int64_t> seqs;
    for (;;) {
      for (int64_t seq : Drain(cursor, last)) seqs.push_back(seq);
      if (seqs.size() >= count || last->action == WatchCursor::Action::kEnd ||
          absl::Now() > deadline) {
        return seqs;
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
  }

  // A cursor after `after_seq` that follows the fixture's hub.
  WatchCursor Follow(const std::string& id, int64_t after_seq) {
    auto cursor = WatchCursor::Open(tracker_.get(), id, after_seq);
    EXPECT_TRUE(cursor.ok()) << cursor.status();
    auto subscription = hub_.Subscribe(
        id, [] {}, cursor->known_seq());
    subscriptions_.push_back(subscription);
    cursor->Follow(subscription);
    return *std::move(cursor);
  }

  void TearDown() override {
    for (const auto& subscription : subscriptions_) {
      hub_.Unsubscribe(subscription);
    }
    TrackerFixtureBase::TearDown();
  }

  std::vector<std::shared_ptr<EventHub::Subscription>> subscriptions_;
};

// An entry that was never stored, published as the tracker would.
std::shared_ptr<PublishedEvent> Unstored(const std::string& id, int64_t seq,
                                         v1::EventType type) {
  auto entry = std::make_shared<PublishedEvent>();
  entry->event.set_task_id(id);
  entry->event.set_seq(seq);
  entry->event.set_type(type);
  return entry;
}

TEST_F(WatchCursorTest, OpenChecksTheTaskThenAfterSeq) {
  const std::string id = Submit();
  EXPECT_EQ(WatchCursor::Open(tracker_.get(), "", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      WatchCursor::Open(tracker_.get(), "no-such-task", 0).status().code(),
      absl::StatusCode::kNotFound);
  // An unknown task is reported before a bad after_seq.
  EXPECT_EQ(
      WatchCursor::Open(tracker_.get(), "no-such-task", -1).status().code(),
      absl::StatusCode::kNotFound);
  const absl::Status negative =
      WatchCursor::Open(tracker_.get(), id, -1).status();
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(negative.message(), HasSubstr("after_seq must not be negative"));
  EXPECT_TRUE(WatchCursor::Open(tracker_.get(), id, 0).ok());
}

TEST_F(WatchCursorTest, SendsTheStoredTimelineThenLiveEntriesAndEnds) {
  const std::string id = Submit();  // seq 1
  Poll(id, 10);                     // seq 2
  Poll(id, 20);                     // seq 3
  WatchCursor cursor = Follow(id, /*after_seq=*/1);
  WatchCursor::Step last;
  EXPECT_THAT(Drain(&cursor, &last), ElementsAre(2, 3));
  EXPECT_EQ(last.action, WatchCursor::Action::kWait);
  EXPECT_EQ(cursor.last_sent_seq(), 3);

  // New entries arrive through the subscription.
  Poll(id, 30);
  EXPECT_THAT(DrainLive(&cursor, &last), ElementsAre(4));
  EXPECT_EQ(last.action, WatchCursor::Action::kWait);
  // A poll folded into the entry already sent is not sent again.
  Poll(id, 30);
  Poll(id, 40);
  EXPECT_THAT(DrainLive(&cursor, &last), ElementsAre(5));

  // The stream ends OK once the finishing event was sent.
  Fail(id);
  EXPECT_THAT(DrainLive(&cursor, &last), ElementsAre(6));
  EXPECT_EQ(last.action, WatchCursor::Action::kEnd);
  EXPECT_TRUE(last.status.ok()) << last.status;
}

TEST_F(WatchCursorTest, LiveEntriesComeFromMemoryNotFromTheStore) {
  const std::string id = Submit();  // seq 1
  WatchCursor cursor = Follow(id, 0);
  WatchCursor::Step last;
  EXPECT_THAT(Drain(&cursor, &last), ElementsAre(1));
  // Entries the store never saw: only the hub could have handed them over.
  hub_.Publish(id, Unstored(id, 1, v1::EVENT_TYPE_POLLED));  // already sent
  hub_.Publish(id, Unstored(id, 2, v1::EVENT_TYPE_POLLED));
  hub_.Publish(id, Unstored(id, 3, v1::EVENT_TYPE_COMPLETED));
  EXPECT_THAT(DrainLive(&cursor, &last, 2), ElementsAre(2, 3));
  EXPECT_EQ(last.action, WatchCursor::Action::kEnd);
  EXPECT_TRUE(last.status.ok());
}

TEST_F(WatchCursorTest, EntriesWrittenElsewhereArriveWhenTheHubRereads) {
  const std::string id = Submit();  // seq 1
  WatchCursor cursor = Follow(id, 0);
  WatchCursor::Step last;
  EXPECT_THAT(Drain(&cursor, &last), ElementsAre(1));
  PollElsewhere(id, {10, 20});
  EXPECT_THAT(Drain(&cursor, &last), ::testing::IsEmpty());
  hub_.Refresh(id);
  EXPECT_THAT(DrainLive(&cursor, &last, 2), ElementsAre(2, 3));
  // Told twice, or handed an entry it carried already: nothing is repeated.
  hub_.Refresh(id);
  hub_.Publish(id, Unstored(id, 3, v1::EVENT_TYPE_POLLED));
  Poll(id, 30);  // seq 4, through this hub
  EXPECT_THAT(DrainLive(&cursor, &last), ElementsAre(4));
}

TEST_F(WatchCursorTest, AnEntryThatSkipsSeqsBringsTheSkippedOnesFromTheStore) {
  const std::string id = Submit();  // seq 1
  WatchCursor cursor = Follow(id, 0);
  WatchCursor::Step last;
  EXPECT_THAT(Drain(&cursor, &last), ElementsAre(1));
  PollElsewhere(id, {10});
  // Seq 3 through this hub, before anyone told it of seq 2.
  Poll(id, 20);
  EXPECT_THAT(DrainLive(&cursor, &last, 2), ElementsAre(2, 3));
  EXPECT_EQ(last.action, WatchCursor::Action::kWait) << last.status;
}

TEST_F(WatchCursorTest, APurgedTaskEndsTheStreamAsGetTaskAnswers) {
  const std::string id = Submit();
  WatchCursor cursor = Follow(id, 0);
  WatchCursor::Step last;
  EXPECT_THAT(Drain(&cursor, &last), ElementsAre(1));
  v1::PurgeTaskRequest purge;
  purge.set_task_id(id);
  purge.set_reason("erasure request");
  ASSERT_TRUE(tracker_->PurgeTask(purge, "admin").ok());
  EXPECT_THAT(DrainLive(&cursor, &last), ::testing::IsEmpty());
  ASSERT_EQ(last.action, WatchCursor::Action::kEnd);
  EXPECT_EQ(last.status, tracker_
                             ->GetTask([&] {
                               v1::GetTaskRequest get;
                               get.set_task_id(id);
                               return get;
                             }())
                             .status());
  EXPECT_EQ(last.status.code(), absl::StatusCode::kNotFound);
}

TEST_F(WatchCursorTest, EachSentEventCarriesItsBytes) {
  const std::string id = Submit();
  WatchCursor cursor = Follow(id, 0);
  const WatchCursor::Step stored = cursor.Next();
  ASSERT_EQ(stored.action, WatchCursor::Action::kSend);
  Poll(id, 10);
  WatchCursor::Step live;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {
    live = cursor.Next();
    if (live.action == WatchCursor::Action::kWait) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  } while (live.action == WatchCursor::Action::kWait && absl::Now() < deadline);
  ASSERT_EQ(live.action, WatchCursor::Action::kSend);
  // What goes on the wire is the event itself, stored or live.
  for (const WatchCursor::Step* step :
       {&stored, static_cast<const WatchCursor::Step*>(&live)}) {
    v1::TaskEvent parsed;
    ASSERT_TRUE(parsed.ParseFromString(step->event->bytes));
    EXPECT_EQ(parsed.SerializeAsString(),
              step->event->event.SerializeAsString());
  }
  EXPECT_EQ(stored.event->event.type(), v1::EVENT_TYPE_SUBMITTED);
  EXPECT_EQ(live.event->event.seq(), 2);
  EXPECT_EQ(live.event->event.polled().progress_percent(), 10);
}

TEST_F(WatchCursorTest, NoEntryIsLostOrRepeatedBetweenTheStoreAndTheHub) {
  const std::string id = Submit();
  constexpr int kPolls = 300;
  // The writer races the watcher's opening and its reads of the store.
  std::thread writer([&] {
    for (int i = 1; i <= kPolls; ++i) Poll(id, i % 100);
    Fail(id);
  });
  WatchCursor cursor = Follow(id, 0);
  std::vector<int64_t> seqs;
  WatchCursor::Step last;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    for (int64_t seq : Drain(&cursor, &last)) seqs.push_back(seq);
    if (last.action == WatchCursor::Action::kEnd) break;
    absl::SleepFor(absl::Milliseconds(1));
  }
  writer.join();
  ASSERT_EQ(last.action, WatchCursor::Action::kEnd);
  EXPECT_TRUE(last.status.ok()) << last.status;
  ASSERT_EQ(seqs.size(), static_cast<size_t>(kPolls + 2));
  for (size_t i = 0; i < seqs.size(); ++i) {
    ASSERT_EQ(seqs[i], static_cast<int64_t>(i + 1));
  }
}

TEST_F(WatchCursorTest, WithoutStoreReadsItWaitsWhileTheStoredTimelineIsDue) {
  const std::string id = Submit();
  WatchCursor cursor = Follow(id, 0);
  // As on the hub's thread: no read, nothing sent yet.
  EXPECT_EQ(cursor.Next(/*may_read_store=*/false).action,
            WatchCursor::Action::kWait);
  const WatchCursor::Step step = cursor.Next(/*may_read_store=*/true);
  ASSERT_EQ(step.action, WatchCursor::Action::kSend);
  EXPECT_EQ(step.event->event.seq(), 1);
}

TEST_F(WatchCursorTest, AWatcherThatFallsBehindEndsUnavailableWithItsAfterSeq) {
  const std::string id = Submit();
  EventHub::Options options;
  options.buffer_events = 3;
  EventHub small(options);
  auto cursor = WatchCursor::Open(tracker_.get(), id, 0);
  ASSERT_TRUE(cursor.ok());
  auto subscription = small.Subscribe(id, [] {});
  cursor->Follow(subscription);
  WatchCursor::Step last;
  EXPECT_THAT(Drain(&*cursor, &last), ElementsAre(1));
  small.Publish(id, Unstored(id, 2, v1::EVENT_TYPE_POLLED));
  EXPECT_THAT(DrainLive(&*cursor, &last), ElementsAre(2));
  // It stops taking entries: the fourth one waiting cuts it.
  for (int64_t seq = 3; seq <= 6; ++seq) {
    small.Publish(id, Unstored(id, seq, v1::EVENT_TYPE_POLLED));
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (subscription->cut() == EventHub::Subscription::Cut::kNone &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_TRUE(cursor->Cut().has_value());
  const WatchCursor::Step end = cursor->Next();
  ASSERT_EQ(end.action, WatchCursor::Action::kEnd);
  EXPECT_EQ(end.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(end.status.message(), HasSubstr("fell more than 3 events"));
  EXPECT_THAT(end.status.message(),
              HasSubstr("resume WatchTask with after_seq=2"));
  small.Unsubscribe(subscription);
}

TEST_F(WatchCursorTest, AClosedHubEndsTheStreamUnavailable) {
  const std::string id = Submit();
  WatchCursor cursor = Follow(id, 0);
  WatchCursor::Step last;
  EXPECT_THAT(Drain(&cursor, &last), ElementsAre(1));
  hub_.Close();
  last = cursor.Next();
  ASSERT_EQ(last.action, WatchCursor::Action::kEnd);
  EXPECT_EQ(last.status.message(),
            "tasktraild is shutting down; resume WatchTask with after_seq=1");
}

TEST_F(WatchCursorTest, AWatcherThatNeverTakesItsEntriesDoesNotHoldWrites) {
  const std::string hot = Submit();
  const std::string other = Submit();
  // The listener blocks, as a watcher stuck in its own work would.
  absl::Notification release;
  std::atomic<int> listener_calls{0};
  auto stuck = hub_.Subscribe(hot, [&] {
    listener_calls.fetch_add(1);
    release.WaitForNotification();
  });
  // Writes to the watched task and to another one are acknowledged.
  absl::Notification written;
  std::thread writer([&] {
    for (int i = 1; i <= 20; ++i) {
      Poll(hot, i);
      Poll(other, i);
    }
    written.Notify();
  });
  const bool done = written.WaitForNotificationWithTimeout(absl::Seconds(20));
  release.Notify();
  writer.join();
  EXPECT_TRUE(done) << "writes waited for a watcher";
  EXPECT_GE(listener_calls.load(), 1);
  hub_.Unsubscribe(stuck);
}

TEST_F(WatchCursorTest, AFinishedTaskEndsAfterItsStoredTimeline) {
  const std::string id = Submit();
  Poll(id, 10);
  Fail(id);  // seq 3
  auto from_start = WatchCursor::Open(tracker_.get(), id, 0);
  ASSERT_TRUE(from_start.ok());
  WatchCursor::Step last;
  EXPECT_THAT(Drain(&*from_start, &last), ElementsAre(1, 2, 3));
  EXPECT_EQ(last.action, WatchCursor::Action::kEnd);
  EXPECT_TRUE(last.status.ok());

  // Resumed after everything: nothing to send, the stream ends at once.
  auto resumed = WatchCursor::Open(tracker_.get(), id, 3);
  ASSERT_TRUE(resumed.ok());
  EXPECT_TRUE(Drain(&*resumed, &last).empty());
  EXPECT_EQ(last.action, WatchCursor::Action::kEnd);
  EXPECT_TRUE(last.status.ok());
}

TEST_F(WatchCursorTest, ReadsALongTimelineInBatches) {
  const std::string id = Submit();
  constexpr int kPolls = WatchCursor::kBatch + 10;
  for (int i = 1; i <= kPolls; ++i) Poll(id, i % 100);
  auto cursor = WatchCursor::Open(tracker_.get(), id, 0);
  ASSERT_TRUE(cursor.ok());
  WatchCursor::Step last;
  const std::vector<int64_t> seqs = Drain(&*cursor, &last);
  ASSERT_EQ(seqs.size(), static_cast<size_t>(kPolls + 1));
  for (size_t i = 0; i < seqs.size(); ++i) {
    EXPECT_EQ(seqs[i], static_cast<int64_t>(i + 1));
  }
  EXPECT_EQ(last.action, WatchCursor::Action::kWait);
}

TEST_F(WatchCursorTest, AnInterruptedStreamNamesTheSeqToResumeFrom) {
  const std::string id = Submit();
  Poll(id, 10);
  auto cursor = WatchCursor::Open(tracker_.get(), id, 0);
  ASSERT_TRUE(cursor.ok());
  EXPECT_FALSE(cursor->Cut().has_value());
  EXPECT_EQ(cursor->Interrupted("shutting down").message(),
            "shutting down; resume WatchTask with after_seq=0");
  WatchCursor::Step last;
  EXPECT_THAT(Drain(&*cursor, &last), ElementsAre(1, 2));
  const absl::Status interrupted = cursor->Interrupted("tasktraild stops");
  EXPECT_EQ(interrupted.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(interrupted.message(),
            "tasktraild stops; resume WatchTask with after_seq=2");
}

}  // namespace
}  // namespace tasktrail
