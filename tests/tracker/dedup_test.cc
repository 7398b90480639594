// Duplicate-submission guard: fingerprint canonicalisation, request_id
// idempotency, state-aware content dedup, expiry with a manual clock, and
// exactly-once under concurrency. Real RocksDB in a temp directory.
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/rules/fingerprint.h"
#include "service/rules/time_util.h"
#include "service/tracker/tracker.h"
#include "store/keys.h"
#include "tests/support/tracker_fixture.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;

v1::TaskParams Params(const std::string& prompt) {
  v1::TaskParams params;
  params.set_prompt(prompt);
  params.set_aspect_ratio("16:9");
  params.set_duration_seconds(5);
  return params;
}

std::string Fingerprint(const std::string& account, const std::string& model,
                        const v1::TaskParams& params) {
  return ContentFingerprint(account,
                            CanonicalParts(model, "/v1/videos", params));
}

TEST(FingerprintTest, CanonicalisationDecidesWhatCollides) {
  struct Case {
    const char* name;
    v1::TaskParams a;
    v1::TaskParams b;
    bool collide;
  };
  std::vector<Case> cases;
  auto with = [](auto change) {
    v1::TaskParams params = Params("a fox in the snow");
    change(&params);
    return params;
  };
  const v1::TaskParams base = Params("a fox in the snow");
  cases.push_back({"identical", base, base, true});
  cases.push_back({"prompt whitespace collapsed and trimmed", base,
                   with([](v1::TaskParams* p) {
                     p->set_prompt("  a fox\n in   the\tsnow ");
                   }),
                   true});
  cases.push_back(
      {"ratio spacing", base,
       with([](v1::TaskParams* p) { p->set_aspect_ratio("16 : 9"); }), true});
  cases.push_back(
      {"ratio in other terms", base,
       with([](v1::TaskParams* p) { p->set_aspect_ratio("1280:720"); }), true});
  cases.push_back({"resolution case",
                   with([](v1::TaskParams* p) { p->set_resolution("1080p"); }),
                   with([](v1::TaskParams* p) { p->set_resolution("1080P"); }),
                   true});
  cases.push_back(
      {"prompt wording", base,
       with([](v1::TaskParams* p) { p->set_prompt("a fox in snow"); }), false});
  cases.push_back({"prompt case", base, with([](v1::TaskParams* p) {
                     p->set_prompt("A fox in the snow");
                   }),
                   false});
  cases.push_back({"seed set vs unset", base,
                   with([](v1::TaskParams* p) { p->set_seed(0); }), false});
  cases.push_back({"different seed",
                   with([](v1::TaskParams* p) { p->set_seed(1); }),
                   with([](v1::TaskParams* p) { p->set_seed(2); }), false});
  cases.push_back({"watermark unset vs true", base,
                   with([](v1::TaskParams* p) { p->set_watermark(true); }),
                   false});
  cases.push_back({"duration", base,
                   with([](v1::TaskParams* p) { p->set_duration_seconds(10); }),
                   false});
  cases.push_back({"audio", base,
                   with([](v1::TaskParams* p) { p->set_generate_audio(true); }),
                   false});
  auto image = [](const std::string& uri, int64_t size) {
    return [uri, size](v1::TaskParams* p) {
      auto* image = p->add_reference_images();
      image->set_uri(uri);
      image->set_size_bytes(size);
    };
  };
  cases.push_back({"same image",
                   with(image("https://cdn.example.com/a.png", 100)),
                   with(image("https://cdn.example.com/a.png", 100)), true});
  cases.push_back({"image URI surrounding spaces",
                   with(image("https://cdn.example.com/a.png", 100)),
                   with(image(" https://cdn.example.com/a.png ", 100)), true});
  cases.push_back({"image size",
                   with(image("https://cdn.example.com/a.png", 100)),
                   with(image("https://cdn.example.com/a.png", 101)), false});
  cases.push_back({"image URI",
                   with(image("https://cdn.example.com/a.png", 100)),
                   with(image("https://cdn.example.com/b.png", 100)), false});
  cases.push_back({"image count", base,
                   with([](v1::TaskParams* p) { p->set_image_count(2); }),
                   false});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(Fingerprint("acct", "kling-v2-1", c.a) ==
                  Fingerprint("acct", "kling-v2-1", c.b),
              c.collide);
  }
  EXPECT_NE(Fingerprint("acct-1", "kling-v2-1", base),
            Fingerprint("acct-2", "kling-v2-1", base));
  EXPECT_NE(Fingerprint("acct", "kling-v2-1", base),
            Fingerprint("acct", "veo-3", base));
}

