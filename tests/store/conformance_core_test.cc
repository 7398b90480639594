// The store conformance suite (tests/store/conformance.h): tasks and their
// timelines written and read back, scans and their pages, concurrent
// writers, and the tasks due for retention, on both stores.
#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "tests/store/conformance.h"
#include "tests/store/scan_ids.h"

namespace tasktrail::store {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;

INSTANTIATE_TEST_SUITE_P(Stores, StoreConformanceTest,
                         ::testing::Values(Backend::kRocksDb,
                                           Backend::kPostgres),
                         testing::BackendParamName());

TEST_P(StoreConformanceTest,
       DueTasksAreListedByClassTimeAndLimitAndPurgedWhole) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  TaskIdGenerator ids(/*seed=*/3);
  // Created in this order, finished in another: the index orders by time.
  const std::string late =
      PutForRetention(*store, ids, 0, 50, v1::TASK_STATE_SUCCEEDED);
  const std::string early =
      PutForRetention(*store, ids, 1, 20, v1::TASK_STATE_FAILED);
  const std::string idle =
      PutForRetention(*store, ids, 2, 10, v1::TASK_STATE_QUEUED);
  const std::string busy =
      PutForRetention(*store, ids, 3, 90, v1::TASK_STATE_RUNNING);

  EXPECT_THAT(*store->ListDueTasks(RetentionAt(20), RetentionAt(10), 100),
              IsEmpty());
  EXPECT_THAT(*store->ListDueTasks(RetentionAt(21), 0, 100),
              ElementsAre(early));
  EXPECT_THAT(*store->ListDueTasks(RetentionAt(51), 0, 100),
              ElementsAre(early, late));
  EXPECT_THAT(*store->ListDueTasks(RetentionAt(51), RetentionAt(11), 100),
              ElementsAre(early, late, idle));
  EXPECT_THAT(*store->ListDueTasks(0, RetentionAt(91), 100),
              ElementsAre(idle, busy));
  EXPECT_THAT(*store->ListDueTasks(RetentionAt(51), RetentionAt(91), 3),
              ElementsAre(early, late, idle));

  // A finished task leaves the unfinished half.
  v1::Task previous = *store->GetTask(busy);
  v1::Task finished = previous;
  finished.set_state(v1::TASK_STATE_CANCELED);
  *finished.mutable_update_time() =
      ToProtoTime(kRetentionStart + absl::Seconds(95));
  *finished.mutable_finish_time() = finished.update_time();
  TaskWrite write;
  write.previous = &previous;
  write.task = &finished;
  ASSERT_TRUE(store->Write(write).ok());
  EXPECT_THAT(*store->ListDueTasks(0, RetentionAt(1000), 100),
              ElementsAre(idle));
  EXPECT_THAT(*store->ListDueTasks(RetentionAt(1000), 0, 100),
              ElementsAre(early, late, busy));
  EXPECT_TRUE(store->VerifyIndexes().ok()) << store->VerifyIndexes();

  ASSERT_TRUE(store->PurgeTask(early, {}).ok());
  EXPECT_TRUE(absl::IsNotFound(store->PurgeTask(early, {})));
  EXPECT_THAT(*store->ListDueTasks(RetentionAt(1000), 0, 100),
              ElementsAre(late, busy));
  EXPECT_TRUE(store->VerifyIndexes().ok()) << store->VerifyIndexes();
}

