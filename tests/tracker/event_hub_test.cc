// Tests of EventHub (service/tracker/event_hub.h): published entries reach
// exactly the subscriptions of their task, in order and with their bytes,
// from the hub's own thread (Publish never waits for a listener); a
// subscription that falls a whole buffer behind is cut and told, without
// holding the publisher; Unsubscribe stops a listener for good; Close cuts
// every subscription and every later one; and all of it may be called from
// many threads at once.
#include "service/tracker/event_hub.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace tasktrail {
namespace {

using Cut = EventHub::Subscription::Cut;

// An entry of `task_id` with `seq`, as the tracker publishes it.
std::shared_ptr<PublishedEvent> Entry(const std::string& task_id, int64_t seq) {
  auto entry = std::make_shared<PublishedEvent>();
  entry->event.set_task_id(task_id);
  entry->event.set_seq(seq);
  entry->event.set_type(v1::EVENT_TYPE_POLLED);
  return entry;
}

// Polls `condition` until it holds or 10 s pass; returns its last value.
bool WaitUntil(const std::function<bool()>& condition) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

// Counts the calls of one listener and keeps the entries it was handed.
struct Watcher {
  std::atomic<int> calls{0};
  std::shared_ptr<EventHub::Subscription> subscription;

  std::function<void()> Listener() {
    return [this] { calls.fetch_add(1); };
  }
  // The seqs waiting in the subscription, taken.
  std::vector<int64_t> Take() {
    std::vector<int64_t> seqs;
    while (auto entry = subscription->Pop()) {
      seqs.push_back(entry->event.seq());
    }
    return seqs;
  }
};

TEST(EventHubTest, PublishedEntriesReachOnlyTheSubscriptionsOfTheirTask) {
  EventHub hub;
  Watcher a1, a2, b;
  a1.subscription = hub.Subscribe("task-a", a1.Listener());
  a2.subscription = hub.Subscribe("task-a", a2.Listener());
  b.subscription = hub.Subscribe("task-b", b.Listener());
  EXPECT_EQ(hub.watcher_count(), 3u);

  for (int64_t seq = 1; seq <= 3; ++seq)
    hub.Publish("task-a", Entry("task-a", seq));
  hub.Publish("task-b", Entry("task-b", 7));
  // A task nobody watches, and a prefix of a watched one.
  hub.Publish("task-c", Entry("task-c", 1));
  hub.Publish("task-", Entry("task-", 1));

  std::vector<int64_t> got_a1, got_a2, got_b;
  ASSERT_TRUE(WaitUntil([&] {
    for (int64_t seq : a1.Take()) got_a1.push_back(seq);
    for (int64_t seq : a2.Take()) got_a2.push_back(seq);
    for (int64_t seq : b.Take()) got_b.push_back(seq);
    // An entry is queued before its listener is called: the calls are
    // awaited too.
    return got_a1.size() == 3 && got_a2.size() == 3 && got_b.size() == 1 &&
           a1.calls.load() >= 1 && b.calls.load() >= 1;
  }));
  EXPECT_EQ(got_a1, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(got_a2, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(got_b, (std::vector<int64_t>{7}));
  EXPECT_EQ(a1.subscription->cut(), Cut::kNone);
}

TEST(EventHubTest, EntriesCarryTheirSerializedBytesSharedByEveryWatcher) {
  EventHub hub;
  Watcher w1, w2;
  w1.subscription = hub.Subscribe("task", w1.Listener());
  w2.subscription = hub.Subscribe("task", w2.Listener());
  auto entry = Entry("task", 4);
  entry->event.mutable_polled()->set_progress_percent(40);
  const v1::TaskEvent expected = entry->event;
  hub.Publish("task", std::move(entry));
  std::shared_ptr<const PublishedEvent> got1, got2;
  ASSERT_TRUE(WaitUntil([&] {
    if (got1 == nullptr) got1 = w1.subscription->Pop();
    if (got2 == nullptr) got2 = w2.subscription->Pop();
    return got1 != nullptr && got2 != nullptr;
  }));
  EXPECT_EQ(got1.get(), got2.get()) << "one copy for every watcher";
  v1::TaskEvent parsed;
  ASSERT_TRUE(parsed.ParseFromString(got1->bytes));
  EXPECT_EQ(parsed.SerializeAsString(), expected.SerializeAsString());
  EXPECT_EQ(got1->event.polled().progress_percent(), 40);
}

TEST(EventHubTest, PublishReturnsWhileAListenerIsBlockedOnAnotherThread) {
  EventHub hub;
  absl::Notification entered, release;
  std::atomic<std::thread::id> listener_thread{};
  auto blocked = hub.Subscribe("hot", [&] {
    listener_thread.store(std::this_thread::get_id());
    if (!entered.HasBeenNotified()) entered.Notify();
    release.WaitForNotification();
  });
  Watcher other;
  other.subscription = hub.Subscribe("other", other.Listener());

  // The publisher is a writer's commit thread: it must neither run the
  // listener nor wait for it.
  absl::Notification published;
  std::thread publisher([&] {
    for (int64_t seq = 1; seq <= 50; ++seq) {
      hub.Publish("hot", Entry("hot", seq));
      hub.Publish("other", Entry("other", seq));
    }
    published.Notify();
  });
  const bool returned =
      published.WaitForNotificationWithTimeout(absl::Seconds(10));
  const bool listener_ran =
      entered.WaitForNotificationWithTimeout(absl::Seconds(10));
  release.Notify();
  publisher.join();
  EXPECT_TRUE(returned) << "Publish waited for a blocked listener";
  ASSERT_TRUE(listener_ran);
  EXPECT_NE(listener_thread.load(), publisher.get_id());
  EXPECT_NE(listener_thread.load(), std::this_thread::get_id());
  // The blocked listener held up its own task only.
  std::vector<int64_t> got;
  ASSERT_TRUE(WaitUntil([&] {
    for (int64_t seq : other.Take()) got.push_back(seq);
    return got.size() == 50;
  }));
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i], static_cast<int64_t>(i + 1));
  }
  hub.Unsubscribe(blocked);
  hub.Unsubscribe(other.subscription);
}

