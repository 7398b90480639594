// GetStats through the Tracker on a real RocksDB store with a manual clock:
// tasks counted by the state they entered, failures by category and origin,
// rejections by reason, duplicates blocked, queue waits over the window, the
// incident hints and their thresholds, counters that survive a reopen, and
// the most frequent unclassified failure messages (windowed, bounded).
#include "service/tracker/stats.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/map.h"
#include "gtest/gtest.h"
#include "service/rules/time_util.h"
#include "service/tracker/tracker.h"
#include "service/tracker/unclassified_budget.h"
#include "tests/tracker/lifecycle_fixture.h"

namespace tasktrail {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

class StatsTrackerTest : public LifecycleFixture {
 protected:
  static int64_t At(const google::protobuf::Map<std::string, int64_t>& map,
                    const std::string& key) {
    auto it = map.find(key);
    return it == map.end() ? 0 : it->second;
  }

  static const v1::ModelStats* Find(const v1::Stats& stats,
                                    const std::string& model) {
    for (const v1::ModelStats& m : stats.models()) {
      if (m.model() == model) return &m;
    }
    return nullptr;
  }

  v1::ModelStats MustFind(absl::Duration window, const std::string& model) {
    auto stats = Stats(window);
    EXPECT_TRUE(stats.ok()) << stats.status();
    if (!stats.ok()) return v1::ModelStats();
    const v1::ModelStats* found = Find(*stats, model);
    EXPECT_NE(found, nullptr) << model;
    return found == nullptr ? v1::ModelStats() : *found;
  }

  void SubmitInvalid(const std::string& model, const std::string& ratio,
                     int32_t duration) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct");
    request.set_model(model);
    request.mutable_params()->set_prompt("waves");
    request.mutable_params()->set_aspect_ratio(ratio);
    request.mutable_params()->set_duration_seconds(duration);
    EXPECT_EQ(AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "")
                  .status()
                  .code(),
              absl::StatusCode::kInvalidArgument);
  }

  // Finishes `count` fresh tasks of `model` with `finish`.
  void Finish(const std::string& model, int count,
              const v1::RecordEventRequest& finish) {
    for (int i = 0; i < count; ++i) {
      const std::string id = Submit(model);
      MustRecord(Queued(), id);
      MustRecord(finish, id);
    }
  }
};

TEST_F(StatsTrackerTest, FailuresAreClassifiedFromWhatTheUpstreamSaid) {
  struct Case {
    const char* name;
    v1::RecordEventRequest failed;
    v1::FailureCategory category;
    v1::FailureOrigin origin;
    bool retryable;
  };
  for (const Case& c : {
           Case{"503_overloaded", Failed(503, "", "upstream overloaded"),
                v1::FAILURE_CATEGORY_UPSTREAM_UNAVAILABLE,
                v1::FAILURE_ORIGIN_PROVIDER, true},
           Case{"401", Failed(401, "", ""), v1::FAILURE_CATEGORY_AUTH,
                v1::FAILURE_ORIGIN_CONFIGURATION, false},
           Case{"429", Failed(429, "", "Too Many Requests"),
                v1::FAILURE_CATEGORY_RATE_LIMITED, v1::FAILURE_ORIGIN_PROVIDER,
                true},
           Case{"policy", Failed(400, "content_policy_violation", "refused"),
                v1::FAILURE_CATEGORY_CONTENT_POLICY,
                v1::FAILURE_ORIGIN_USER_CONTENT, false},
           Case{"quota", Failed(429, "insufficient_quota", "quota"),
                v1::FAILURE_CATEGORY_QUOTA, v1::FAILURE_ORIGIN_CONFIGURATION,
                false},
       }) {
    SCOPED_TRACE(c.name);
    const std::string id = Submit("sora-2");
    MustRecord(c.failed, id);
    const v1::Task task = Get(id);
    EXPECT_EQ(task.failure().category(), c.category);
    EXPECT_EQ(task.failure().origin(), c.origin);
    EXPECT_EQ(task.failure().retryable(), c.retryable);
  }
  const v1::ModelStats stats = MustFind(absl::Minutes(15), "sora-2");
  EXPECT_EQ(At(stats.tasks_by_state(), "FAILED"), 5);
  EXPECT_EQ(At(stats.failures_by_category(), "UPSTREAM_UNAVAILABLE"), 1);
  EXPECT_EQ(At(stats.failures_by_category(), "AUTH"), 1);
  EXPECT_EQ(At(stats.failures_by_category(), "RATE_LIMITED"), 1);
  EXPECT_EQ(At(stats.failures_by_category(), "CONTENT_POLICY"), 1);
  EXPECT_EQ(At(stats.failures_by_category(), "QUOTA"), 1);
  EXPECT_EQ(At(stats.failures_by_origin(), "PROVIDER"), 2);
  EXPECT_EQ(At(stats.failures_by_origin(), "CONFIGURATION"), 2);
  EXPECT_EQ(At(stats.failures_by_origin(), "USER_CONTENT"), 1);
}