TEST_P(StoreConformanceTest, WrittenTaskEventsAndEventIdSurviveReopen) {
  const v1::Task task = ParseTask(kTask);
  const v1::TaskEvent event1 = ParseEvent(kEvent1);
  const v1::TaskEvent event2 = ParseEvent(kEvent2);
  // A digest is binary: embedded NUL and high bytes must survive.
  const std::string digest("\x00\x01\xfe\xff digest", 11);
  {
    std::unique_ptr<TaskStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    TaskWrite write;
    write.task = &task;
    write.events.push_back(&event1);
    write.events.push_back(&event2);
    write.event_id.emplace("ev-q", EventIdRecord{2, digest});
    ASSERT_TRUE(store->Write(write).ok());
  }
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);

  absl::StatusOr<v1::Task> got = store->GetTask("T0001");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(SameMessage(*got, task)) << got->DebugString();

  struct Case {
    int64_t after_seq;
    int limit;
    std::vector<int64_t> seqs;
  };
  for (const Case& c : {Case{0, 100, {1, 2}}, Case{1, 100, {2}},
                        Case{2, 100, {}}, Case{0, 1, {1}}, Case{0, 0, {}}}) {
    SCOPED_TRACE(absl::StrCat("after_seq ", c.after_seq, " limit ", c.limit));
    absl::StatusOr<std::vector<v1::TaskEvent>> events =
        store->ReadEvents("T0001", c.after_seq, c.limit);
    ASSERT_TRUE(events.ok()) << events.status();
    std::vector<int64_t> seqs;
    for (const v1::TaskEvent& event : *events) {
      seqs.push_back(event.seq());
      EXPECT_TRUE(SameMessage(event, event.seq() == 1 ? event1 : event2));
    }
    EXPECT_THAT(seqs, ElementsAreArray(c.seqs));
  }

  absl::StatusOr<absl::optional<EventIdRecord>> record =
      store->GetEventIdRecord("T0001", "ev-q");
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_TRUE(record->has_value());
  EXPECT_EQ((*record)->seq, 2);
  EXPECT_EQ((*record)->body_digest, digest);

  absl::StatusOr<absl::optional<EventIdRecord>> unseen =
      store->GetEventIdRecord("T0001", "ev-other");
  ASSERT_TRUE(unseen.ok()) << unseen.status();
  EXPECT_FALSE(unseen->has_value());
  unseen = store->GetEventIdRecord("T0002", "ev-q");
  ASSERT_TRUE(unseen.ok()) << unseen.status();
  EXPECT_FALSE(unseen->has_value());
}

TEST_P(StoreConformanceTest, UnknownTasksAreNotFoundAndHaveNoEvents) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Task task = ParseTask(kTask);
  TaskWrite write;
  write.task = &task;
  ASSERT_TRUE(store->Write(write).ok());

  for (const char* id : {"T0002", "T000", "T00010", ""}) {
    SCOPED_TRACE(id);
    EXPECT_EQ(store->GetTask(id).status().code(), absl::StatusCode::kNotFound);
    absl::StatusOr<std::vector<v1::TaskEvent>> events =
        store->ReadEvents(id, 0, 100);
    ASSERT_TRUE(events.ok()) << events.status();
    EXPECT_THAT(*events, IsEmpty());
  }
}

TEST_P(StoreConformanceTest, TaskSnapshotIsStoredWithoutItsEvents) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  v1::Task task = ParseTask(kTask);
  *task.add_events() = ParseEvent(kEvent1);
  TaskWrite write;
  write.task = &task;
  ASSERT_TRUE(store->Write(write).ok());
  absl::StatusOr<v1::Task> got = store->GetTask("T0001");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->events_size(), 0);
  task.clear_events();
  EXPECT_TRUE(SameMessage(*got, task));
}

TEST_P(StoreConformanceTest, TimelinesOfTasksWhoseIdsArePrefixesStayApart) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::vector<std::string> ids = {"AB", "ABC", "A"};
  for (size_t i = 0; i < ids.size(); ++i) {
    v1::Task task;
    task.set_task_id(ids[i]);
    std::vector<v1::TaskEvent> events(i + 1);
    TaskWrite write;
    write.task = &task;
    for (size_t seq = 1; seq <= events.size(); ++seq) {
      events[seq - 1].set_seq(static_cast<int64_t>(seq));
      events[seq - 1].set_task_id(ids[i]);
      write.events.push_back(&events[seq - 1]);
    }
    ASSERT_TRUE(store->Write(write).ok());
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    SCOPED_TRACE(ids[i]);
    absl::StatusOr<std::vector<v1::TaskEvent>> events =
        store->ReadEvents(ids[i], 0, 100);
    ASSERT_TRUE(events.ok()) << events.status();
    ASSERT_EQ(events->size(), i + 1);
    for (const v1::TaskEvent& event : *events) {
      EXPECT_EQ(event.task_id(), ids[i]);
    }
  }
}