TEST(FingerprintTest, ShapesNameTheFieldsThatDiffer) {
  const std::string a =
      RequestShape(CanonicalParts("veo-3", "/v1/videos", Params("one")));
  v1::TaskParams other = Params("two");
  other.set_duration_seconds(8);
  const std::string b =
      RequestShape(CanonicalParts("kling-v2-1", "/v1/videos", other));
  EXPECT_THAT(DifferingFields(a, b),
              ::testing::ElementsAre("model", "params.prompt",
                                     "params.duration_seconds"));
  EXPECT_TRUE(DifferingFields(a, a).empty());
}

class DedupTest : public TrackerFixtureBase {
 protected:
  static v1::SubmitTaskRequest Request(const std::string& request_id = "",
                                       const std::string& prompt = "waves",
                                       const std::string& account = "acct") {
    v1::SubmitTaskRequest request;
    request.set_account_id(account);
    request.set_model("kling-v2-1");
    request.set_endpoint("/v1/videos");
    request.set_request_id(request_id);
    request.set_charge_units(40);
    *request.mutable_params() = Params(prompt);
    return request;
  }

  v1::SubmitTaskResponse Submit(const v1::SubmitTaskRequest& request) {
    auto response = AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "");
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::SubmitTaskResponse();
  }

  void Finish(const std::string& task_id, v1::EventType type) {
    v1::RecordEventRequest event;
    event.set_task_id(task_id);
    if (type == v1::EVENT_TYPE_COMPLETED) {
      event.mutable_completed()->add_result_uris("https://cdn.example.com/r");
    } else if (type == v1::EVENT_TYPE_FAILED) {
      event.mutable_failed()->set_http_status(500);
    } else {
      event.mutable_canceled()->set_reason("user");
    }
    ASSERT_TRUE(AwaitWrite(*tracker_, &Tracker::RecordEvent, event, "").ok());
  }
};

TEST_F(DedupTest, SameRequestIdReturnsTheOriginalAndRecordsTheEvidence) {
  const v1::SubmitTaskResponse first = Submit(Request("req-1"));
  EXPECT_FALSE(first.deduplicated());
  clock_.Advance(absl::Seconds(3));
  v1::SubmitTaskRequest retry = Request("req-1");
  retry.set_charge_units(41);         // not part of the intent
  retry.set_api_key_id("other-key");  // nor is the key used
  const v1::SubmitTaskResponse second = Submit(retry);
  EXPECT_TRUE(second.deduplicated());
  EXPECT_EQ(second.dedup_reason(), v1::DEDUP_REASON_SAME_REQUEST_ID);
  EXPECT_EQ(second.task().task_id(), first.task().task_id());
  EXPECT_EQ(second.task().duplicate_count(), 1);
  EXPECT_EQ(FromProtoTime(second.task().last_duplicate_time()), clock_.Now());

  v1::GetTaskRequest get;
  get.set_task_id(first.task().task_id());
  get.set_include_events(true);
  auto task = tracker_->GetTask(get);
  ASSERT_TRUE(task.ok());
  ASSERT_EQ(task->events_size(), 2);
  const v1::TaskEvent& blocked = task->events(1);
  EXPECT_EQ(blocked.type(), v1::EVENT_TYPE_DUPLICATE_BLOCKED);
  EXPECT_EQ(blocked.duplicate_blocked().reason(),
            v1::DEDUP_REASON_SAME_REQUEST_ID);
  EXPECT_EQ(blocked.duplicate_blocked().request_id(), "req-1");
  EXPECT_EQ(blocked.duplicate_blocked().client(), "/v1/videos");
}