TEST_F(StatsTrackerTest, TasksAreCountedByTheStateTheyEntered) {
  const std::string a = Submit();
  const std::string b = Submit();
  const std::string c = Submit();
  MustRecord(Queued(), a);
  MustRecord(Queued(), b);
  MustRecord(Polled(5), a);  // polls do not change the state
  MustRecord(Polled(6), a);
  MustRecord(Started(), a);
  MustRecord(Completed(), a);
  MustRecord(Failed(504, "", "gateway timeout"), b);
  MustRecord(Canceled(), c);
  MustRecord(Refund(0), c);  // a refund does not change the state
  const v1::ModelStats stats = MustFind(absl::Minutes(15), "veo-3");
  EXPECT_EQ(At(stats.tasks_by_state(), "SUBMITTED"), 3);
  EXPECT_EQ(At(stats.tasks_by_state(), "QUEUED"), 2);
  EXPECT_EQ(At(stats.tasks_by_state(), "RUNNING"), 1);
  EXPECT_EQ(At(stats.tasks_by_state(), "SUCCEEDED"), 1);
  EXPECT_EQ(At(stats.tasks_by_state(), "FAILED"), 1);
  EXPECT_EQ(At(stats.tasks_by_state(), "CANCELED"), 1);
  EXPECT_EQ(At(stats.failures_by_category(), "TIMEOUT"), 1);
  EXPECT_EQ(At(stats.failures_by_origin(), "PROVIDER"), 1);
  EXPECT_EQ(stats.failures_by_category_size(), 1);
}

TEST_F(StatsTrackerTest, RejectionsAreCountedByReason) {
  SubmitInvalid("kling-v2-1", "4:3", 5);  // RATIO_UNSUPPORTED
  SubmitInvalid("kling-v2-1", "4:3", 5);
  SubmitInvalid("kling-v2-1", "16:9", 7);  // DURATION_UNSUPPORTED
  SubmitInvalid("kling-v2-1", "4:3", 7);   // both
  // Valid submissions and ValidateTask count no rejection.
  Submit("kling-v2-1");
  v1::ValidateTaskRequest validate;
  validate.set_model("kling-v2-1");
  validate.mutable_params()->set_aspect_ratio("4:3");
  ASSERT_TRUE(tracker_->ValidateTask(validate).ok());

  const v1::ModelStats stats = MustFind(absl::Minutes(15), "kling-v2-1");
  EXPECT_EQ(At(stats.rejections_by_reason(), "RATIO_UNSUPPORTED"), 3);
  EXPECT_EQ(At(stats.rejections_by_reason(), "DURATION_UNSUPPORTED"), 2);
  EXPECT_EQ(stats.rejections_by_reason_size(), 2);
  EXPECT_EQ(At(stats.tasks_by_state(), "SUBMITTED"), 1);
}

TEST_F(StatsTrackerTest, DuplicatesBlockedAreCounted) {
  v1::SubmitTaskRequest request;
  request.set_account_id("acct");
  request.set_model("dall-e-3");
  request.set_request_id("req-1");
  request.mutable_params()->set_prompt("a red bicycle");
  ASSERT_TRUE(AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "").ok());
  auto same_request = AwaitWrite(*tracker_, &Tracker::SubmitTask, request,
                                 "");  // same request_id
  ASSERT_TRUE(same_request.ok());
  EXPECT_TRUE(same_request->deduplicated());
  request.set_request_id("req-2");  // same content, new request_id
  auto same_content = AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "");
  ASSERT_TRUE(same_content.ok());
  EXPECT_TRUE(same_content->deduplicated());
  const v1::ModelStats stats = MustFind(absl::Minutes(15), "dall-e-3");
  EXPECT_EQ(stats.duplicates_blocked(), 2);
  EXPECT_EQ(At(stats.tasks_by_state(), "SUBMITTED"), 1);
}