TEST_P(StoreConformanceTest, IndexesFollowStateAndUpstreamChanges) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Task submitted = ParseTask(R"(
      task_id: "T0001" account_id: "acct-1" model: "veo-3"
      state: TASK_STATE_SUBMITTED)");
  TaskWrite create;
  create.task = &submitted;
  ASSERT_TRUE(store->Write(create).ok());
  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_SUBMITTED)),
              ElementsAre("T0001"));
  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_QUEUED)), IsEmpty());
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kUpstream, "up-9")),
              IsEmpty());

  v1::Task queued = submitted;
  queued.set_state(v1::TASK_STATE_QUEUED);
  queued.set_upstream_task_id("up-9");
  TaskWrite update;
  update.previous = &submitted;
  update.task = &queued;
  ASSERT_TRUE(store->Write(update).ok());

  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_QUEUED)),
              ElementsAre("T0001"));
  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_SUBMITTED)), IsEmpty());
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kUpstream, "up-9")),
              ElementsAre("T0001"));
  // Unchanged indexes still list it exactly once.
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kAccount, "acct-1")),
              ElementsAre("T0001"));
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kModel, "veo-3")),
              ElementsAre("T0001"));
  // Scans hand out the current snapshot.
  std::vector<v1::TaskState> states;
  ASSERT_TRUE(store
                  ->Scan(ValueScan(ScanIndex::kUpstream, "up-9"),
                         [&](const v1::Task& task) {
                           states.push_back(task.state());
                           return true;
                         })
                  .ok());
  EXPECT_THAT(states, ElementsAre(v1::TASK_STATE_QUEUED));

  // And after a reopen.
  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_QUEUED)),
              ElementsAre("T0001"));
  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_SUBMITTED)), IsEmpty());
}

TEST_P(StoreConformanceTest, IndexValuesThatArePrefixesOfEachOtherStayApart) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  // Account "a" with task "bT2" and account "ab" with task "T1": equal
  // value+task_id bytes must not mix the two accounts.
  const v1::Task in_ab = ParseTask(R"(task_id: "T1" account_id: "ab")");
  const v1::Task in_a = ParseTask(R"(task_id: "bT2" account_id: "a")");
  for (const v1::Task* task : {&in_ab, &in_a}) {
    TaskWrite write;
    write.task = task;
    ASSERT_TRUE(store->Write(write).ok());
  }
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kAccount, "a")),
              ElementsAre("bT2"));
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kAccount, "ab")),
              ElementsAre("T1"));
  EXPECT_THAT(ScanIds(*store, ValueScan(ScanIndex::kAccount, "")), IsEmpty());
}

TEST_P(StoreConformanceTest, ScansReturnNewestFirst) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::vector<std::string> ids = WriteTasks(store.get());
  ASSERT_TRUE(std::is_sorted(ids.begin(), ids.end()));

  std::vector<std::string> newest_first(ids.rbegin(), ids.rend());
  TaskScan all;
  all.index = ScanIndex::kAll;
  EXPECT_EQ(ScanIds(*store, all), newest_first);
  EXPECT_EQ(ScanIds(*store, StateScan(v1::TASK_STATE_SUBMITTED)), newest_first);

  std::vector<std::string> account_a;
  for (int i = kTasks - 1; i >= 0; i -= 1) {
    if (i % 2 == 0) account_a.push_back(ids[i]);
  }
  EXPECT_EQ(ScanIds(*store, ValueScan(ScanIndex::kAccount, "acct-a")),
            account_a);
}

TEST_P(StoreConformanceTest, PagesVisitEveryTaskExactlyOnce) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::vector<std::string> ids = WriteTasks(store.get());

  std::vector<std::string> all_newest_first(ids.rbegin(), ids.rend());
  std::vector<std::string> b_newest_first;
  for (int i = kTasks - 1; i >= 0; --i) {
    if (i % 2 == 1) b_newest_first.push_back(ids[i]);
  }
  struct Case {
    TaskScan scan;
    const std::vector<std::string>* expected;
  };
  TaskScan all;
  all.index = ScanIndex::kAll;
  const std::vector<Case> scans = {
      {all, &all_newest_first},
      {ValueScan(ScanIndex::kAccount, "acct-b"), &b_newest_first},
      {StateScan(v1::TASK_STATE_SUBMITTED), &all_newest_first},
  };
  for (const Case& c : scans) {
    for (int page_size : {1, 3, 7, 12, 25, 100}) {
      SCOPED_TRACE(absl::StrCat("index ", static_cast<int>(c.scan.index),
                                " page_size ", page_size));
      std::vector<std::string> seen;
      TaskScan scan = c.scan;
      scan.max_visits = page_size;
      for (int page = 0; page <= kTasks + 1; ++page) {
        std::vector<std::string> this_page;
        absl::StatusOr<std::string> last =
            store->Scan(scan, [&](const v1::Task& task) {
              this_page.push_back(task.task_id());
              return true;
            });
        ASSERT_TRUE(last.ok()) << last.status();
        EXPECT_LE(static_cast<int>(this_page.size()), page_size);
        if (this_page.empty()) {
          EXPECT_EQ(*last, "");
          break;
        }
        EXPECT_EQ(*last, this_page.back());
        seen.insert(seen.end(), this_page.begin(), this_page.end());
        scan.resume_after_task_id = *last;
      }
      EXPECT_EQ(seen, *c.expected);
    }
  }
}

