// Tests of ExportPacer (service/tracker/export_pacer.h) on a manual clock:
// no wait while the server is quiet and the idle rate is unlimited, the busy
// rate once a foreground call is seen, back to full speed once the server
// has been quiet for quiet_after, and an idle rate when one is set.
#include "service/tracker/export_pacer.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "service/rules/clock.h"

namespace tasktrail {
namespace {

ExportPacer::Options Busy1000() {
  ExportPacer::Options options;
  options.busy_tasks_per_second = 1000;
  options.idle_tasks_per_second = 0;
  options.quiet_after = absl::Milliseconds(500);
  return options;
}

TEST(ExportPacerTest, QuietServerReadsWithoutWaiting) {
  ManualClock clock(absl::FromUnixSeconds(1'800'000'000));
  ExportPacer pacer(&clock, Busy1000());
  for (int page = 0; page < 100; ++page) {
    EXPECT_EQ(pacer.WaitBeforeRead(), absl::ZeroDuration());
    pacer.Charge(128);
  }
  EXPECT_FALSE(pacer.Busy());
}

TEST(ExportPacerTest, ForegroundCallsHoldExportsToTheBusyRate) {
  ManualClock clock(absl::FromUnixSeconds(1'800'000'000));
  ExportPacer pacer(&clock, Busy1000());
  pacer.ForegroundCall();
  EXPECT_TRUE(pacer.Busy());
  EXPECT_EQ(pacer.WaitBeforeRead(), absl::ZeroDuration());
  pacer.Charge(100);  // 100 tasks at 1000/s: 100 ms
  EXPECT_EQ(pacer.WaitBeforeRead(), absl::Milliseconds(100));
  clock.Advance(absl::Milliseconds(40));
  pacer.ForegroundCall();
  EXPECT_EQ(pacer.WaitBeforeRead(), absl::Milliseconds(60));
  clock.Advance(absl::Milliseconds(60));
  EXPECT_EQ(pacer.WaitBeforeRead(), absl::ZeroDuration());
  // Pages charged back to back add up.
  pacer.Charge(50);
  pacer.Charge(50);
  EXPECT_EQ(pacer.WaitBeforeRead(), absl::Milliseconds(100));
}

TEST(ExportPacerTest, QuietForQuietAfterLiftsTheLimit) {
  ManualClock clock(absl::FromUnixSeconds(1'800'000'000));
  ExportPacer pacer(&clock, Busy1000());
  pacer.ForegroundCall();
  pacer.WaitBeforeRead();
  pacer.Charge(1000);  // a second's budget
  clock.Advance(absl::Milliseconds(499));
  EXPECT_TRUE(pacer.Busy());
  EXPECT_GT(pacer.WaitBeforeRead(), absl::ZeroDuration());
  clock.Advance(absl::Milliseconds(1));
  EXPECT_FALSE(pacer.Busy());
  EXPECT_EQ(pacer.WaitBeforeRead(), absl::ZeroDuration());
  // The debt is not carried into the next busy spell.
  pacer.Charge(1000);
  pacer.ForegroundCall();
  EXPECT_EQ(pacer.WaitBeforeRead(), absl::ZeroDuration());
}

TEST(ExportPacerTest, IdleRateLimitsAQuietServer) {
  ManualClock clock(absl::FromUnixSeconds(1'800'000'000));
  ExportPacer::Options options = Busy1000();
  options.idle_tasks_per_second = 10000;
  ExportPacer pacer(&clock, options);
  pacer.Charge(500);
  EXPECT_EQ(pacer.WaitBeforeRead(), absl::Milliseconds(50));
}

TEST(ExportPacerTest, ZeroBusyRateMeansNoLimit) {
  ManualClock clock(absl::FromUnixSeconds(1'800'000'000));
  ExportPacer::Options options = Busy1000();
  options.busy_tasks_per_second = 0;
  ExportPacer pacer(&clock, options);
  pacer.ForegroundCall();
  pacer.Charge(100000);
  EXPECT_EQ(pacer.WaitBeforeRead(), absl::ZeroDuration());
}

}  // namespace
}  // namespace tasktrail
