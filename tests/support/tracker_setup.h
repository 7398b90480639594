// A RocksDbTaskStore opened on a directory and a Tracker on it: the one place
// in tests/ and bench/ that constructs a Tracker, for the gtest fixture
// (tracker_fixture.h), the fault tests and the benchmarks. No gtest here, so
// that the benchmarks can use it.
//
// Thread safety: OpenTracker may be called from any thread; the Tracker it
// returns is thread-safe. TempTracker is used by one thread at a time.
#ifndef TASKTRAIL_TESTS_SUPPORT_TRACKER_SETUP_H_
#define TASKTRAIL_TESTS_SUPPORT_TRACKER_SETUP_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "service/rules/catalog.h"
#include "service/rules/clock.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/tracker.h"
#include "store/rocksdb/rocksdb_task_store.h"
#include "tests/support/temp_dir.h"

namespace tasktrail::testing {

// A store and the Tracker on it. The members are declared so that the
// Tracker is destroyed before its store.
struct OpenedTracker {
  std::unique_ptr<store::RocksDbTaskStore> store;
  std::unique_ptr<Tracker> tracker;
};

// Opens a RocksDbTaskStore with `options` and a Tracker on it. `catalog`,
// `clock` and `hub` are the caller's and must outlive the result. Returns the
// store's error when it does not open.
absl::StatusOr<OpenedTracker> OpenTracker(
    const store::StoreOptions& options, const CatalogHolder* catalog,
    const Clock* clock, EventHub* hub,
    const TrackerOptions& tracker_options = {});

// A Tracker on a durable store in a fresh TempDir, with the built-in
// catalog, the system clock and ids seeded from the OS: what the benchmarks
// measure. Aborts (printing the error) when the store does not open.
class TempTracker {
 public:
  explicit TempTracker(const std::string& prefix = "tasktrail-bench");
  TempTracker(const TempTracker&) = delete;
  TempTracker& operator=(const TempTracker&) = delete;

  const std::string& path() const { return dir_.path(); }
  store::RocksDbTaskStore* store() { return opened_.store.get(); }
  Tracker* tracker() { return opened_.tracker.get(); }

 private:
  TempDir dir_;
  CatalogHolder catalog_{Catalog::BuiltIn()};
  EventHub hub_;
  OpenedTracker opened_;
};

}  // namespace tasktrail::testing

#endif  // TASKTRAIL_TESTS_SUPPORT_TRACKER_SETUP_H_