TEST_P(StoreConformanceTest, VisitorCanStopAScanEarly) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::vector<std::string> ids = WriteTasks(store.get());
  TaskScan scan;
  scan.index = ScanIndex::kAll;
  int visits = 0;
  absl::StatusOr<std::string> last =
      store->Scan(scan, [&](const v1::Task&) { return ++visits < 3; });
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(visits, 3);
  EXPECT_EQ(*last, ids[kTasks - 3]);
}

TEST_P(StoreConformanceTest, ConcurrentWritersLoseNothing) {
  // sync_writes stays on (the default): 4800 synced writes from 8 threads
  // take a few seconds thanks to group commit.
  constexpr int kThreads = 8;
  constexpr int kTasksPerThread = 200;
  constexpr int kEventsPerTask = 3;
  constexpr v1::TaskState kStates[kEventsPerTask] = {
      v1::TASK_STATE_SUBMITTED, v1::TASK_STATE_QUEUED, v1::TASK_STATE_RUNNING};
  auto task_id = [](int thread, int i) {
    return absl::StrFormat("W%d-T%04d", thread, i);
  };
  {
    std::unique_ptr<TaskStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kTasksPerThread; ++i) {
          v1::Task previous;
          for (int seq = 1; seq <= kEventsPerTask; ++seq) {
            v1::Task task = previous;
            task.set_task_id(task_id(t, i));
            task.set_account_id(absl::StrCat("acct-", t));
            task.set_state(kStates[seq - 1]);
            task.set_last_event_seq(seq);
            v1::TaskEvent event;
            event.set_seq(seq);
            event.set_task_id(task.task_id());
            event.set_state_after(task.state());
            TaskWrite write;
            write.previous = seq == 1 ? nullptr : &previous;
            write.task = &task;
            write.events.push_back(&event);
            if (!store->Write(write).ok()) ++failures;
            previous = task;
          }
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_FALSE(store->failed());
  }

  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  int tasks = 0;
  int events = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kTasksPerThread; ++i) {
      const std::string id = task_id(t, i);
      absl::StatusOr<v1::Task> task = store->GetTask(id);
      ASSERT_TRUE(task.ok()) << task.status();
      EXPECT_EQ(task->state(), v1::TASK_STATE_RUNNING) << id;
      ++tasks;
      absl::StatusOr<std::vector<v1::TaskEvent>> timeline =
          store->ReadEvents(id, 0, 100);
      ASSERT_TRUE(timeline.ok()) << timeline.status();
      ASSERT_EQ(timeline->size(), static_cast<size_t>(kEventsPerTask)) << id;
      for (int seq = 1; seq <= kEventsPerTask; ++seq) {
        EXPECT_EQ((*timeline)[seq - 1].seq(), seq);
        EXPECT_EQ((*timeline)[seq - 1].task_id(), id);
        ++events;
      }
    }
  }
  EXPECT_EQ(tasks, kThreads * kTasksPerThread);
  EXPECT_EQ(events, kThreads * kTasksPerThread * kEventsPerTask);

  TaskScan all;
  all.index = ScanIndex::kAll;
  all.max_visits = 100000;
  EXPECT_EQ(ScanIds(*store, all).size(), 1600u);
  TaskScan running = StateScan(v1::TASK_STATE_RUNNING);
  running.max_visits = 100000;
  EXPECT_EQ(ScanIds(*store, running).size(), 1600u);
  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_SUBMITTED)), IsEmpty());
  EXPECT_THAT(ScanIds(*store, StateScan(v1::TASK_STATE_QUEUED)), IsEmpty());
  EXPECT_EQ(ScanIds(*store, ValueScan(ScanIndex::kAccount, "acct-3")).size(),
            static_cast<size_t>(kTasksPerThread));
}