TEST(EventHubTest, ASubscriptionThatFallsABufferBehindIsCutAndTold) {
  EventHub::Options options;
  options.buffer_events = 4;
  EventHub hub(options);
  Watcher slow, keeps_up;
  slow.subscription = hub.Subscribe("task", slow.Listener());
  keeps_up.subscription = hub.Subscribe("task", keeps_up.Listener());
  EXPECT_EQ(slow.subscription->capacity(), 4u);

  std::vector<int64_t> kept;
  for (int64_t seq = 1; seq <= 4; ++seq) {
    hub.Publish("task", Entry("task", seq));
    // The one that keeps up takes each entry before the next.
    ASSERT_TRUE(WaitUntil([&] {
      for (int64_t got : keeps_up.Take()) kept.push_back(got);
      return kept.size() == static_cast<size_t>(seq);
    }));
  }
  // Four waiting entries fill the slow one's buffer: not cut yet.
  EXPECT_EQ(slow.subscription->cut(), Cut::kNone);
  const int calls_before = slow.calls.load();
  hub.Publish("task", Entry("task", 5));
  ASSERT_TRUE(WaitUntil([&] { return slow.calls.load() > calls_before; }));
  EXPECT_EQ(slow.subscription->cut(), Cut::kOverflow);
  EXPECT_EQ(slow.subscription->Pop(), nullptr) << "its buffer is dropped";

  // Nothing more reaches it; the other one goes on.
  const int calls_when_cut = slow.calls.load();
  for (int64_t seq = 6; seq <= 20; ++seq) {
    hub.Publish("task", Entry("task", seq));
    ASSERT_TRUE(WaitUntil([&] {
      for (int64_t got : keeps_up.Take()) kept.push_back(got);
      return kept.size() == static_cast<size_t>(seq);
    }));
  }
  EXPECT_EQ(slow.calls.load(), calls_when_cut);
  EXPECT_EQ(slow.subscription->Pop(), nullptr);
  EXPECT_EQ(keeps_up.subscription->cut(), Cut::kNone);
  for (size_t i = 0; i < kept.size(); ++i) {
    EXPECT_EQ(kept[i], static_cast<int64_t>(i + 1));
  }
  hub.Unsubscribe(slow.subscription);
  hub.Unsubscribe(keeps_up.subscription);
  EXPECT_EQ(hub.watcher_count(), 0u);
}

TEST(EventHubTest, UnsubscribingTwiceOrNullDoesNothing) {
  EventHub hub;
  Watcher watcher;
  watcher.subscription = hub.Subscribe("task", watcher.Listener());
  hub.Unsubscribe(nullptr);
  EXPECT_EQ(hub.watcher_count(), 1u);
  hub.Unsubscribe(watcher.subscription);
  hub.Unsubscribe(watcher.subscription);
  EXPECT_EQ(hub.watcher_count(), 0u);
  hub.Publish("task", Entry("task", 1));

  // The task can be watched again after its last watcher left.
  Watcher again;
  again.subscription = hub.Subscribe("task", again.Listener());
  hub.Publish("task", Entry("task", 2));
  std::vector<int64_t> got;
  ASSERT_TRUE(WaitUntil([&] {
    for (int64_t seq : again.Take()) got.push_back(seq);
    return !got.empty();
  }));
  EXPECT_EQ(got, (std::vector<int64_t>{2}));
  EXPECT_TRUE(watcher.Take().empty());
  hub.Unsubscribe(again.subscription);
}