TEST_F(DedupTest, SameRequestIdWithOtherParametersNamesTheDifferences) {
  Submit(Request("req-1", "waves"));
  v1::SubmitTaskRequest changed = Request("req-1", "mountains");
  changed.set_model("veo-3");
  auto response = AwaitWrite(*tracker_, &Tracker::SubmitTask, changed, "");
  EXPECT_EQ(response.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(response.status().message(), HasSubstr("model"));
  EXPECT_THAT(response.status().message(), HasSubstr("params.prompt"));
  EXPECT_THAT(response.status().message(),
              ::testing::Not(HasSubstr("charge_units")));
}

TEST_F(DedupTest, RequestIdIsCheckedBeforeValidation) {
  const v1::SubmitTaskResponse first = Submit(Request("req-1"));
  // The catalog changes so that the same request would now be invalid.
  auto narrowed = Catalog::FromJson(
      R"({"models": [{"name": "kling-v2-1", "kind": "TASK_KIND_VIDEO",
          "aspect_ratios": ["1:1"], "durations": [10]}]})",
      "test");
  ASSERT_TRUE(narrowed.ok()) << narrowed.status();
  catalog_.Set(*narrowed);
  const v1::SubmitTaskResponse retry = Submit(Request("req-1"));
  EXPECT_TRUE(retry.deduplicated());
  EXPECT_EQ(retry.task().task_id(), first.task().task_id());
}

TEST_F(DedupTest, ContentIsBlockedOnlyWhileTheOriginalIsLive) {
  const std::string original = Submit(Request()).task().task_id();
  for (v1::EventType step : {v1::EVENT_TYPE_QUEUED, v1::EVENT_TYPE_STARTED}) {
    v1::SubmitTaskResponse double_click = Submit(Request());
    EXPECT_TRUE(double_click.deduplicated());
    EXPECT_EQ(double_click.dedup_reason(), v1::DEDUP_REASON_SAME_CONTENT);
    EXPECT_EQ(double_click.task().task_id(), original);
    v1::RecordEventRequest event;
    event.set_task_id(original);
    if (step == v1::EVENT_TYPE_QUEUED) {
      event.mutable_queued()->set_upstream_task_id("up-1");
    } else {
      event.mutable_started();
    }
    ASSERT_TRUE(AwaitWrite(*tracker_, &Tracker::RecordEvent, event, "").ok());
  }
  EXPECT_TRUE(Submit(Request()).deduplicated());  // RUNNING
  Finish(original, v1::EVENT_TYPE_FAILED);
  const v1::SubmitTaskResponse retry = Submit(Request());
  EXPECT_FALSE(retry.deduplicated());  // retrying a failure is a new intent
  EXPECT_NE(retry.task().task_id(), original);

  Finish(retry.task().task_id(), v1::EVENT_TYPE_CANCELED);
  EXPECT_FALSE(Submit(Request()).deduplicated());
}

TEST_F(DedupTest, SuccessBlocksOnlyForTheWindowAfterIt) {
  const std::string original = Submit(Request()).task().task_id();
  Finish(original, v1::EVENT_TYPE_COMPLETED);
  clock_.Advance(absl::Minutes(2) - absl::Seconds(1));
  EXPECT_TRUE(Submit(Request()).deduplicated());
  clock_.Advance(absl::Seconds(1));
  const v1::SubmitTaskResponse again = Submit(Request());
  EXPECT_FALSE(again.deduplicated());
  EXPECT_NE(again.task().task_id(), original);
}

TEST_F(DedupTest, ForceNewSkipsContentDedupButNotRequestIds) {
  const std::string original = Submit(Request("req-1")).task().task_id();
  v1::SubmitTaskRequest variation = Request();
  variation.set_force_new(true);
  const std::string second = Submit(variation).task().task_id();
  EXPECT_NE(second, original);
  // A double click on the new variation dedups against it.
  EXPECT_EQ(Submit(Request()).task().task_id(), second);

  v1::SubmitTaskRequest forced_retry = Request("req-1");
  forced_retry.set_force_new(true);
  const v1::SubmitTaskResponse retry = Submit(forced_retry);
  EXPECT_TRUE(retry.deduplicated());
  EXPECT_EQ(retry.task().task_id(), original);
}

TEST_F(DedupTest, AccountsAreSeparateScopes) {
  const std::string a =
      Submit(Request("req-1", "waves", "acct-a")).task().task_id();
  const v1::SubmitTaskResponse b = Submit(Request("req-1", "waves", "acct-b"));
  EXPECT_FALSE(b.deduplicated());
  EXPECT_NE(b.task().task_id(), a);
}

