// Tests of EventHub (service/tracker/event_hub.h): Notify wakes exactly the
// listeners of its task, Unsubscribe stops a listener for good (and waits
// for a running one), Close tells every listener and every later
// subscriber, and all of it may be called from many threads at once.
#include "service/tracker/event_hub.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace tasktrail {
namespace {

// Counts the calls of one listener.
struct Calls {
  std::atomic<int> woken{0};
  std::atomic<int> closing{0};

  EventHub::Listener Listener() {
    return [this](bool is_closing) {
      if (is_closing) {
        closing.fetch_add(1);
      } else {
        woken.fetch_add(1);
      }
    };
  }
};

TEST(EventHubTest, NotifyWakesOnlyTheListenersOfThatTask) {
  EventHub hub;
  Calls a1, a2, b;
  hub.Subscribe("task-a", a1.Listener());
  hub.Subscribe("task-a", a2.Listener());
  hub.Subscribe("task-b", b.Listener());
  EXPECT_EQ(hub.watcher_count(), 3u);

  hub.Notify("task-a");
  EXPECT_EQ(a1.woken.load(), 1);
  EXPECT_EQ(a2.woken.load(), 1);
  EXPECT_EQ(b.woken.load(), 0);

  hub.Notify("task-b");
  hub.Notify("task-b");
  EXPECT_EQ(a1.woken.load(), 1);
  EXPECT_EQ(b.woken.load(), 2);

  // A task nobody watches, and a prefix of a watched one.
  hub.Notify("task-c");
  hub.Notify("task-");
  EXPECT_EQ(a1.woken.load() + a2.woken.load() + b.woken.load(), 4);
  EXPECT_EQ(a1.closing.load() + a2.closing.load() + b.closing.load(), 0);
}

TEST(EventHubTest, HandlesAreDistinct) {
  EventHub hub;
  std::set<uint64_t> handles;
  for (int i = 0; i < 100; ++i) {
    handles.insert(hub.Subscribe(i % 2 == 0 ? "x" : "y", [](bool) {}));
  }
  EXPECT_EQ(handles.size(), 100u);
  EXPECT_EQ(hub.watcher_count(), 100u);
}

TEST(EventHubTest, AnUnsubscribedListenerIsNotCalledAgain) {
  EventHub hub;
  Calls gone, stays;
  const uint64_t handle = hub.Subscribe("task", gone.Listener());
  hub.Subscribe("task", stays.Listener());
  hub.Notify("task");
  hub.Unsubscribe(handle);
  EXPECT_EQ(hub.watcher_count(), 1u);
  hub.Notify("task");
  hub.Close();
  EXPECT_EQ(gone.woken.load(), 1);
  EXPECT_EQ(gone.closing.load(), 0);
  EXPECT_EQ(stays.woken.load(), 2);
  EXPECT_EQ(stays.closing.load(), 1);
}

TEST(EventHubTest, UnsubscribingAnUnknownOrSpentHandleDoesNothing) {
  EventHub hub;
  Calls calls;
  const uint64_t handle = hub.Subscribe("task", calls.Listener());
  hub.Unsubscribe(handle + 1000);
  EXPECT_EQ(hub.watcher_count(), 1u);
  hub.Unsubscribe(handle);
  hub.Unsubscribe(handle);
  EXPECT_EQ(hub.watcher_count(), 0u);
  hub.Notify("task");
  EXPECT_EQ(calls.woken.load(), 0);
  // The task can be watched again after its last watcher left.
  hub.Subscribe("task", calls.Listener());
  hub.Notify("task");
  EXPECT_EQ(calls.woken.load(), 1);
}

TEST(EventHubTest, CloseTellsEveryListenerOnceAndLaterSubscribersAtOnce) {
  EventHub hub;
  Calls a, b;
  hub.Subscribe("task-a", a.Listener());
  hub.Subscribe("task-b", b.Listener());
  hub.Close();
  EXPECT_EQ(a.closing.load(), 1);
  EXPECT_EQ(b.closing.load(), 1);
  EXPECT_EQ(a.woken.load() + b.woken.load(), 0);

  Calls late;
  hub.Subscribe("task-a", late.Listener());
  // Told before Subscribe returned, with closing=true, and only that.
  EXPECT_EQ(late.closing.load(), 1);
  EXPECT_EQ(late.woken.load(), 0);
  hub.Notify("task-a");
  EXPECT_EQ(late.woken.load(), 0);
  EXPECT_EQ(late.closing.load(), 1);
}

TEST(EventHubTest, AfterUnsubscribeReturnsTheListenerIsNotRunning) {
  EventHub hub;
  std::atomic<bool> running{false};
  std::atomic<int> calls{0};
  absl::Notification first_call;
  const uint64_t handle = hub.Subscribe("task", [&](bool) {
    running.store(true);
    // Listeners of one hub never run at once: the check cannot race.
    if (!first_call.HasBeenNotified()) first_call.Notify();
    absl::SleepFor(absl::Milliseconds(2));  // a slow listener
    calls.fetch_add(1);
    running.store(false);
  });
  std::atomic<bool> stop{false};
  std::thread notifier([&] {
    while (!stop.load()) hub.Notify("task");
  });
  first_call.WaitForNotification();
  hub.Unsubscribe(handle);
  EXPECT_FALSE(running.load()) << "the listener ran after Unsubscribe returned";
  const int after_unsubscribe = calls.load();
  absl::SleepFor(absl::Milliseconds(20));  // the notifier keeps notifying
  stop.store(true);
  notifier.join();
  EXPECT_EQ(calls.load(), after_unsubscribe);
  EXPECT_FALSE(running.load());
}

TEST(EventHubTest, ConcurrentSubscribersNotifiersAndUnsubscribers) {
  constexpr int kWatchers = 16;
  constexpr int kNotifies = 200;
  EventHub hub;
  // A notifier on a task nobody watches runs throughout, to contend for the
  // hub's lock.
  std::atomic<bool> stop{false};
  std::thread noise([&] {
    while (!stop.load()) hub.Notify("unwatched");
  });
  std::vector<std::unique_ptr<Calls>> calls;
  for (int i = 0; i < kWatchers; ++i)
    calls.push_back(std::make_unique<Calls>());
  std::vector<std::thread> threads;
  for (int i = 0; i < kWatchers; ++i) {
    threads.emplace_back([&, i] {
      const std::string task = "task-" + std::to_string(i);
      for (int round = 0; round < 5; ++round) {
        const uint64_t handle = hub.Subscribe(task, calls[i]->Listener());
        for (int n = 0; n < kNotifies; ++n) hub.Notify(task);
        hub.Unsubscribe(handle);
        // Not subscribed now: these wake nobody.
        hub.Notify(task);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  stop.store(true);
  noise.join();
  for (int i = 0; i < kWatchers; ++i) {
    EXPECT_EQ(calls[i]->woken.load(), 5 * kNotifies) << "watcher " << i;
    EXPECT_EQ(calls[i]->closing.load(), 0) << "watcher " << i;
  }
  EXPECT_EQ(hub.watcher_count(), 0u);
}

TEST(EventHubTest, CloseDuringConcurrentSubscribesTellsEverySubscriberOnce) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  EventHub hub;
  std::vector<std::unique_ptr<Calls>> calls;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    calls.push_back(std::make_unique<Calls>());
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        hub.Subscribe("task-" + std::to_string(i % 7),
                      calls[t * kPerThread + i]->Listener());
      }
    });
  }
  hub.Close();
  for (std::thread& thread : threads) thread.join();
  // Subscribed before the close or after it, each was told exactly once.
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i]->closing.load(), 1) << "subscriber " << i;
  }
}

}  // namespace
}  // namespace tasktrail