TEST(EventHubTest, CloseCutsEverySubscriptionOnceAndLaterSubscribersAtOnce) {
  EventHub hub;
  Watcher a, b;
  a.subscription = hub.Subscribe("task-a", a.Listener());
  b.subscription = hub.Subscribe("task-b", b.Listener());
  hub.Close();
  // Told before Close returned.
  EXPECT_EQ(a.calls.load(), 1);
  EXPECT_EQ(b.calls.load(), 1);
  EXPECT_EQ(a.subscription->cut(), Cut::kClosing);
  EXPECT_EQ(b.subscription->cut(), Cut::kClosing);

  Watcher late;
  late.subscription = hub.Subscribe("task-a", late.Listener());
  EXPECT_EQ(late.calls.load(), 1);
  EXPECT_EQ(late.subscription->cut(), Cut::kClosing);
  hub.Publish("task-a", Entry("task-a", 1));
  hub.Close();
  EXPECT_EQ(a.calls.load(), 1);
  EXPECT_EQ(late.calls.load(), 1);
  EXPECT_EQ(a.subscription->Pop(), nullptr);
  hub.Unsubscribe(a.subscription);
  hub.Unsubscribe(b.subscription);
  hub.Unsubscribe(late.subscription);
  EXPECT_EQ(hub.watcher_count(), 0u);
}

TEST(EventHubTest, AfterUnsubscribeReturnsTheListenerIsNotRunning) {
  EventHub hub;
  std::atomic<bool> running{false};
  std::atomic<int> calls{0};
  absl::Notification first_call;
  std::shared_ptr<EventHub::Subscription> subscription;
  subscription = hub.Subscribe("task", [&] {
    running.store(true);
    if (!first_call.HasBeenNotified()) first_call.Notify();
    absl::SleepFor(absl::Milliseconds(2));  // a slow listener
    // Keep its buffer from filling, so that it is never cut.
    while (subscription->Pop() != nullptr) {
    }
    calls.fetch_add(1);
    running.store(false);
  });
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    for (int64_t seq = 1; !stop.load(); ++seq) {
      hub.Publish("task", Entry("task", seq));
      absl::SleepFor(absl::Microseconds(100));
    }
  });
  first_call.WaitForNotification();
  hub.Unsubscribe(subscription);
  EXPECT_FALSE(running.load()) << "the listener ran after Unsubscribe returned";
  const int after_unsubscribe = calls.load();
  // The publisher keeps publishing; wait until the hub had the chance to
  // dispatch some of it.
  absl::SleepFor(absl::Milliseconds(20));
  stop.store(true);
  publisher.join();
  EXPECT_EQ(calls.load(), after_unsubscribe);
  EXPECT_FALSE(running.load());
}

TEST(EventHubTest, ConcurrentSubscribersPublishersAndUnsubscribers) {
  constexpr int kWatchers = 16;
  constexpr int kEntries = 100;
  EventHub hub;
  // A publisher on a task nobody watches runs throughout, to contend for the
  // hub's lock.
  std::atomic<bool> stop{false};
  std::thread noise([&] {
    for (int64_t seq = 1; !stop.load(); ++seq) {
      hub.Publish("unwatched", Entry("unwatched", seq));
    }
  });
  std::vector<std::vector<int64_t>> received(kWatchers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWatchers; ++i) {
    threads.emplace_back([&, i] {
      const std::string task = "task-" + std::to_string(i % 4);
      for (int round = 0; round < 3; ++round) {
        Watcher watcher;
        watcher.subscription = hub.Subscribe(task, watcher.Listener());
        // Each thread publishes its own seqs: 1000*i + n.
        std::vector<int64_t> mine;
        for (int n = 1; n <= kEntries; ++n) {
          hub.Publish(task, Entry(task, 1000 * i + n));
        }
        WaitUntil([&] {
          for (int64_t seq : watcher.Take()) {
            if (seq / 1000 == i) mine.push_back(seq);
          }
          return mine.size() == static_cast<size_t>(kEntries);
        });
        hub.Unsubscribe(watcher.subscription);
        if (round == 0) received[i] = mine;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  stop.store(true);
  noise.join();
  for (int i = 0; i < kWatchers; ++i) {
    ASSERT_EQ(received[i].size(), static_cast<size_t>(kEntries))
        << "watcher " << i;
    for (int n = 0; n < kEntries; ++n) {
      EXPECT_EQ(received[i][n], 1000 * i + n + 1) << "watcher " << i;
    }
  }
  EXPECT_EQ(hub.watcher_count(), 0u);
}

TEST(EventHubTest, CloseDuringConcurrentSubscribesCutsEverySubscriberOnce) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  EventHub hub;
  std::vector<std::unique_ptr<Watcher>> watchers;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    watchers.push_back(std::make_unique<Watcher>());
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Watcher& watcher = *watchers[t * kPerThread + i];
        watcher.subscription =
            hub.Subscribe("task-" + std::to_string(i % 7), watcher.Listener());
      }
    });
  }
  hub.Close();
  for (std::thread& thread : threads) thread.join();
  // Subscribed before the close or after it, each was told exactly once.
  for (size_t i = 0; i < watchers.size(); ++i) {
    EXPECT_EQ(watchers[i]->calls.load(), 1) << "subscriber " << i;
    EXPECT_EQ(watchers[i]->subscription->cut(), Cut::kClosing)
        << "subscriber " << i;
  }
  for (auto& watcher : watchers) hub.Unsubscribe(watcher->subscription);
  EXPECT_EQ(hub.watcher_count(), 0u);
}

}  // namespace
}  // namespace tasktrail
