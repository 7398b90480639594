// The incident rules of GetStats on plain inputs: when a row looks like a
// provider incident, and by route, when one bad route among healthy routes
// of a model is a route or key problem rather than the provider.
#include "service/rules/incidents.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tasktrail {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// `failed` provider failures (UPSTREAM_UNAVAILABLE) and `succeeded`
// successes.
FailureEvidence Rows(int64_t succeeded, int64_t failed) {
  FailureEvidence evidence;
  evidence.finished = succeeded + failed;
  evidence.failed = failed;
  evidence.provider_failed = failed;
  if (failed > 0) {
    evidence.failures_by_category = {{"UPSTREAM_UNAVAILABLE", failed}};
  }
  return evidence;
}

FailureEvidence Sum(const std::vector<RouteEvidence>& routes) {
  FailureEvidence total;
  int64_t unavailable = 0;
  for (const RouteEvidence& route : routes) {
    total.finished += route.evidence.finished;
    total.failed += route.evidence.failed;
    total.provider_failed += route.evidence.provider_failed;
    for (const auto& [category, count] : route.evidence.failures_by_category) {
      if (category == "UPSTREAM_UNAVAILABLE") unavailable += count;
    }
  }
  if (unavailable > 0) {
    total.failures_by_category = {{"UPSTREAM_UNAVAILABLE", unavailable}};
  }
  return total;
}

const absl::Duration kWindow = absl::Minutes(15);

TEST(IncidentRulesTest, ProviderThresholds) {
  struct Case {
    const char* name;
    FailureEvidence evidence;
    bool incident;
    bool healthy;
  };
  FailureEvidence mostly_configuration = Rows(0, 6);
  mostly_configuration.provider_failed = 4;  // 4 of 6: below 80 %
  FailureEvidence eighty_percent = Rows(0, 5);
  eighty_percent.provider_failed = 4;
  for (const Case& c : {
           Case{"four_finished", Rows(0, 4), false, false},
           Case{"five_finished", Rows(0, 5), true, false},
           Case{"exactly_half", Rows(5, 5), true, false},
           Case{"fewer_than_half", Rows(6, 5), false, true},
           Case{"below_eighty_percent", mostly_configuration, false, true},
           Case{"eighty_percent", eighty_percent, true, false},
           Case{"all_fine", Rows(12, 0), false, true},
       }) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(LooksLikeProviderIncident(c.evidence), c.incident);
    EXPECT_EQ(IsHealthyRow(c.evidence), c.healthy);
    EXPECT_EQ(
        ProviderIncidentSentence("kling-v2-1", c.evidence, kWindow).has_value(),
        c.incident);
  }
}

TEST(IncidentRulesTest, TheProviderSentenceNamesTheRowAndTheEvidence) {
  FailureEvidence evidence = Rows(2, 7);
  evidence.failures_by_category = {
      {"TIMEOUT", 2}, {"UPSTREAM_UNAVAILABLE", 5}, {"PARAMETER_REJECTED", 0}};
  EXPECT_EQ(*ProviderIncidentSentence("group vip of veo-3", evidence, kWindow),
            "group vip of veo-3: 7 of 9 finished tasks failed in the last "
            "15m, all provider-side (UPSTREAM_UNAVAILABLE 5, TIMEOUT 2) — "
            "likely a provider incident, not configuration");
}

TEST(IncidentRulesTest, OneBadRouteAmongHealthyOnesIsARouteProblem) {
  const std::vector<RouteEvidence> routes = {
      {"key-7", Rows(1, 9)}, {"key-8", Rows(12, 0)}, {"key-9", Rows(6, 1)}};
  const std::vector<std::string> sentences =
      RouteIncidentSentences("kling-v2-1", routes, Sum(routes), kWindow);
  ASSERT_THAT(sentences, SizeIs(1));
  EXPECT_EQ(sentences[0],
            "route key-7 of kling-v2-1: 9 of 10 finished tasks failed in the "
            "last 15m, all provider-side (UPSTREAM_UNAVAILABLE 9) — other "
            "routes of the model are fine (key-8: 0 of 12 failed, key-9: 1 "
            "of 7 failed): a route or key problem, not the provider");
}

TEST(IncidentRulesTest, AllRoutesBadIsTheProvider) {
  const std::vector<RouteEvidence> routes = {{"key-7", Rows(1, 9)},
                                             {"key-8", Rows(0, 6)}};
  const std::vector<std::string> sentences =
      RouteIncidentSentences("kling-v2-1", routes, Sum(routes), kWindow);
  ASSERT_THAT(sentences, SizeIs(1));
  EXPECT_EQ(sentences[0],
            "kling-v2-1: 15 of 16 finished tasks failed in the last 15m, "
            "all provider-side (UPSTREAM_UNAVAILABLE 15) — likely a provider "
            "incident, not configuration");
  EXPECT_THAT(sentences[0], Not(HasSubstr("route")));
}

TEST(IncidentRulesTest, OtherRoutesWithoutEnoughEvidenceDoNotClearTheProvider) {
  // key-8 finished too few tasks to call it healthy: the model's own row
  // decides.
  const std::vector<RouteEvidence> routes = {{"key-7", Rows(1, 9)},
                                             {"key-8", Rows(2, 0)}};
  EXPECT_THAT(
      RouteIncidentSentences("kling-v2-1", routes, Sum(routes), kWindow),
      ElementsAre(HasSubstr("likely a provider incident")));
  // Too little evidence everywhere: nothing.
  const std::vector<RouteEvidence> quiet = {{"key-7", Rows(0, 3)},
                                            {"key-8", Rows(1, 0)}};
  EXPECT_THAT(RouteIncidentSentences("kling-v2-1", quiet, Sum(quiet), kWindow),
              IsEmpty());
}

TEST(IncidentRulesTest, TwoBadRoutesBesideAHealthyOneAreEachNamed) {
  const std::vector<RouteEvidence> routes = {
      {"key-6", Rows(0, 5)}, {"key-7", Rows(1, 9)}, {"key-8", Rows(12, 0)}};
  EXPECT_THAT(
      RouteIncidentSentences("kling-v2-1", routes, Sum(routes), kWindow),
      ElementsAre(HasSubstr("route key-6 of kling-v2-1: 5 of 5"),
                  HasSubstr("route key-7 of kling-v2-1: 9 of 10")));
}

TEST(IncidentRulesTest, HealthyRoutesGiveNoSentence) {
  const std::vector<RouteEvidence> routes = {{"key-7", Rows(9, 1)},
                                             {"key-8", Rows(12, 0)}};
  EXPECT_THAT(
      RouteIncidentSentences("kling-v2-1", routes, Sum(routes), kWindow),
      IsEmpty());
}

}  // namespace
}  // namespace tasktrail