TEST_F(StatsTrackerTest, EventsOlderThanTheWindowAreNotCounted) {
  Finish("veo-3", 2, Failed(503, "", "overloaded"));
  SubmitInvalid("kling-v2-1", "4:3", 5);
  clock_.Advance(absl::Minutes(20));
  Finish("veo-3", 1, Completed());

  const v1::ModelStats recent = MustFind(absl::Minutes(15), "veo-3");
  EXPECT_EQ(At(recent.tasks_by_state(), "SUBMITTED"), 1);
  EXPECT_EQ(At(recent.tasks_by_state(), "SUCCEEDED"), 1);
  EXPECT_EQ(At(recent.tasks_by_state(), "FAILED"), 0);
  EXPECT_EQ(recent.failures_by_category_size(), 0);
  auto stats = Stats(absl::Minutes(15));
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(Find(*stats, "kling-v2-1"), nullptr);

  // A wider window sees them again.
  const v1::ModelStats wide = MustFind(absl::Minutes(30), "veo-3");
  EXPECT_EQ(At(wide.tasks_by_state(), "SUBMITTED"), 3);
  EXPECT_EQ(At(wide.tasks_by_state(), "FAILED"), 2);
  EXPECT_EQ(At(wide.failures_by_category(), "UPSTREAM_UNAVAILABLE"), 2);
  EXPECT_EQ(At(MustFind(absl::Minutes(30), "kling-v2-1").rejections_by_reason(),
               "RATIO_UNSUPPORTED"),
            1);
}

TEST_F(StatsTrackerTest, ModelFilterKeepsOnlyThatModel) {
  Finish("veo-3", 1, Completed());
  Finish("sora-2", 2, Completed());
  auto stats = Stats(absl::Minutes(15), "sora-2");
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->models_size(), 1);
  EXPECT_EQ(stats->models(0).model(), "sora-2");
  EXPECT_EQ(At(stats->models(0).tasks_by_state(), "SUCCEEDED"), 2);
  auto all = Stats(absl::Minutes(15));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->models_size(), 2);
}

TEST_F(StatsTrackerTest, QueueWaitsCoverTheWindow) {
  QueuedThenStarted("veo-3", absl::Minutes(30));  // leaves the queue at t+30m
  clock_.Advance(absl::Minutes(20));
  for (int i = 1; i <= 10; ++i) {
    QueuedThenStarted("veo-3", absl::Seconds(i));
  }
  const v1::ModelStats stats = MustFind(absl::Minutes(15), "veo-3");
  EXPECT_EQ(FromProtoDuration(stats.queue_wait_p50()), absl::Seconds(5));
  EXPECT_EQ(FromProtoDuration(stats.queue_wait_p90()), absl::Seconds(9));
}

TEST_F(StatsTrackerTest, IncidentNamesTheModelAndTheEvidence) {
  Finish("veo-3", 7, Failed(503, "", "upstream overloaded"));
  Finish("veo-3", 2, Completed());
  Finish("sora-2", 9, Completed());
  auto stats = Stats(absl::Minutes(15));
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->incidents_size(), 1);
  const std::string& incident = stats->incidents(0);
  EXPECT_THAT(incident, HasSubstr("veo-3"));
  EXPECT_THAT(incident, HasSubstr("7 of 9"));
  EXPECT_THAT(incident, HasSubstr("UPSTREAM_UNAVAILABLE 7"));
  EXPECT_THAT(incident, HasSubstr("provider"));
  EXPECT_THAT(incident, Not(HasSubstr("sora-2")));
}

