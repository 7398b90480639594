// Tests of the RocksDB task store, on a real RocksDB in a fresh temporary
// directory per test.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "service/rules/task_id.h"
#include "store/keys.h"
#include "store/rocksdb/rocksdb_task_store.h"
#include "tasktrail/v1/task.pb.h"
#include "tests/store/scan_ids.h"
#include "tests/support/temp_dir.h"

namespace tasktrail::store {
namespace {

using ::google::protobuf::TextFormat;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class TaskStoreTest : public ::testing::Test {
 protected:
  StoreOptions Options() const {
    StoreOptions options;
    options.path = path_;
    options.block_cache_mb = 8;
    return options;
  }

  std::unique_ptr<RocksDbTaskStore> OpenStore() {
    absl::StatusOr<std::unique_ptr<RocksDbTaskStore>> store =
        RocksDbTaskStore::Open(Options());
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  testing::TempDir dir_{"store-test"};
  // A directory that does not exist yet: Open must create it.
  std::string path_ = dir_.File("db");
};

v1::Task ParseTask(const std::string& text) {
  v1::Task task;
  EXPECT_TRUE(TextFormat::ParseFromString(text, &task)) << text;
  return task;
}

v1::TaskEvent ParseEvent(const std::string& text) {
  v1::TaskEvent event;
  EXPECT_TRUE(TextFormat::ParseFromString(text, &event)) << text;
  return event;
}

bool SameMessage(const google::protobuf::Message& a,
                 const google::protobuf::Message& b) {
  return MessageDifferencer::Equals(a, b);
}

TaskScan StateScan(v1::TaskState state) {
  TaskScan scan;
  scan.index = ScanIndex::kState;
  scan.state = state;
  return scan;
}

TaskScan ValueScan(ScanIndex index, std::string value) {
  TaskScan scan;
  scan.index = index;
  scan.value = std::move(value);
  return scan;
}

// ---------------------------------------------------------------------------
// Open
// ---------------------------------------------------------------------------

TEST_F(TaskStoreTest, OpenCreatesTheDirectoryWithAFormatVersion) {
  ASSERT_FALSE(std::filesystem::exists(path_));
  {
    std::unique_ptr<RocksDbTaskStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    EXPECT_TRUE(std::filesystem::is_directory(path_));
    absl::StatusOr<absl::optional<std::string>> version =
        store->GetRaw(ColumnFamily::kMeta, kFormatVersionKey);
    ASSERT_TRUE(version.ok()) << version.status();
    ASSERT_TRUE(version->has_value());
    EXPECT_EQ(**version, kFormatVersion);
  }
  // Reopening the same directory works and keeps the version.
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<absl::optional<std::string>> version =
      store->GetRaw(ColumnFamily::kMeta, kFormatVersionKey);
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(version->value_or("<absent>"), kFormatVersion);
}

TEST_F(TaskStoreTest, SecondOpenOfAnOpenStoreIsRefused) {
  std::unique_ptr<RocksDbTaskStore> first = OpenStore();
  ASSERT_NE(first, nullptr);
  absl::StatusOr<std::unique_ptr<RocksDbTaskStore>> second =
      RocksDbTaskStore::Open(Options());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition)
      << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("already in use"));

  // Once the first one is closed, the directory can be opened again.
  first.reset();
  EXPECT_NE(OpenStore(), nullptr);
}

TEST_F(TaskStoreTest, UnknownFormatVersionIsRefused) {
  {
    std::unique_ptr<RocksDbTaskStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(
        store
            ->WriteRaw({{ColumnFamily::kMeta, std::string(kFormatVersionKey),
                         std::string("999")}})
            .ok());
  }
  absl::StatusOr<std::unique_ptr<RocksDbTaskStore>> store =
      RocksDbTaskStore::Open(Options());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("999"));
}

// ---------------------------------------------------------------------------
// Reads after a write, across a reopen
// ---------------------------------------------------------------------------

constexpr char kTask[] = R"(
  task_id: "T0001" account_id: "acct-1" model: "veo-3" state: TASK_STATE_QUEUED
  create_time { seconds: 1700000000 } charge_units: 5 request_id: "req-1"
  params { prompt: "a cat on a skateboard" duration_seconds: 8 }
  last_event_seq: 2)";
