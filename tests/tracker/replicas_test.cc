// Two Trackers, each on its own PgTaskStore, on one PostgreSQL database: two
// replicas of tasktraild in one process. What one replica's in-process locks
// cannot see, the database's checks and the Tracker's retries must keep: a
// request_id submitted concurrently through both maps to one task, and
// writes to one task through both keep its timeline dense. The cluster is
// a throwaway one (tests/support/postgres_cluster.h); the tests fail when it
// cannot start.
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/rules/catalog.h"
#include "service/rules/clock.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/tracker.h"
#include "store/postgres/pg_task_store.h"
#include "tests/support/postgres_cluster.h"

namespace tasktrail {
namespace {

using ::tasktrail::testing::PostgresCluster;

class ReplicaTrackerTest : public ::testing::Test {
 protected:
  static constexpr int kReplicas = 2;

  void SetUp() override {
    absl::StatusOr<testing::TestDatabase> database =
        PostgresCluster::FreshDatabase("replicas");
    ASSERT_TRUE(database.ok()) << database.status();
    for (int i = 0; i < kReplicas; ++i) {
      store::postgres::PgStoreOptions options;
      options.conninfo = database->conninfo;
      options.pool_size = 4;
      absl::StatusOr<std::unique_ptr<store::postgres::PgTaskStore>> store =
          store::postgres::PgTaskStore::Open(options);
      ASSERT_TRUE(store.ok()) << store.status();
      stores_[i] = *std::move(store);
      trackers_[i] = std::make_unique<Tracker>(stores_[i].get(), &catalog_,
                                               SystemClock::Get(), &hubs_[i]);
    }
  }

  static v1::SubmitTaskRequest Request(const std::string& request_id) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct");
    request.set_model("kling-v2-1");
    request.set_endpoint("/v1/videos");
    request.set_request_id(request_id);
    request.mutable_params()->set_prompt("waves");
    request.mutable_params()->set_aspect_ratio("16:9");
    request.mutable_params()->set_duration_seconds(5);
    return request;
  }

  // The timeline's seqs are 1..n, each once.
  void ExpectDenseTimeline(const std::string& task_id, size_t n) {
    absl::StatusOr<std::vector<v1::TaskEvent>> timeline =
        stores_[0]->ReadEvents(task_id, 0, 1000);
    ASSERT_TRUE(timeline.ok()) << timeline.status();
    ASSERT_EQ(timeline->size(), n);
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ((*timeline)[i].seq(), static_cast<int64_t>(i + 1));
    }
    absl::StatusOr<v1::Task> task = stores_[1]->GetTask(task_id);
    ASSERT_TRUE(task.ok()) << task.status();
    EXPECT_EQ(task->last_event_seq(), static_cast<int64_t>(n));
  }

  // Submits one request_id `count` times at once, alternately through
  // each replica, and expects one task: one original, the others its
  // duplicates, each recorded on its dense timeline.
  void ExpectOneTaskFromConcurrentSubmissions(int count) {
    std::vector<absl::StatusOr<v1::SubmitTaskResponse>> answers(
        count, absl::UnknownError("not answered"));
    std::vector<std::thread> submitters;
    for (int i = 0; i < count; ++i) {
      submitters.emplace_back([&, i] {
        answers[i] = AwaitWrite(*trackers_[i % kReplicas], &Tracker::SubmitTask,
                                Request("req-1"), "");
      });
    }
    for (std::thread& submitter : submitters) submitter.join();
    std::set<std::string> task_ids;
    int originals = 0;
    for (const absl::StatusOr<v1::SubmitTaskResponse>& answer : answers) {
      ASSERT_TRUE(answer.ok()) << answer.status();
      task_ids.insert(answer->task().task_id());
      if (!answer->deduplicated()) ++originals;
    }
    EXPECT_EQ(originals, 1);
    ASSERT_EQ(task_ids.size(), 1u);
    const std::string task_id = *task_ids.begin();
    absl::StatusOr<v1::Task> task = stores_[1]->GetTask(task_id);
    ASSERT_TRUE(task.ok()) << task.status();
    EXPECT_EQ(task->duplicate_count(), count - 1);
    ExpectDenseTimeline(task_id, count);
    store::TaskScan all;
    all.index = store::ScanIndex::kAll;
    int tasks = 0;
    ASSERT_TRUE(stores_[0]
                    ->Scan(all,
                           [&](const v1::Task&) {
                             ++tasks;
                             return true;
                           })
                    .ok());
    EXPECT_EQ(tasks, 1);
    EXPECT_TRUE(stores_[0]->VerifyIndexes().ok());
  }

  CatalogHolder catalog_{Catalog::BuiltIn()};
  EventHub hubs_[kReplicas];
  std::unique_ptr<store::postgres::PgTaskStore> stores_[kReplicas];
  // Declared after the stores: destroyed before them.
  std::unique_ptr<Tracker> trackers_[kReplicas];
};

TEST_F(ReplicaTrackerTest, ARequestIdSubmittedThroughBothReplicasIsOneTask) {
  ExpectOneTaskFromConcurrentSubmissions(16);
}

// The stores commit the writes queued to a commit thread together (group
// commit): a batch holding several of the duplicates still binds the
// request_id once.
TEST_F(ReplicaTrackerTest,
       SixtyFourSubmissionsOverTwoBatchingStoresAreOneTask) {
  ExpectOneTaskFromConcurrentSubmissions(64);
}

TEST_F(ReplicaTrackerTest, WritesToOneTaskThroughBothReplicasStayDense) {
  absl::StatusOr<v1::SubmitTaskResponse> submitted =
      AwaitWrite(*trackers_[0], &Tracker::SubmitTask, Request(""), "");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string task_id = submitted->task().task_id();

  // Notes from both replicas at once, and one event id sent through both.
  constexpr int kWriters = 12;
  std::vector<absl::Status> results(kWriters);
  std::vector<bool> applied(kWriters, false);
  std::vector<std::thread> writers;
  for (int i = 0; i < kWriters; ++i) {
    writers.emplace_back([&, i] {
      Tracker& tracker = *trackers_[i % kReplicas];
      if (i < 2) {
        v1::RecordEventRequest queued;
        queued.set_task_id(task_id);
        queued.set_event_id("ev-queued");
        queued.mutable_queued()->set_upstream_task_id("up-1");
        absl::StatusOr<v1::RecordEventResponse> recorded =
            AwaitWrite(tracker, &Tracker::RecordEvent, queued, "");
        results[i] = recorded.status();
        if (recorded.ok()) applied[i] = recorded->applied();
        return;
      }
      v1::AddNoteRequest note;
      note.set_task_id(task_id);
      note.set_text(absl::StrCat("note ", i));
      results[i] = AwaitWrite(tracker, &Tracker::AddNote, note, "").status();
    });
  }
  for (std::thread& writer : writers) writer.join();
  for (const absl::Status& result : results) {
    EXPECT_TRUE(result.ok()) << result;
  }
  // The event id was applied once; the replay through the other replica
  // answered applied=false.
  EXPECT_NE(applied[0], applied[1]);
  ExpectDenseTimeline(task_id, 1 + 1 + (kWriters - 2));
  absl::StatusOr<v1::Task> task = stores_[0]->GetTask(task_id);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->state(), v1::TASK_STATE_QUEUED);
}

}  // namespace
}  // namespace tasktrail