TEST_F(StatsTrackerTest, IncidentThresholds) {
  struct Case {
    const char* name;
    int succeeded;
    int provider_failed;
    int config_failed;
    int canceled;
    bool incident;
  };
  for (const Case& c : {
           Case{"seven_of_nine", 2, 7, 0, 0, true},
           Case{"four_finished", 0, 4, 0, 0, false},
           Case{"five_finished", 0, 5, 0, 0, true},
           Case{"mostly_configuration", 0, 2, 4, 0, false},
           Case{"eighty_percent_provider", 0, 4, 1, 0, true},
           Case{"below_eighty_percent", 0, 3, 1, 0, false},
           Case{"fewer_than_half_failed", 6, 4, 0, 0, false},
           Case{"exactly_half_failed", 5, 5, 0, 0, true},
           Case{"cancels_count_as_finished", 0, 3, 0, 4, false},
       }) {
    SCOPED_TRACE(c.name);
    // Each case in its own 15-minute window.
    clock_.Advance(absl::Hours(1));
    const std::string model = "kling-v2-1";
    Finish(model, c.succeeded, Completed());
    Finish(model, c.provider_failed, Failed(502, "", "bad gateway"));
    Finish(model, c.config_failed, Failed(401, "", "invalid api key"));
    Finish(model, c.canceled, Canceled());
    auto stats = Stats(absl::Minutes(15));
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(stats->incidents_size(), c.incident ? 1 : 0)
        << (stats->incidents_size() > 0 ? stats->incidents(0) : "");
  }
}

