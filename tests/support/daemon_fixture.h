// A gtest fixture for end-to-end suites run on each store: the test's
// parameter (backend.h) picks the store, StartServer starts a real
// tasktraild on a fresh one (daemon_store.h) and opens a stub to it.
// Header-only on top of tasktrail_test_daemon_store.
//
//   class SettlementTest : public DaemonTest {
//     void SetUp() override { StartServer("settlement_e2e"); }
//   };
//   INSTANTIATE_TEST_SUITE_P(Stores, SettlementTest, kBothStores,
//                            BackendParamName());
//
// Thread safety: as a gtest fixture; the stub may be used from any thread.
#ifndef TASKTRAIL_TESTS_SUPPORT_DAEMON_FIXTURE_H_
#define TASKTRAIL_TESTS_SUPPORT_DAEMON_FIXTURE_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/support/backend.h"
#include "tests/support/daemon_store.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {

// The parameters of a suite run on both stores.
inline const auto kBothStores =
    ::testing::Values(Backend::kRocksDb, Backend::kPostgres);

class DaemonTest : public ::testing::TestWithParam<Backend> {
 protected:
  // Makes the store of GetParam() (a database named after `prefix`) and
  // starts a tasktraild on it with `extra_args`; fails the test when either
  // cannot be had.
  void StartServer(const std::string& prefix,
                   std::vector<std::string> extra_args = {}) {
    const absl::Status opened = store_.Open(GetParam(), prefix);
    ASSERT_TRUE(opened.ok()) << opened;
    server_ = store_.NewServer(std::move(extra_args));
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    stub_ = server_->NewStub();
  }

  // Stops the daemon (SIGTERM) and starts it again on the same store.
  void RestartServer() {
    EXPECT_EQ(server_->Stop(), 0);
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    stub_ = server_->NewStub();
  }

  // The ids of the tasks ListTasks lists for `request`, paging to the end;
  // a failed call fails the test.
  std::vector<std::string> ListIds(const v1::ListTasksRequest& request) {
    grpc::Status status;
    std::vector<std::string> ids =
        TaskIds(ListAllTasks(stub_.get(), request, &status));
    EXPECT_TRUE(status.ok()) << status.error_message();
    return ids;
  }

  DaemonStore store_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::TaskTracker::Stub> stub_;
};

}  // namespace tasktrail::testing

#endif  // TASKTRAIL_TESTS_SUPPORT_DAEMON_FIXTURE_H_
