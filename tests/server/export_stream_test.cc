// Tests of RunWhenIdleOrAfter (service/server/export_stream.h), which picks
// the thread that reads an export's page while the server is busy: the work
// runs exactly once, on the SCHED_IDLE pool when that pool's thread gets to
// it, and on the normal pool once the patience has run out when it does not
// (a machine that other processes keep busy starves a SCHED_IDLE thread).
#include "service/server/export_stream.h"

#include <pthread.h>

#include <atomic>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "service/server/work_pool.h"

namespace tasktrail {
namespace {

std::string ThreadName() {
  char buffer[16] = {};
  pthread_getname_np(pthread_self(), buffer, sizeof(buffer));
  return buffer;
}

TEST(RunWhenIdleOrAfterTest, RunsOnceOnTheIdlePoolWhenItsThreadIsFree) {
  std::atomic<int> runs{0};
  std::string ran_on;
  {
    WorkPool normal(1, WorkPool::Options{"tt-export"});
    WorkPool idle(1, WorkPool::Options{"tt-export-idle", /*idle=*/true});
    absl::Notification ran;
    // An infinite patience: the normal pool's closure returns only because
    // the idle pool took the work (or the destructor below never returns).
    RunWhenIdleOrAfter(&idle, &normal, absl::InfiniteDuration(), [&] {
      ran_on = ThreadName();
      runs.fetch_add(1);
      ran.Notify();
    });
    ran.WaitForNotification();
  }  // both pools drained and joined
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(ran_on, "tt-export-idle");
}

TEST(RunWhenIdleOrAfterTest, RunsOnceOnTheNormalPoolWhenTheIdleOneIsStuck) {
  std::atomic<int> runs{0};
  std::string ran_on;
  {
    WorkPool normal(1, WorkPool::Options{"tt-export"});
    WorkPool idle(1, WorkPool::Options{"tt-export-idle", /*idle=*/true});
    // The idle pool's one thread is held until the work has run elsewhere,
    // as a SCHED_IDLE thread is on a machine with no idle CPU.
    absl::Notification ran;
    idle.Schedule([&] { ran.WaitForNotification(); });
    RunWhenIdleOrAfter(&idle, &normal, absl::Milliseconds(20), [&] {
      ran_on = ThreadName();
      runs.fetch_add(1);
      ran.Notify();
    });
    ran.WaitForNotification();
  }  // the idle pool's closure then runs and must not run the work again
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(ran_on, "tt-export");
}

TEST(RunWhenIdleOrAfterTest, EachOfManyWorksRunsExactlyOnce) {
  constexpr int kWorks = 500;
  std::atomic<int> runs[kWorks] = {};
  {
    WorkPool normal(1, WorkPool::Options{"tt-export"});
    WorkPool idle(1, WorkPool::Options{"tt-export-idle", /*idle=*/true});
    // A patience of zero: both closures race for every work.
    for (int i = 0; i < kWorks; ++i) {
      RunWhenIdleOrAfter(&idle, &normal, absl::ZeroDuration(),
                         [&runs, i] { runs[i].fetch_add(1); });
    }
  }
  for (int i = 0; i < kWorks; ++i) EXPECT_EQ(runs[i].load(), 1) << i;
}

}  // namespace
}  // namespace tasktrail