// ---------------------------------------------------------------------------
// Timelines
// ---------------------------------------------------------------------------

TEST_P(StoreConformanceTest, EventRangesSkipGapsAndWalkNewestFirst) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  v1::Task task;
  task.set_task_id("T0001");
  std::vector<v1::TaskEvent> events(6);
  TaskWrite write;
  write.task = &task;
  for (int64_t seq : {1, 2, 3, 5, 6, 7}) {
    v1::TaskEvent& event = events[write.events.size()];
    event.set_seq(seq);
    event.set_task_id("T0001");
    event.set_actor(absl::StrCat("actor-", seq));
    write.events.push_back(&event);
  }
  ASSERT_TRUE(store->Write(write).ok());

  const auto seqs = [](const std::vector<v1::TaskEvent>& got) {
    std::vector<int64_t> out;
    for (const v1::TaskEvent& event : got) out.push_back(event.seq());
    return out;
  };
  absl::StatusOr<std::vector<v1::TaskEvent>> range =
      store->ReadEventRange("T0001", 2, 6);
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_THAT(seqs(*range), ElementsAre(2, 3, 5, 6));
  range = store->ReadEventRange("T0001", 6, 2);
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_THAT(*range, IsEmpty());

  std::vector<int64_t> newest_first;
  ASSERT_TRUE(store
                  ->VisitEventsNewestFirst(
                      "T0001", 2, 6,
                      [&](int64_t seq, absl::string_view bytes) {
                        v1::TaskEvent event;
                        EXPECT_TRUE(event.ParseFromArray(
                            bytes.data(), static_cast<int>(bytes.size())));
                        EXPECT_EQ(event.seq(), seq);
                        newest_first.push_back(seq);
                        return true;
                      })
                  .ok());
  EXPECT_THAT(newest_first, ElementsAre(6, 5, 3, 2));
  newest_first.clear();
  ASSERT_TRUE(store
                  ->VisitEventsNewestFirst("T0001", 0, 100,
                                           [&](int64_t seq, absl::string_view) {
                                             newest_first.push_back(seq);
                                             return newest_first.size() < 2;
                                           })
                  .ok());
  EXPECT_THAT(newest_first, ElementsAre(7, 6));

  // A folded poll rewrites its entry in place.
  v1::TaskEvent rewritten = events.back();
  rewritten.set_actor("rewritten");
  TaskWrite rewrite;
  rewrite.previous = &task;
  rewrite.task = &task;
  rewrite.events.push_back(&rewritten);
  ASSERT_TRUE(store->Write(rewrite).ok());
  absl::StatusOr<std::vector<v1::TaskEvent>> last =
      store->ReadEvents("T0001", 6, 10);
  ASSERT_TRUE(last.ok()) << last.status();
  ASSERT_EQ(last->size(), 1u);
  EXPECT_EQ((*last)[0].actor(), "rewritten");
}

TEST_P(StoreConformanceTest, VisitTaskHandsOutTheStoredSnapshot) {
  std::unique_ptr<TaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Task task = ParseTask(kTask);
  ASSERT_TRUE(Create(*store, task).ok());
  v1::Task visited;
  ASSERT_TRUE(
      store
          ->VisitTask("T0001",
                      [&](absl::string_view bytes) {
                        EXPECT_TRUE(visited.ParseFromArray(
                            bytes.data(), static_cast<int>(bytes.size())));
                        return absl::OkStatus();
                      })
          .ok());
  EXPECT_TRUE(SameMessage(visited, task));
  int calls = 0;
  EXPECT_EQ(store
                ->VisitTask("T0002",
                            [&](absl::string_view) {
                              ++calls;
                              return absl::OkStatus();
                            })
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(calls, 0);
  // The visitor's error is returned.
  EXPECT_EQ(store
                ->VisitTask("T0001",
                            [](absl::string_view) {
                              return absl::CancelledError("enough");
                            })
                .code(),
            absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace tasktrail::store
