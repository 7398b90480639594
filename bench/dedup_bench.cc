// What the duplicate guard adds to SubmitTask: the guard's own work (two
// canonicalisations, the request shape, the content fingerprint and two
// dedup lookups) against a whole durable SubmitTask on the same store.
//
//   build/bench/dedup_bench --benchmark_min_time=2
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "service/rules/fingerprint.h"
#include "service/tracker/tracker.h"
#include "store/keys.h"
#include "tests/support/tracker_setup.h"

namespace tasktrail {
namespace {

v1::SubmitTaskRequest Request(int64_t n) {
  v1::SubmitTaskRequest request;
  request.set_account_id("acct-" + std::to_string(n % 1000));
  request.set_model("veo-3");
  request.set_endpoint("/v1/videos/generations");
  request.set_request_id("req-" + std::to_string(n));
  request.set_charge_units(40);
  request.mutable_params()->set_prompt(
      "a lighthouse at dusk, waves crashing against the rocks, take " +
      std::to_string(n));
  request.mutable_params()->set_aspect_ratio("16:9");
  return request;
}

// A durable store and a Tracker on it in a fresh temp directory.
using Fixture = testing::TempTracker;

void BM_SubmitTaskDurable(benchmark::State& state) {
  Fixture fixture;
  int64_t n = 0;
  for (auto _ : state) {
    auto response =
        AwaitWrite(*fixture.tracker(), &Tracker::SubmitTask, Request(++n), "");
    if (!response.ok()) state.SkipWithError("submit failed");
  }
}
BENCHMARK(BM_SubmitTaskDurable)->UseRealTime();

void BM_DuplicateGuardWork(benchmark::State& state) {
  Fixture fixture;
  for (int64_t n = 0; n < 1000; ++n)
    AwaitWrite(*fixture.tracker(), &Tracker::SubmitTask, Request(n), "")
        .status()
        .IgnoreError();
  int64_t n = 1000;
  for (auto _ : state) {
    const v1::SubmitTaskRequest request = Request(++n);
    const std::string shape = RequestShape(
        CanonicalParts(request.model(), request.endpoint(), request.params()));
    const int64_t now = absl::ToUnixMicros(absl::Now());
    auto by_request = fixture.store()->GetDedupRecord(
        store::RequestIdDedupKey(request.account_id(), request.request_id()),
        now);
    const std::string fingerprint = ContentFingerprint(
        request.account_id(),
        CanonicalParts(request.model(), request.endpoint(), request.params()));
    auto by_content = fixture.store()->GetDedupRecord(
        store::ContentDedupKey(request.account_id(), fingerprint), now);
    benchmark::DoNotOptimize(shape);
    benchmark::DoNotOptimize(by_request);
    benchmark::DoNotOptimize(by_content);
  }
}
BENCHMARK(BM_DuplicateGuardWork);

}  // namespace
}  // namespace tasktrail

BENCHMARK_MAIN();