TEST_F(StatsTrackerTest, WindowMustBeBetweenOneMinuteAndADay) {
  struct Case {
    absl::Duration window;
    bool ok;
  };
  for (const Case& c :
       {Case{absl::Hours(24), true},
        Case{absl::Hours(24) + absl::Seconds(1), false},
        Case{absl::Hours(48), false}, Case{absl::Minutes(1), true},
        Case{absl::Seconds(59), false}, Case{absl::Seconds(-60), false}}) {
    SCOPED_TRACE(absl::FormatDuration(c.window));
    auto stats = Stats(c.window);
    if (c.ok) {
      EXPECT_TRUE(stats.ok()) << stats.status();
    } else {
      EXPECT_EQ(stats.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
  // No window: the default of 15 minutes.
  v1::GetStatsRequest request;
  auto stats = tracker_->GetStats(request);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(FromProtoDuration(stats->window()), absl::Minutes(15));
}

TEST_F(StatsTrackerTest, CountersSurviveReopen) {
  Finish("veo-3", 5, Failed(503, "", "upstream overloaded"));
  SubmitInvalid("kling-v2-1", "4:3", 5);
  Reopen();
  clock_.Advance(absl::Minutes(1));
  auto stats = Stats(absl::Minutes(15));
  ASSERT_TRUE(stats.ok()) << stats.status();
  const v1::ModelStats* veo = Find(*stats, "veo-3");
  ASSERT_NE(veo, nullptr);
  EXPECT_EQ(At(veo->tasks_by_state(), "FAILED"), 5);
  EXPECT_EQ(At(veo->failures_by_origin(), "PROVIDER"), 5);
  EXPECT_EQ(FromProtoDuration(veo->queue_wait_p90()), absl::ZeroDuration());
  const v1::ModelStats* kling = Find(*stats, "kling-v2-1");
  ASSERT_NE(kling, nullptr);
  EXPECT_EQ(At(kling->rejections_by_reason(), "RATIO_UNSUPPORTED"), 1);
  ASSERT_EQ(stats->incidents_size(), 1);
  EXPECT_THAT(stats->incidents(0), HasSubstr("veo-3"));
}

// Stats grouped by route and by group (GetStatsRequest.group_by), with the
// manual clock: rows that name the model and the route or group, exact
// counts, the route and provider incident sentences, and the run and
// end-to-end percentiles beside the queue waits.
class GroupedStatsTest : public StatsTrackerTest {
 protected:
  // Submits a task of `model` in `group`, queues it on `route`, waits
  // `queued` in the queue, runs `running`, and finishes it with `finish`.
  std::string Run(const std::string& model, const std::string& route,
                  const v1::RecordEventRequest& finish,
                  const std::string& group = "",
                  absl::Duration queued = absl::ZeroDuration(),
                  absl::Duration running = absl::ZeroDuration()) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct");
    request.set_model(model);
    request.set_group(group);
    request.mutable_params()->set_prompt(absl::StrCat("scene ", ++prompts_));
    auto submitted =
        AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "backend");
    EXPECT_TRUE(submitted.ok()) << submitted.status();
    if (!submitted.ok()) return "";
    const std::string id = submitted->task().task_id();
    v1::RecordEventRequest queue = Queued();
    queue.mutable_queued()->set_route(route);
    MustRecord(queue, id);
    clock_.Advance(queued);
    MustRecord(Started(), id);
    clock_.Advance(running);
    MustRecord(finish, id);
    return id;
  }

  absl::StatusOr<v1::Stats> GroupedStats(
      v1::StatsGroupBy group_by, const std::string& model = "",
      absl::Duration window = absl::Minutes(15)) {
    v1::GetStatsRequest request;
    *request.mutable_window() = ToProtoDuration(window);
    request.set_model(model);
    request.set_group_by(group_by);
    return tracker_->GetStats(request);
  }

  // "MODEL/ROUTE-OR-GROUP SUCCEEDED FAILED" of each row.
  static std::vector<std::string> RowLines(const v1::Stats& stats) {
    std::vector<std::string> lines;
    for (const v1::ModelStats& m : stats.models()) {
      lines.push_back(absl::StrCat(m.model(), "/", m.route(), m.group(), " ",
                                   At(m.tasks_by_state(), "SUCCEEDED"), " ",
                                   At(m.tasks_by_state(), "FAILED")));
    }
    return lines;
  }
};

TEST_F(GroupedStatsTest, OneBadRouteAmongHealthyOnesIsARouteProblem) {
  for (int i = 0; i < 9; ++i) {
    Run("kling-v2-1", "key-7", Failed(503, "", "upstream overloaded"));
  }
  Run("kling-v2-1", "key-7", Completed());
  for (int i = 0; i < 12; ++i) Run("kling-v2-1", "key-8", Completed());
  for (int i = 0; i < 6; ++i) Run("veo-3", "vertex-eu", Completed());

  auto stats = GroupedStats(v1::STATS_GROUP_BY_ROUTE);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_THAT(RowLines(*stats),
              ElementsAre("kling-v2-1/key-7 1 9", "kling-v2-1/key-8 12 0",
                          "veo-3/vertex-eu 6 0"));
  EXPECT_EQ(stats->models(0).route(), "key-7");
  EXPECT_EQ(stats->models(0).group(), "");
  EXPECT_EQ(At(stats->models(0).failures_by_origin(), "PROVIDER"), 9);
  EXPECT_EQ(At(stats->models(0).tasks_by_state(), "QUEUED"), 10);
  // Submissions happen before a task has a route.
  EXPECT_EQ(At(stats->models(0).tasks_by_state(), "SUBMITTED"), 0);
  ASSERT_EQ(stats->incidents_size(), 1);
  EXPECT_EQ(stats->incidents(0),
            "route key-7 of kling-v2-1: 9 of 10 finished tasks failed in the "
            "last 15m, all provider-side (UPSTREAM_UNAVAILABLE 9) — other "
            "routes of the model are fine (key-8: 0 of 12 failed): a route "
            "or key problem, not the provider");

  // By model the same counts read as a provider incident of the model
  // only when the model as a whole looks like one: 9 of 22 does not.
  auto by_model = Stats(absl::Minutes(15));
  ASSERT_TRUE(by_model.ok()) << by_model.status();
  EXPECT_THAT(RowLines(*by_model),
              ElementsAre("kling-v2-1/ 13 9", "veo-3/ 6 0"));
  EXPECT_EQ(by_model->incidents_size(), 0);

  // Fifteen minutes later the window holds none of it.
  clock_.Advance(absl::Minutes(17));
  auto later = GroupedStats(v1::STATS_GROUP_BY_ROUTE);
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ(later->models_size(), 0);
  EXPECT_EQ(later->incidents_size(), 0);
}

TEST_F(GroupedStatsTest, AllRoutesBadIsTheProvider) {
  for (const char* route : {"key-7", "key-8"}) {
    for (int i = 0; i < 6; ++i) {
      Run("kling-v2-1", route, Failed(503, "", "upstream overloaded"));
    }
  }
  auto stats = GroupedStats(v1::STATS_GROUP_BY_ROUTE);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_THAT(RowLines(*stats),
              ElementsAre("kling-v2-1/key-7 0 6", "kling-v2-1/key-8 0 6"));
  ASSERT_EQ(stats->incidents_size(), 1);
  EXPECT_EQ(stats->incidents(0),
            "kling-v2-1: 12 of 12 finished tasks failed in the last 15m, all "
            "provider-side (UPSTREAM_UNAVAILABLE 12) — likely a provider "
            "incident, not configuration");
}

TEST_F(GroupedStatsTest, RowsByGroupNameTheModelAndTheGroup) {
  for (int i = 0; i < 5; ++i) {
    Run("veo-3", "vertex-eu", Failed(503, "", "upstream overloaded"), "vip");
  }
  Run("veo-3", "vertex-eu", Completed(), "default");
  Run("veo-3", "vertex-eu", Completed());  // no group: in no group's row
  auto stats = GroupedStats(v1::STATS_GROUP_BY_GROUP);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_THAT(RowLines(*stats),
              ElementsAre("veo-3/default 1 0", "veo-3/vip 0 5"));
  EXPECT_EQ(stats->models(1).group(), "vip");
  EXPECT_EQ(stats->models(1).route(), "");
  EXPECT_EQ(At(stats->models(1).tasks_by_state(), "SUBMITTED"), 5);
  ASSERT_EQ(stats->incidents_size(), 1);
  EXPECT_THAT(stats->incidents(0),
              HasSubstr("group vip of veo-3: 5 of 5 finished tasks failed"));
  // Rows by model are not changed by the rows beside them.
  auto by_model = Stats(absl::Minutes(15));
  ASSERT_TRUE(by_model.ok()) << by_model.status();
  EXPECT_THAT(RowLines(*by_model), ElementsAre("veo-3/ 2 5"));
  EXPECT_EQ(At(by_model->models(0).tasks_by_state(), "SUBMITTED"), 7);
}

TEST_F(GroupedStatsTest, RunAndEndToEndTimesPerModelRouteAndGroup) {
  // key-7: queued 10 s, running 1..5 min; key-8: queued 20 s, running 10 min.
  // All of it, one task after the other, within the last hour.
  for (int i = 1; i <= 5; ++i) {
    Run("kling-v2-1", "key-7", Completed(), "vip", absl::Seconds(10),
        absl::Minutes(i));
  }
  Run("kling-v2-1", "key-8", Completed(), "vip", absl::Seconds(20),
      absl::Minutes(10));

  auto by_route = GroupedStats(v1::STATS_GROUP_BY_ROUTE, "", absl::Hours(1));
  ASSERT_TRUE(by_route.ok()) << by_route.status();
  ASSERT_EQ(by_route->models_size(), 2);
  const v1::ModelStats& key7 = by_route->models(0);
  EXPECT_EQ(key7.route(), "key-7");
  EXPECT_EQ(FromProtoDuration(key7.queue_wait_p50()), absl::Seconds(10));
  EXPECT_EQ(FromProtoDuration(key7.run_time_p50()), absl::Minutes(3));
  EXPECT_EQ(FromProtoDuration(key7.run_time_p90()), absl::Minutes(5));
  EXPECT_EQ(FromProtoDuration(key7.end_to_end_p50()),
            absl::Minutes(3) + absl::Seconds(10));
  const v1::ModelStats& key8 = by_route->models(1);
  EXPECT_EQ(FromProtoDuration(key8.queue_wait_p90()), absl::Seconds(20));
  EXPECT_EQ(FromProtoDuration(key8.run_time_p50()), absl::Minutes(10));
  EXPECT_EQ(FromProtoDuration(key8.end_to_end_p90()),
            absl::Minutes(10) + absl::Seconds(20));

  // The model and its one group hold all six tasks.
  for (const v1::StatsGroupBy group_by :
       {v1::STATS_GROUP_BY_MODEL, v1::STATS_GROUP_BY_GROUP}) {
    auto stats = GroupedStats(group_by, "", absl::Hours(1));
    ASSERT_TRUE(stats.ok()) << stats.status();
    ASSERT_EQ(stats->models_size(), 1);
    const v1::ModelStats& row = stats->models(0);
    // Nearest rank over {1, 2, 3, 4, 5, 10} min and {10 s x5, 20 s}.
    EXPECT_EQ(FromProtoDuration(row.run_time_p50()), absl::Minutes(3));
    EXPECT_EQ(FromProtoDuration(row.run_time_p90()), absl::Minutes(10));
    EXPECT_EQ(FromProtoDuration(row.queue_wait_p50()), absl::Seconds(10));
    EXPECT_EQ(FromProtoDuration(row.queue_wait_p90()), absl::Seconds(20));
  }

  // A task that never started has an end-to-end time and no run time.
  clock_.Advance(absl::Hours(1));
  const std::string id = Submit("veo-3");
  clock_.Advance(absl::Minutes(2));
  MustRecord(Failed(503, "", "upstream overloaded"), id);
  const v1::ModelStats veo = MustFind(absl::Minutes(15), "veo-3");
  EXPECT_EQ(FromProtoDuration(veo.end_to_end_p50()), absl::Minutes(2));
  EXPECT_EQ(FromProtoDuration(veo.run_time_p50()), absl::ZeroDuration());
}

TEST_F(GroupedStatsTest, LateResultsAndDuplicatesCountOnTheRoute) {
  const std::string id =
      Run("kling-v2-1", "key-7", Failed(503, "", "upstream overloaded"));
  v1::RecordEventRequest late;
  late.mutable_late_result()->add_result_uris("https://cdn.example.com/l.mp4");
  MustRecord(late, id);
  Run("kling-v2-1", "key-8", Completed());
  auto stats = GroupedStats(v1::STATS_GROUP_BY_ROUTE, "kling-v2-1");
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->models_size(), 2);
  EXPECT_EQ(At(stats->models(0).late_results(), "SUCCEEDED"), 1);
  EXPECT_EQ(At(stats->models(1).late_results(), "SUCCEEDED"), 0);
}

