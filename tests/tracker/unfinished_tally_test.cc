// UnfinishedTally: the unfinished tasks by model and state and the stalled
// ones, kept up to date from the Tracker's observer and loaded again from
// the store after a restart. Through the Tracker on a real RocksDB store
// with a manual clock.
#include "service/tracker/unfinished_tally.h"

#include <string>
#include <utility>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "service/tracker/tracker_observer.h"
#include "tests/tracker/lifecycle_fixture.h"

namespace tasktrail {
namespace {

// Tells a tally of every write; ignores the rest.
class TallyObserver final : public TrackerObserver {
 public:
  explicit TallyObserver(UnfinishedTally* tally) : tally_(tally) {}
  void OnSubmitted(absl::string_view) override {}
  void OnStateEntered(absl::string_view, v1::TaskState) override {}
  void OnFailed(absl::string_view, v1::FailureCategory,
                v1::FailureOrigin) override {}
  void OnDuplicateBlocked(absl::string_view, v1::DedupReason) override {}
  void OnRejected(absl::string_view, absl::Span<const std::string>) override {}
  void OnRefunded(absl::string_view) override {}
  void OnTaskWritten(absl::string_view task_id, absl::string_view model,
                     v1::TaskState state,
                     absl::Time last_upstream_event) override {
    tally_->Update(task_id, model, state, last_upstream_event);
  }
  void OnLeftQueue(absl::string_view, absl::Duration) override {}

 private:
  UnfinishedTally* const tally_;
};

using Counts = std::map<std::pair<std::string, v1::TaskState>, int64_t>;
using Stalled = std::map<std::string, int64_t>;

class UnfinishedTallyTest : public LifecycleFixture {
 protected:
  UnfinishedTallyTest() { tracker_options_.observer = &observer_; }

  UnfinishedTally tally_{absl::Minutes(5)};  // the default stale_after
  TallyObserver observer_{&tally_};
};

TEST_F(UnfinishedTallyTest, CountsFollowTheWritesAndStallsFollowTheClock) {
  const std::string queued = Submit("veo-3");
  Submit("veo-3");
  Submit("kling-v2-1");
  MustRecord(Queued(), queued);
  UnfinishedCounts counts = tally_.Count(clock_.Now());
  EXPECT_EQ(counts.by_model_state,
            (Counts{{{"kling-v2-1", v1::TASK_STATE_SUBMITTED}, 1},
                    {{"veo-3", v1::TASK_STATE_SUBMITTED}, 1},
                    {{"veo-3", v1::TASK_STATE_QUEUED}, 1}}));
  EXPECT_TRUE(counts.stalled_by_model.empty());

  // No upstream event for longer than stale_after: the queued task stalls
  // (submitted ones wait for the upstream and never do).
  clock_.Advance(absl::Minutes(5));
  EXPECT_TRUE(tally_.Count(clock_.Now()).stalled_by_model.empty());
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(tally_.Count(clock_.Now()).stalled_by_model,
            (Stalled{{"veo-3", 1}}));

  // A poll brings it back; a failure takes it out.
  MustRecord(Polled(10), queued);
  EXPECT_TRUE(tally_.Count(clock_.Now()).stalled_by_model.empty());
  MustRecord(Failed(503, "", "overloaded"), queued);
  EXPECT_EQ(tally_.Count(clock_.Now()).by_model_state,
            (Counts{{{"kling-v2-1", v1::TASK_STATE_SUBMITTED}, 1},
                    {{"veo-3", v1::TASK_STATE_SUBMITTED}, 1}}));
}

TEST_F(UnfinishedTallyTest, LoadingFromTheStoreGivesWhatTheWritesGave) {
  for (int i = 0; i < 4; ++i) {
    const std::string id = Submit(i % 2 == 0 ? "veo-3" : "sora-2");
    if (i < 2) MustRecord(Queued(), id);
    if (i == 0) MustRecord(Started(), id);
  }
  const std::string done = Submit("veo-3");
  MustRecord(Failed(400, "", "bad"), done);
  clock_.Advance(absl::Minutes(10));
  const UnfinishedCounts live = tally_.Count(clock_.Now());

  Reopen();
  UnfinishedTally loaded(absl::Minutes(5));
  ASSERT_TRUE(loaded.Load(*tracker_).ok());
  const UnfinishedCounts reloaded = loaded.Count(clock_.Now());
  EXPECT_EQ(reloaded.by_model_state, live.by_model_state);
  EXPECT_EQ(reloaded.stalled_by_model, live.stalled_by_model);
  EXPECT_EQ(reloaded.by_model_state,
            (Counts{{{"sora-2", v1::TASK_STATE_QUEUED}, 1},
                    {{"sora-2", v1::TASK_STATE_SUBMITTED}, 1},
                    {{"veo-3", v1::TASK_STATE_RUNNING}, 1},
                    {{"veo-3", v1::TASK_STATE_SUBMITTED}, 1}}));
  EXPECT_EQ(reloaded.stalled_by_model, (Stalled{{"sora-2", 1}, {"veo-3", 1}}));
}

}  // namespace
}  // namespace tasktrail
