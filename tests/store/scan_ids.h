// ScanIds: the task ids a TaskStore::Scan visits, for the store tests.
//
// Thread safety: as TaskStore::Scan.
#ifndef TASKTRAIL_TESTS_STORE_SCAN_IDS_H_
#define TASKTRAIL_TESTS_STORE_SCAN_IDS_H_

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "store/task_store.h"

namespace tasktrail::store {

// The ids of the tasks `scan` visits, in the scan's order; a failed scan
// fails the test.
inline std::vector<std::string> ScanIds(const TaskStore& store,
                                        const TaskScan& scan) {
  std::vector<std::string> ids;
  absl::StatusOr<std::string> last =
      store.Scan(scan, [&](const v1::Task& task) {
        ids.push_back(task.task_id());
        return true;
      });
  EXPECT_TRUE(last.ok()) << last.status();
  return ids;
}

}  // namespace tasktrail::store

#endif  // TASKTRAIL_TESTS_STORE_SCAN_IDS_H_