TEST_F(GroupedStatsTest, AnUnknownGroupByIsRefusedNamingIt) {
  auto stats = GroupedStats(static_cast<v1::StatsGroupBy>(9));
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(stats.status().ToString(), HasSubstr("group_by"));
}

// Records one failure of a fresh task of `model` that no rule recognises.
class UnclassifiedStatsTest : public StatsTrackerTest {
 protected:
  void FailUnrecognised(const std::string& model, const std::string& message) {
    const std::string id = Submit(model);
    auto failed = Record(Failed(0, "", message), id);
    ASSERT_TRUE(failed.ok()) << failed.status();
    ASSERT_EQ(failed->task().failure().rule(), "") << message;
  }

  // "MESSAGE COUNT" of each unclassified line of `model` over `window`.
  std::vector<std::string> Lines(absl::Duration window,
                                 const std::string& model = "veo-3") {
    const v1::ModelStats stats = MustFind(window, model);
    std::vector<std::string> lines;
    for (const v1::UnclassifiedMessage& line : stats.unclassified()) {
      lines.push_back(absl::StrCat(line.message(), " ", line.count()));
    }
    return lines;
  }
};

TEST_F(UnclassifiedStatsTest, TopFiveMostFrequentFirstTiesInByteOrder) {
  FailUnrecognised("veo-3",
                   "sampler wandered off on job "
                   "550e8400-e29b-41d4-a716-446655440000");
  FailUnrecognised("veo-3",
                   "sampler wandered off on job "
                   "9b1d2e44-aaaa-4bbb-8ccc-0123456789ab");
  FailUnrecognised("veo-3", "sampler wandered off on job 7f3a9c21");
  for (const char* message :
       {"palette underflow", "gpu melted", "palette underflow", "gpu melted",
        "frames out of order", "codec handshake refused", "zebra stripes",
        "audio track went missing"}) {
    FailUnrecognised("veo-3", message);
  }
  Finish("veo-3", 2, Failed(503, "", ""));  // recognised: not listed
  FailUnrecognised("kling-v2-1", "palette underflow");

  EXPECT_THAT(Lines(absl::Minutes(15)),
              ElementsAre("sampler wandered off on job <id> 3", "gpu melted 2",
                          "palette underflow 2", "audio track went missing 1",
                          "codec handshake refused 1"));
  EXPECT_THAT(Lines(absl::Minutes(15), "kling-v2-1"),
              ElementsAre("palette underflow 1"));
  // Filtered by model, the same lines.
  auto one = Stats(absl::Minutes(15), "veo-3");
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->models_size(), 1);
  EXPECT_EQ(one->models(0).unclassified_size(), 5);
}

