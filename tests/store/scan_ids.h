// ScanIds: the task ids a TaskStore::Scan visits, for the store tests.
//
// Thread safety: as TaskStore::Scan.
#ifndef TASKTRAIL_TESTS_STORE_SCAN_IDS_H_
#define TASKTRAIL_TESTS_STORE_SCAN_IDS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "store/task_store.h"

namespace tasktrail::store {

// The ids of the tasks `scan` visits, in the scan's order. A failed scan
// fails the test, and so does a ScanTaskIds of the same scan that visits
// other ids or returns another last id.
inline std::vector<std::string> ScanIds(const TaskStore& store,
                                        const TaskScan& scan) {
  std::vector<std::string> ids;
  absl::StatusOr<std::string> last =
      store.Scan(scan, [&](const v1::Task& task) {
        ids.push_back(task.task_id());
        return true;
      });
  EXPECT_TRUE(last.ok()) << last.status();
  std::vector<std::string> ids_alone;
  absl::StatusOr<std::string> last_alone =
      store.ScanTaskIds(scan, [&](absl::string_view task_id) {
        ids_alone.emplace_back(task_id);
        return true;
      });
  EXPECT_TRUE(last_alone.ok()) << last_alone.status();
  EXPECT_EQ(ids_alone, ids) << "ScanTaskIds and Scan disagree";
  if (last.ok() && last_alone.ok()) {
    EXPECT_EQ(*last_alone, *last);
  }
  return ids;
}

}  // namespace tasktrail::store

#endif  // TASKTRAIL_TESTS_STORE_SCAN_IDS_H_