constexpr char kEvent1[] = R"(
  seq: 1 task_id: "T0001" type: EVENT_TYPE_SUBMITTED
  time { seconds: 1700000000 } state_after: TASK_STATE_SUBMITTED
  submitted { model: "veo-3" charge_units: 5 })";
constexpr char kEvent2[] = R"(
  seq: 2 task_id: "T0001" type: EVENT_TYPE_QUEUED event_id: "ev-q"
  time { seconds: 1700000005 } state_after: TASK_STATE_QUEUED
  queued { upstream_task_id: "up-1" queue_position: 14 })";

TEST_F(TaskStoreTest, WrittenTaskEventsAndEventIdSurviveReopen) {
  const v1::Task task = ParseTask(kTask);
  const v1::TaskEvent event1 = ParseEvent(kEvent1);
  const v1::TaskEvent event2 = ParseEvent(kEvent2);
  // A digest is binary: embedded NUL and high bytes must survive.
  const std::string digest("\x00\x01\xfe\xff digest", 11);
  {
    std::unique_ptr<RocksDbTaskStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    TaskWrite write;
    write.task = &task;
    write.events.push_back(&event1);
    write.events.push_back(&event2);
    write.event_id.emplace("ev-q", EventIdRecord{2, digest});
    ASSERT_TRUE(store->Write(write).ok());
  }
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
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

TEST_F(TaskStoreTest, UnknownTasksAreNotFoundAndHaveNoEvents) {
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
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

TEST_F(TaskStoreTest, TaskSnapshotIsStoredWithoutItsEvents) {
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
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

TEST_F(TaskStoreTest, TimelinesOfTasksWhoseIdsArePrefixesStayApart) {
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
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

// ---------------------------------------------------------------------------
// Indexes and scans
// ---------------------------------------------------------------------------

TEST_F(TaskStoreTest, IndexesFollowStateAndUpstreamChanges) {
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
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

TEST_F(TaskStoreTest, IndexValuesThatArePrefixesOfEachOtherStayApart) {
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
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

class ScanPagingTest : public TaskStoreTest {
 protected:
  static constexpr int kTasks = 25;

  // Writes kTasks tasks with ids from a seeded generator at increasing times,
  // alternately in accounts "acct-a" and "acct-b"; returns the ids oldest
  // first. Written in a shuffled order: the store must not rely on insertion
  // order.
  std::vector<std::string> WriteTasks(RocksDbTaskStore* store) {
    TaskIdGenerator generator(/*seed=*/20240601);
    std::vector<v1::Task> tasks(kTasks);
    std::vector<std::string> ids;
    for (int i = 0; i < kTasks; ++i) {
      tasks[i].set_task_id(generator.Next(absl::FromUnixSeconds(1700000000) +
                                          absl::Milliseconds(i * 7)));
      tasks[i].set_account_id(i % 2 == 0 ? "acct-a" : "acct-b");
      tasks[i].set_state(v1::TASK_STATE_SUBMITTED);
      ids.push_back(tasks[i].task_id());
    }
    std::vector<int> order(kTasks);
    for (int i = 0; i < kTasks; ++i)
      order[i] = (i * 11) % kTasks;  // a permutation
    for (int i : order) {
      TaskWrite write;
      write.task = &tasks[i];
      EXPECT_TRUE(store->Write(write).ok());
    }
    return ids;
  }
};

TEST_F(ScanPagingTest, ScansReturnNewestFirst) {
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
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

TEST_F(ScanPagingTest, PagesVisitEveryTaskExactlyOnce) {
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
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

TEST_F(ScanPagingTest, VisitorCanStopAScanEarly) {
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
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

// ---------------------------------------------------------------------------
// Atomic extra mutations
// ---------------------------------------------------------------------------

TEST_F(TaskStoreTest, ExtraMutationsCommitWithTheTask) {
  const std::string dedup_key = DedupKey("acct-1/content", "fingerprint-1");
  const std::string stale_key = DedupKey("acct-1/request", "old-req");
  {
    std::unique_ptr<RocksDbTaskStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store
                    ->WriteRaw({{ColumnFamily::kDedup, stale_key,
                                 std::string("T0000")}})
                    .ok());
    const v1::Task task = ParseTask(kTask);
    TaskWrite write;
    write.task = &task;
    write.extra = {
        {ColumnFamily::kDedup, dedup_key, std::string("T0001")},
        {ColumnFamily::kCounters, "submits/veo-3", std::string("1")},
        {ColumnFamily::kDedup, stale_key, absl::nullopt},  // a delete
    };
    ASSERT_TRUE(store->Write(write).ok());
  }
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->GetTask("T0001").ok());
  auto dedup = store->GetRaw(ColumnFamily::kDedup, dedup_key);
  ASSERT_TRUE(dedup.ok()) << dedup.status();
  EXPECT_EQ(dedup->value_or("<absent>"), "T0001");
  auto counter = store->GetRaw(ColumnFamily::kCounters, "submits/veo-3");
  ASSERT_TRUE(counter.ok()) << counter.status();
  EXPECT_EQ(counter->value_or("<absent>"), "1");
  auto stale = store->GetRaw(ColumnFamily::kDedup, stale_key);
  ASSERT_TRUE(stale.ok()) << stale.status();
  EXPECT_FALSE(stale->has_value());
  // Families are separate key spaces.
  auto wrong_family = store->GetRaw(ColumnFamily::kCounters, dedup_key);
  ASSERT_TRUE(wrong_family.ok()) << wrong_family.status();
  EXPECT_FALSE(wrong_family->has_value());

  std::vector<std::string> keys;
  ASSERT_TRUE(store
                  ->ScanRaw(ColumnFamily::kDedup,
                            DedupKey("acct-1/content", ""),
                            [&](absl::string_view key, absl::string_view) {
                              keys.emplace_back(key);
                              return true;
                            })
                  .ok());
  EXPECT_THAT(keys, ElementsAre(dedup_key));
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

TEST_F(TaskStoreTest, CommitAnswersInOrderOnceTheWriteIsReadable) {
  // One thread commits without waiting: the writes queue behind each
  // other's fsyncs and are grouped. Each answer comes after its write is
  // readable, in commit order, and every write survives a reopen.
  constexpr int kWrites = 300;
  {
    std::unique_ptr<RocksDbTaskStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    absl::Mutex mutex;
    std::vector<int> answered;
    int readable = 0;
    for (int i = 0; i < kWrites; ++i) {
      v1::Task task;
      task.set_task_id(absl::StrFormat("C%04d", i));
      task.set_state(v1::TASK_STATE_SUBMITTED);
      TaskWrite write;
      write.task = &task;
      absl::StatusOr<PreparedWrite> prepared = store->Prepare(write);
      ASSERT_TRUE(prepared.ok()) << prepared.status();
      store->Commit(*std::move(prepared),
                    [&, i, id = task.task_id()](absl::Status status) {
                      EXPECT_TRUE(status.ok()) << status;
                      const bool found = store->GetTask(id).ok();
                      absl::MutexLock lock(&mutex);
                      answered.push_back(i);
                      if (found) ++readable;
                    });
    }
    absl::MutexLock lock(&mutex);
    auto all_answered = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
      return answered.size() == static_cast<size_t>(kWrites);
    };
    mutex.Await(absl::Condition(&all_answered));
    EXPECT_TRUE(std::is_sorted(answered.begin(), answered.end()));
    EXPECT_EQ(readable, kWrites);
  }
  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  TaskScan all;
  all.index = ScanIndex::kAll;
  all.max_visits = 100000;
  EXPECT_EQ(ScanIds(*store, all).size(), static_cast<size_t>(kWrites));
}

TEST_F(TaskStoreTest, ConcurrentWritersLoseNothing) {
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
    std::unique_ptr<RocksDbTaskStore> store = OpenStore();
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

  std::unique_ptr<RocksDbTaskStore> store = OpenStore();
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

}  // namespace
}  // namespace tasktrail::store