TEST_F(UnclassifiedStatsTest, TheWindowAppliesAndCountsSurviveReopen) {
  FailUnrecognised("veo-3", "gpu melted at 91 C");
  clock_.Advance(absl::Minutes(30));
  FailUnrecognised("veo-3", "gpu melted at 97 C");
  FailUnrecognised("veo-3", "palette underflow");
  EXPECT_THAT(Lines(absl::Minutes(15)),
              ElementsAre("gpu melted at <n> C 1", "palette underflow 1"));
  EXPECT_THAT(Lines(absl::Hours(1)),
              ElementsAre("gpu melted at <n> C 2", "palette underflow 1"));
  Reopen();
  EXPECT_THAT(Lines(absl::Hours(1)),
              ElementsAre("gpu melted at <n> C 2", "palette underflow 1"));
}

TEST_F(UnclassifiedStatsTest, DistinctMessagesPerMinuteAreCapped) {
  for (int i = 0; i < kMaxUnclassifiedPerMinute + 3; ++i) {
    // Letters, not numbers: normalisation cannot fold them.
    FailUnrecognised("veo-3", std::string("worker ") +
                                  static_cast<char>('a' + i) + " fell over");
  }
  std::vector<std::string> lines = Lines(absl::Minutes(15));
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], absl::StrCat(kOtherUnclassifiedMessages, " 3"));
  // Another minute has its own budget (a window of 1m also covers the
  // minute before the current one).
  clock_.Advance(absl::Minutes(2));
  FailUnrecognised("veo-3", "worker z fell over");
  EXPECT_THAT(Lines(absl::Minutes(1)), ElementsAre("worker z fell over 1"));
}