TEST_F(DedupTest, ContentBlockBindsTheRequestIdToTheOriginal) {
  const std::string original = Submit(Request("req-1")).task().task_id();
  const v1::SubmitTaskResponse blocked = Submit(Request("req-2"));
  EXPECT_EQ(blocked.dedup_reason(), v1::DEDUP_REASON_SAME_CONTENT);
  Finish(original, v1::EVENT_TYPE_FAILED);
  // req-2 now belongs to the original: its retry returns it, not a new task.
  const v1::SubmitTaskResponse retry = Submit(Request("req-2"));
  EXPECT_TRUE(retry.deduplicated());
  EXPECT_EQ(retry.dedup_reason(), v1::DEDUP_REASON_SAME_REQUEST_ID);
  EXPECT_EQ(retry.task().task_id(), original);
  EXPECT_EQ(retry.task().duplicate_count(), 2);
}

TEST_F(DedupTest, RequestIdsExpireAfterTheRetention) {
  const std::string original = Submit(Request("req-1")).task().task_id();
  Finish(original, v1::EVENT_TYPE_COMPLETED);
  clock_.Advance(absl::Hours(24) - absl::Seconds(1));
  EXPECT_EQ(Submit(Request("req-1")).task().task_id(), original);
  clock_.Advance(absl::Seconds(1));
  const v1::SubmitTaskResponse later = Submit(Request("req-1"));
  EXPECT_FALSE(later.deduplicated());
  EXPECT_NE(later.task().task_id(), original);
}

TEST_F(DedupTest, ExpiredRecordsLeaveTheStoreOnCompaction) {
  const int64_t now_micros = absl::ToUnixMicros(absl::Now());
  ASSERT_TRUE(
      store_
          ->WriteRaw(
              {{store::ColumnFamily::kDedup, "expired",
                store::EncodeDedupRecord({now_micros - 1000000, "T1", ""})},
               {store::ColumnFamily::kDedup, "live",
                store::EncodeDedupRecord({now_micros + 3600000000, "T2", ""})},
               {store::ColumnFamily::kDedup, "forever",
                store::EncodeDedupRecord({0, "T3", ""})}})
          .ok());
  ASSERT_TRUE(store_->Compact(store::ColumnFamily::kDedup).ok());
  auto get = [&](const std::string& key) {
    auto value = store_->GetRaw(store::ColumnFamily::kDedup, key);
    EXPECT_TRUE(value.ok());
    return value.ok() && value->has_value();
  };
  EXPECT_FALSE(get("expired"));
  EXPECT_TRUE(get("live"));
  EXPECT_TRUE(get("forever"));
}

TEST_F(DedupTest, ConcurrentIdenticalSubmitsCreateExactlyOneTask) {
  constexpr int kThreads = 64;
  std::vector<std::string> ids(kThreads);
  std::atomic<int> deduplicated{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      // Half carry a request_id of their own, half none: every one is the
      // same content, so all but one are blocked.
      auto response = AwaitWrite(
          *tracker_, &Tracker::SubmitTask,
          Request(i % 2 == 0 ? "click-" + std::to_string(i) : ""), "");
      ASSERT_TRUE(response.ok()) << response.status();
      ids[i] = response->task().task_id();
      if (response->deduplicated()) deduplicated.fetch_add(1);
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 1u);
  EXPECT_EQ(deduplicated.load(), kThreads - 1);
  v1::GetTaskRequest get;
  get.set_task_id(ids[0]);
  auto task = tracker_->GetTask(get);
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->duplicate_count(), kThreads - 1);
}

TEST_F(DedupTest, ConcurrentMixedIntentsCreateOneTaskEach) {
  constexpr int kIntents = 8;
  constexpr int kClicksPerIntent = 8;
  std::vector<std::string> ids(kIntents * kClicksPerIntent);
  std::vector<std::thread> threads;
  for (int i = 0; i < kIntents * kClicksPerIntent; ++i) {
    threads.emplace_back([&, i] {
      const int intent = i % kIntents;
      auto response = AwaitWrite(*tracker_, &Tracker::SubmitTask,
                                 Request("", "prompt " + std::to_string(intent),
                                         "acct-" + std::to_string(intent % 3)),
                                 "");
      ASSERT_TRUE(response.ok()) << response.status();
      ids[i] = response->task().task_id();
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int intent = 0; intent < kIntents; ++intent) {
    std::set<std::string> for_intent;
    for (int i = intent; i < kIntents * kClicksPerIntent; i += kIntents) {
      for_intent.insert(ids[i]);
    }
    EXPECT_EQ(for_intent.size(), 1u) << "intent " << intent;
  }
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(),
            static_cast<size_t>(kIntents));
}

}  // namespace
}  // namespace tasktrail
