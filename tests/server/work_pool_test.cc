// Tests of WorkPool (service/server/work_pool.h): every closure runs, on up
// to `threads` threads at once named "tt-write", Schedule works from any
// thread (including the pool's own), queued() counts what has not started,
// and the destructor runs what was scheduled before joining; a background
// pool's threads run at nice 19 under their own name.
#include "service/server/work_pool.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace tasktrail {
namespace {

TEST(WorkPoolTest, RunsEveryClosureScheduledFromManyThreads) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  std::atomic<int> ran{0};
  absl::BlockingCounter done(kThreads * kPerThread);
  WorkPool pool(3);
  std::vector<std::thread> schedulers;
  for (int t = 0; t < kThreads; ++t) {
    schedulers.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        pool.Schedule([&] {
          ran.fetch_add(1);
          done.DecrementCount();
        });
      }
    });
  }
  for (std::thread& thread : schedulers) thread.join();
  done.Wait();
  EXPECT_EQ(ran.load(), kThreads * kPerThread);
  EXPECT_EQ(pool.queued(), 0u);
}

TEST(WorkPoolTest, RunsUpToItsThreadCountAtOnce) {
  constexpr int kThreads = 4;
  WorkPool pool(kThreads);
  // Each closure waits until all kThreads have started: this finishes only
  // if the pool runs kThreads closures at the same time.
  absl::BlockingCounter started(kThreads);
  absl::Notification all_started;
  absl::BlockingCounter finished(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    pool.Schedule([&] {
      started.DecrementCount();
      all_started.WaitForNotificationWithTimeout(absl::Seconds(10));
      finished.DecrementCount();
    });
  }
  std::thread waiter([&] {
    started.Wait();
    all_started.Notify();
  });
  EXPECT_TRUE(all_started.WaitForNotificationWithTimeout(absl::Seconds(10)))
      << "fewer than " << kThreads << " closures ran at once";
  finished.Wait();
  waiter.join();
}

TEST(WorkPoolTest, QueuedCountsClosuresNotYetStarted) {
  absl::Notification release;
  absl::Notification first_started;
  std::atomic<int> ran{0};
  WorkPool pool(1);
  EXPECT_EQ(pool.queued(), 0u);
  pool.Schedule([&] {
    first_started.Notify();
    release.WaitForNotification();
    ran.fetch_add(1);
  });
  first_started.WaitForNotification();
  // The running closure is no longer queued.
  EXPECT_EQ(pool.queued(), 0u);
  for (int i = 0; i < 5; ++i) pool.Schedule([&] { ran.fetch_add(1); });
  EXPECT_EQ(pool.queued(), 5u);
  EXPECT_EQ(ran.load(), 0);
  release.Notify();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while ((ran.load() < 6 || pool.queued() != 0) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(ran.load(), 6);
  EXPECT_EQ(pool.queued(), 0u);
}

TEST(WorkPoolTest, TheDestructorRunsWhatWasScheduledThenJoins) {
  constexpr int kQueued = 50;
  std::atomic<int> ran{0};
  absl::Notification release;
  absl::Notification first_started;
  std::atomic<bool> one_started{false};
  std::thread releaser;
  {
    WorkPool pool(2);
    // Both threads busy, so that everything after stays queued.
    for (int i = 0; i < 2; ++i) {
      pool.Schedule([&] {
        if (!one_started.exchange(true)) first_started.Notify();
        release.WaitForNotification();
        ran.fetch_add(1);
      });
    }
    first_started.WaitForNotification();
    for (int i = 0; i < kQueued; ++i) {
      pool.Schedule([&] {
        absl::SleepFor(absl::Microseconds(100));
        ran.fetch_add(1);
      });
    }
    EXPECT_GE(pool.queued(), static_cast<size_t>(kQueued));
    // Let the blocked closures go only once the destructor is under way.
    releaser = std::thread([&] {
      absl::SleepFor(absl::Milliseconds(50));
      release.Notify();
    });
  }  // ~WorkPool
  // Every closure ran, and none is still running: the threads were joined.
  EXPECT_EQ(ran.load(), 2 + kQueued);
  releaser.join();
}

TEST(WorkPoolTest, AClosureMayScheduleMoreWork) {
  std::atomic<int> ran{0};
  absl::Notification done;
  WorkPool pool(1);
  pool.Schedule([&] {
    ran.fetch_add(1);
    pool.Schedule([&] {
      ran.fetch_add(1);
      done.Notify();
    });
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(ran.load(), 2);
}

TEST(WorkPoolTest, ItsThreadsAreNamedTtWrite) {
  std::string name;
  absl::Notification done;
  {
    WorkPool pool(1);
    pool.Schedule([&] {
      char buffer[16] = {};
      pthread_getname_np(pthread_self(), buffer, sizeof(buffer));
      name = buffer;
      done.Notify();
    });
    done.WaitForNotification();
  }
  EXPECT_EQ(name, "tt-write");
}

TEST(WorkPoolTest, ABackgroundPoolRunsAtNice19UnderItsName) {
  std::string name;
  int policy = -1;
  int nice_value = 0;
  {
    WorkPool pool(1, WorkPool::Options{"tt-export", /*background=*/true});
    absl::Notification done;
    pool.Schedule([&] {
      char buffer[16] = {};
      pthread_getname_np(pthread_self(), buffer, sizeof(buffer));
      name = buffer;
      sched_param param{};
      pthread_getschedparam(pthread_self(), &policy, &param);
      nice_value =
          getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
      done.Notify();
    });
    done.WaitForNotification();
  }
  EXPECT_EQ(name, "tt-export");
  EXPECT_EQ(policy, SCHED_OTHER);
  EXPECT_EQ(nice_value, 19);
}

TEST(WorkPoolTest, MoveOnlyClosuresRun) {
  auto value = std::make_unique<int>(41);
  std::atomic<int> seen{0};
  {
    WorkPool pool(1);
    pool.Schedule([value = std::move(value), &seen]() mutable {
      seen.store(*value + 1);
      value.reset();
    });
  }
  EXPECT_EQ(seen.load(), 42);
}

}  // namespace
}  // namespace tasktrail
