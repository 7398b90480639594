// store-submit: SubmitTask's own work (validation, dedup lookups, the durable
// WriteBatch) from `concurrency` threads, without gRPC, on a store opened on
// --db: the ceiling the gRPC submit is compared with. The store is opened by
// the first run and kept open for the next ones (--rotations).
//
// Thread safety: Run is called from one thread at a time.
#ifndef TASKTRAIL_BENCH_SCENARIOS_STORE_SUBMIT_H_
#define TASKTRAIL_BENCH_SCENARIOS_STORE_SUBMIT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "bench/bench_common.h"
#include "service/rules/catalog.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/tracker.h"
#include "store/task_store.h"

namespace tasktrail::bench {

class StoreCeiling {
 public:
  explicit StoreCeiling(const Flags& flags) : flags_(flags) {}

  // Measures `seconds` after --warmup. `nonce` must differ between runs, so
  // that request ids never repeat.
  absl::StatusOr<RunResult> Run(int concurrency, double seconds,
                                const std::string& nonce);

 private:
  const Flags& flags_;
  CatalogHolder catalog_{Catalog::BuiltIn()};
  EventHub hub_;
  std::unique_ptr<store::TaskStore> store_;
  std::unique_ptr<Tracker> tracker_;
  int runs_ = 0;  // distinguishes the random sequences of successive runs
};

}  // namespace tasktrail::bench

#endif  // TASKTRAIL_BENCH_SCENARIOS_STORE_SUBMIT_H_
