#include "bench/scenarios/store_submit.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/rules/clock.h"
#include "tests/support/tracker_setup.h"

namespace tasktrail::bench {

absl::StatusOr<RunResult> StoreCeiling::Run(int concurrency, double seconds,
                                            const std::string& nonce) {
  if (tracker_ == nullptr) {
    store::StoreOptions options;
    options.path = flags_.db;
    options.sync_writes = flags_.sync;
    TrackerOptions tracker_options;
    tracker_options.id_seed = 0;  // from the OS: ids stay unique across runs
    absl::StatusOr<testing::OpenedTracker> opened = testing::OpenTracker(
        options, &catalog_, SystemClock::Get(), &hub_, tracker_options);
    if (!opened.ok()) return opened.status();
    store_ = std::move(opened->store);
    tracker_ = std::move(opened->tracker);
  }
  const int run = ++runs_;
  std::atomic<Phase> phase{Phase::kWarmup};
  std::vector<RunResult> workers(concurrency);
  std::vector<std::thread> threads;
  for (int i = 0; i < concurrency; ++i) {
    threads.emplace_back([&, i] {
      RunResult& worker = workers[i];
      std::mt19937_64 rng = RunRng(flags_.seed, run, i);
      for (uint64_t n = 0; phase != Phase::kStop; ++n) {
        const v1::SubmitTaskRequest request = MakeSubmit(
            rng, absl::StrCat(nonce, "-s", concurrency, "-", i, "-", n), 1000);
        const SteadyClock::time_point began = SteadyClock::now();
        absl::StatusOr<v1::SubmitTaskResponse> response =
            AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "bench");
        const auto micros =
            std::chrono::duration_cast<std::chrono::microseconds>(
                SteadyClock::now() - began)
                .count();
        if (phase == Phase::kMeasure) {
          worker.Record(static_cast<int>(response.status().code()),
                        static_cast<uint64_t>(micros));
          if (response.ok() && response->deduplicated()) {
            ++worker.deduplicated;
          }
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(flags_.warmup));
  const SteadyClock::time_point start = SteadyClock::now();
  phase = Phase::kMeasure;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const SteadyClock::time_point end = SteadyClock::now();
  phase = Phase::kStop;
  for (std::thread& thread : threads) thread.join();

  RunResult result;
  result.workload = "store-submit";
  result.concurrency = concurrency;
  result.seconds = std::chrono::duration<double>(end - start).count();
  for (const RunResult& worker : workers) result.Merge(worker);
  return result;
}

}  // namespace tasktrail::bench
