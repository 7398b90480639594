// A Tracker on a real RocksDB store in a fresh temp directory, with a manual
// clock starting at a fixed time and the built-in catalog. The directory is
// removed after the test. Built on tracker_setup.h and temp_dir.h.
//
// Thread safety: the fixture itself is used by the test's thread; the
// Tracker it builds is thread-safe.
#ifndef TASKTRAIL_TESTS_SUPPORT_TRACKER_FIXTURE_H_
#define TASKTRAIL_TESTS_SUPPORT_TRACKER_FIXTURE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "service/rules/catalog.h"
#include "service/rules/clock.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/tracker.h"
#include "store/rocksdb/rocksdb_task_store.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tracker_setup.h"

namespace tasktrail {

class TrackerFixtureBase : public ::testing::Test {
 protected:
  void SetUp() override { Open(/*sync_writes=*/true); }

  void TearDown() override {
    tracker_.reset();
    store_.reset();
  }

  // Opens the store on dir_ and a Tracker on it. Each opening seeds the id
  // generator differently, so that ids never repeat after a reopen.
  void Open(bool sync_writes) {
    store::StoreOptions options;
    options.path = dir_;
    options.sync_writes = sync_writes;
    TrackerOptions tracker_options = tracker_options_;
    tracker_options.id_seed = 1000 + ++openings_;
    absl::StatusOr<testing::OpenedTracker> opened = testing::OpenTracker(
        options, &catalog_, &clock_, &hub_, tracker_options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(opened->store);
    tracker_ = std::move(opened->tracker);
  }

  // Closes the Tracker and the store and opens both again on the same dir.
  void Reopen(bool sync_writes = true) {
    tracker_.reset();
    store_.reset();
    Open(sync_writes);
  }

 private:
  // Declared first: made before dir_ is read, removed after the store closes.
  testing::TempDir temp_dir_{"tasktrail-tracker"};

 protected:
  std::string dir_ = temp_dir_.path();
  CatalogHolder catalog_{Catalog::BuiltIn()};
  ManualClock clock_{absl::FromUnixSeconds(1790000000)};
  // The options each opening gives the Tracker (but for id_seed); a test
  // may change them in its constructor, or before Reopen.
  TrackerOptions tracker_options_;
  EventHub hub_;
  std::unique_ptr<store::RocksDbTaskStore> store_;
  std::unique_ptr<Tracker> tracker_;

 private:
  int openings_ = 0;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_TESTS_SUPPORT_TRACKER_FIXTURE_H_
