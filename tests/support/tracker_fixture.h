// A Tracker on a real RocksDB store in a fresh temp directory, with a manual
// clock starting at a fixed time and the built-in catalog. The directory is
// removed after the test.
//
// Thread safety: the fixture itself is used by the test's thread; the
// Tracker it builds is thread-safe.
#ifndef TASKTRAIL_TESTS_SUPPORT_TRACKER_FIXTURE_H_
#define TASKTRAIL_TESTS_SUPPORT_TRACKER_FIXTURE_H_

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "service/rules/catalog.h"
#include "service/rules/clock.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/tracker.h"
#include "store/task_store.h"

namespace tasktrail {

class TrackerFixtureBase : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = std::filesystem::temp_directory_path().string() +
                          "/tasktrail-tracker-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    Open(/*sync_writes=*/true);
  }

  void TearDown() override {
    tracker_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Opens the store on dir_ and a Tracker on it. Each opening seeds the id
  // generator differently, so that ids never repeat after a reopen.
  void Open(bool sync_writes) {
    store::StoreOptions options;
    options.path = dir_;
    options.sync_writes = sync_writes;
    auto store = store::TaskStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(store).value();
    TrackerOptions tracker_options;
    tracker_options.id_seed = 1000 + ++openings_;
    tracker_ = std::make_unique<Tracker>(store_.get(), &catalog_, &clock_,
                                         &hub_, tracker_options);
  }

  // Closes the Tracker and the store and opens both again on the same dir.
  void Reopen(bool sync_writes = true) {
    tracker_.reset();
    store_.reset();
    Open(sync_writes);
  }

  std::string dir_;
  CatalogHolder catalog_{Catalog::BuiltIn()};
  ManualClock clock_{absl::FromUnixSeconds(1790000000)};
  EventHub hub_;
  std::unique_ptr<store::TaskStore> store_;
  std::unique_ptr<Tracker> tracker_;

 private:
  int openings_ = 0;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_TESTS_SUPPORT_TRACKER_FIXTURE_H_