TEST(AddTopUnclassifiedTest, KeepsTheFiveMostFrequent) {
  const std::map<std::string, int64_t> counts = {
      {"b", 4}, {"a", 4}, {"c", 9}, {"d", 1}, {"e", 2}, {"f", 2}, {"g", 3}};
  v1::ModelStats stats;
  AddTopUnclassified(counts, &stats);
  std::vector<std::string> lines;
  for (const v1::UnclassifiedMessage& line : stats.unclassified()) {
    lines.push_back(absl::StrCat(line.message(), " ", line.count()));
  }
  EXPECT_THAT(lines, ElementsAre("c 9", "a 4", "b 4", "g 3", "e 2"));
  v1::ModelStats none;
  AddTopUnclassified({}, &none);
  EXPECT_EQ(none.unclassified_size(), 0);
}

TEST(UnclassifiedBudgetTest, AdmitsAFewDistinctMessagesPerModelAndMinute) {
  UnclassifiedBudget budget(/*max_per_minute=*/2);
  EXPECT_EQ(budget.Admit(100, "veo-3", "a"), "a");
  EXPECT_EQ(budget.Admit(100, "veo-3", "b"), "b");
  EXPECT_EQ(budget.Admit(100, "veo-3", "c"), kOtherUnclassifiedMessages);
  EXPECT_EQ(budget.Admit(100, "veo-3", "a"), "a");   // admitted before
  EXPECT_EQ(budget.Admit(100, "sora-2", "c"), "c");  // another model
  EXPECT_EQ(budget.Admit(101, "veo-3", "c"), "c");   // another minute
  EXPECT_EQ(budget.Admit(100, "veo-3", "d"), kOtherUnclassifiedMessages);
  // Minutes more than one away are forgotten.
  EXPECT_EQ(budget.Admit(105, "veo-3", "x"), "x");
  EXPECT_EQ(budget.Admit(100, "veo-3", "d"), "d");
}

}  // namespace
}  // namespace tasktrail
