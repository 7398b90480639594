#include "tests/support/tracker_setup.h"

#include <stdio.h>
#include <stdlib.h>

#include <string>
#include <utility>

namespace tasktrail::testing {

absl::StatusOr<OpenedTracker> OpenTracker(
    const store::StoreOptions& options, const CatalogHolder* catalog,
    const Clock* clock, EventHub* hub, const TrackerOptions& tracker_options) {
  absl::StatusOr<std::unique_ptr<store::RocksDbTaskStore>> store =
      store::RocksDbTaskStore::Open(options);
  if (!store.ok()) return store.status();
  OpenedTracker opened;
  opened.store = std::move(store).value();
  opened.tracker = std::make_unique<Tracker>(opened.store.get(), catalog, clock,
                                             hub, tracker_options);
  return opened;
}

TempTracker::TempTracker(const std::string& prefix) : dir_(prefix) {
  store::StoreOptions options;
  options.path = dir_.path();
  absl::StatusOr<OpenedTracker> opened =
      OpenTracker(options, &catalog_, SystemClock::Get(), &hub_);
  if (!opened.ok()) {
    fprintf(stderr, "opening a store in %s: %s\n", dir_.path().c_str(),
            std::string(opened.status().message()).c_str());
    abort();
  }
  opened_ = std::move(opened).value();
}

}  // namespace tasktrail::testing
