// The PostgreSQL store's group commit (store/postgres/pg_committer.h) on a
// throwaway cluster (tests/support/postgres_cluster.h): the writes queued
// to a commit thread commit together, each still whole or not at all and
// answered exactly once. A batch is formed deterministically by holding a
// row lock from another connection: the store's one commit thread waits on
// it with one write while the next ones queue behind it, and takes them as
// one batch once the lock goes. The tests fail when the cluster cannot
// start (scripts/install-deps.sh --test installs PostgreSQL).
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/keys.h"
#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_task_store.h"
#include "store/postgres/pg_values.h"
#include "store/task_store.h"
#include "tasktrail/v1/task.pb.h"
#include "tests/support/poll_until.h"
#include "tests/support/postgres_cluster.h"

namespace tasktrail::store::postgres {
namespace {

using ::tasktrail::testing::PollUntil;
using ::tasktrail::testing::PostgresCluster;
using ::testing::HasSubstr;

// The answers of committed writes: each write's status and how often its
// `done` was called.
class Answers {
 public:
  explicit Answers(int writes) : statuses_(writes), calls_(writes, 0) {}

  absl::AnyInvocable<void(absl::Status)> Done(int write) {
    return [this, write](absl::Status status) {
      absl::MutexLock lock(&mutex_);
      statuses_[write] = std::move(status);
      ++calls_[write];
    };
  }
  bool AllAnswered() const {
    absl::MutexLock lock(&mutex_);
    for (int calls : calls_) {
      if (calls == 0) return false;
    }
    return true;
  }
  absl::Status status(int write) const {
    absl::MutexLock lock(&mutex_);
    return statuses_[write];
  }
  int calls(int write) const {
    absl::MutexLock lock(&mutex_);
    return calls_[write];
  }

 private:
  mutable absl::Mutex mutex_;
  std::vector<absl::Status> statuses_ ABSL_GUARDED_BY(mutex_);
  std::vector<int> calls_ ABSL_GUARDED_BY(mutex_);
};

class PgCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<testing::TestDatabase> database =
        PostgresCluster::FreshDatabase("commit");
    ASSERT_TRUE(database.ok()) << database.status();
    cluster_ = database->cluster;
    database_ = database->name;
    conninfo_ = database->conninfo;
    monitor_ = Connect();
    ASSERT_NE(monitor_, nullptr);
  }

  std::unique_ptr<PgConnection> Connect() {
    absl::StatusOr<std::unique_ptr<PgConnection>> connection =
        PgConnection::Connect(conninfo_);
    EXPECT_TRUE(connection.ok()) << connection.status();
    return connection.ok() ? *std::move(connection) : nullptr;
  }

  std::unique_ptr<PgTaskStore> OpenStore(int pool_size) {
    PgStoreOptions options;
    options.conninfo = conninfo_;
    options.pool_size = pool_size;
    absl::StatusOr<std::unique_ptr<PgTaskStore>> store =
        PgTaskStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  // A connection holding, in an open transaction, the dedup row `key`:
  // writes that bind the key wait for it until it rolls back.
  std::unique_ptr<PgConnection> HoldDedupKey(const std::string& key) {
    std::unique_ptr<PgConnection> holder = Connect();
    if (holder == nullptr) return nullptr;
    EXPECT_TRUE(holder->Execute("BEGIN", "holding a row").ok());
    absl::StatusOr<PgRows> held = holder->Query(
        "INSERT INTO tasktrail.dedup_records (dedup_key, task_id) "
        "VALUES ($1, 'holder')",
        {Bytea(key)}, "holding a row");
    EXPECT_TRUE(held.ok()) << held.status();
    return holder;
  }

  // Holds `key` from another connection (HoldDedupKey) and commits through
  // `store`, whose pool has one connection, a write that binds it; returns
  // once the store's commit thread waits on the row, until the returned
  // holder rolls back. `answers` (of one write) gets the write's answer.
  std::unique_ptr<PgConnection> BlockTheCommitThread(TaskStore& store,
                                                     const std::string& key,
                                                     Answers& answers) {
    std::unique_ptr<PgConnection> holder = HoldDedupKey(key);
    if (holder == nullptr) return nullptr;
    store.Commit(
        store.PrepareRaw({RawMutation::PutDedup(key, {0, "blocked", ""})}),
        answers.Done(0));
    EXPECT_TRUE(PollUntil([&] { return LockWaiters() == 1; }));
    return holder;
  }

  // The number of sessions of the test's database waiting for a lock.
  int LockWaiters() {
    absl::StatusOr<PgRows> rows = monitor_->Query(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'",
        {}, "watching the locks");
    EXPECT_TRUE(rows.ok()) << rows.status();
    int64_t waiters = 0;
    return rows.ok() &&
                   absl::SimpleAtoi(rows->rows[0][0].value_or(""), &waiters)
               ? static_cast<int>(waiters)
               : -1;
  }

  // A new task `task_id` submitted with its first event, a content dedup
  // key of its own and one count of a counter (duplicates_blocked) of minute 7.
  static PreparedWrite NewTask(TaskStore& store, const std::string& task_id,
                               int64_t last_seq = 1) {
    v1::Task task;
    task.set_task_id(task_id);
    task.set_account_id("acct");
    task.set_model("veo-3");
    task.set_state(v1::TASK_STATE_SUBMITTED);
    task.set_last_event_seq(last_seq);
    v1::TaskEvent event;
    event.set_task_id(task_id);
    event.set_seq(1);
    event.set_type(v1::EVENT_TYPE_SUBMITTED);
    TaskWrite write;
    write.task = &task;
    write.events.push_back(&event);
    write.extra = {
        RawMutation::PutDedup(ContentDedupKey("acct", task_id),
                              {0, task_id, ""}),
        RawMutation::CountOne(7, "veo-3", CounterKind::kDuplicatesBlocked)};
    absl::StatusOr<PreparedWrite> prepared = store.Prepare(write);
    EXPECT_TRUE(prepared.ok()) << prepared.status();
    return *std::move(prepared);
  }

  // The sum of the counter `kind` of veo-3 in minute 7.
  static int64_t Counted(TaskStore& store, CounterKind kind) {
    const std::string name = CounterName(kind);
    int64_t total = 0;
    EXPECT_TRUE(
        store
            .ScanCounters(7, 8,
                          [&](const ParsedCounterKey& counter, int64_t value) {
                            if (counter.name == name) total += value;
                          })
            .ok());
    return total;
  }

  PostgresCluster* cluster_ = nullptr;
  std::string database_;
  std::string conninfo_;
  std::unique_ptr<PgConnection> monitor_;
};

TEST_F(PgCommitTest, AFailingWriteOfABatchFailsAloneAndTheOthersCommitOnce) {
  std::unique_ptr<PgTaskStore> store = OpenStore(/*pool_size=*/1);
  ASSERT_NE(store, nullptr);
  // T03 exists already: a second new T03 conflicts.
  {
    PreparedWrite existing = NewTask(*store, "T03");
    absl::Status created = absl::UnknownError("not answered");
    absl::Notification answered;
    store->Commit(std::move(existing), [&](absl::Status status) {
      created = status;
      answered.Notify();
    });
    answered.WaitForNotification();
    ASSERT_TRUE(created.ok()) << created;
  }
  const PgTaskStore::CommitStats before = store->commit_stats();

  // The commit thread waits on the held key while the batch queues.
  Answers first(1);
  std::unique_ptr<PgConnection> holder =
      BlockTheCommitThread(*store, ContentDedupKey("acct", "blocked"), first);
  ASSERT_NE(holder, nullptr);

  constexpr int kWrites = 10;
  Answers batch(kWrites);
  for (int i = 0; i < kWrites; ++i) {
    const std::string task_id = absl::StrFormat("T%02d", i);
    PreparedWrite prepared = NewTask(*store, task_id);
    if (i == 6) {
      // A CHECK constraint refuses the row: an error, not a conflict.
      prepared = NewTask(*store, task_id, /*last_seq=*/-1);
    } else if (i == 8) {
      // A counter set, then added to, in that order.
      prepared = store->PrepareRaw(
          {{ColumnFamily::kCounters,
            CounterKey(7, "veo-3", CounterName(CounterKind::kRejected)),
            EncodeInt64(10)},
           RawMutation::CountOne(7, "veo-3", CounterKind::kRejected)});
    } else if (i == 9) {
      prepared = store->PrepareRaw(
          {{ColumnFamily::kMeta, "format_version", std::string("2")}});
    }
    store->Commit(std::move(prepared), batch.Done(i));
  }
  ASSERT_TRUE(holder->Execute("ROLLBACK", "letting go").ok());
  ASSERT_TRUE(PollUntil([&] { return batch.AllAnswered(); }));
  EXPECT_TRUE(first.status(0).ok()) << first.status(0);

  for (int i : {0, 1, 2, 4, 5, 7, 8}) {
    EXPECT_TRUE(batch.status(i).ok()) << i << ": " << batch.status(i);
  }
  EXPECT_EQ(batch.status(3).code(), absl::StatusCode::kAborted);
  EXPECT_THAT(batch.status(3).message(), HasSubstr("T03 already exists"));
  EXPECT_EQ(batch.status(6).code(), absl::StatusCode::kFailedPrecondition)
      << batch.status(6);
  EXPECT_THAT(batch.status(6).message(), HasSubstr("T06"));
  EXPECT_EQ(batch.status(9).code(), absl::StatusCode::kInvalidArgument);
  // The first write, then the batch: two transactions.
  const PgTaskStore::CommitStats after = store->commit_stats();
  EXPECT_EQ(after.transactions - before.transactions, 2);
  EXPECT_EQ(after.writes - before.writes, 1 + 7);

  for (int i : {0, 1, 2, 4, 5, 7}) {
    const std::string task_id = absl::StrFormat("T%02d", i);
    EXPECT_TRUE(store->GetTask(task_id).ok()) << task_id;
    absl::StatusOr<std::vector<v1::TaskEvent>> events =
        store->ReadEvents(task_id, 0, 10);
    ASSERT_TRUE(events.ok()) << events.status();
    EXPECT_EQ(events->size(), 1u) << task_id;
  }
  EXPECT_EQ(store->GetTask("T06").status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<absl::optional<DedupRecord>> failed_key =
      store->GetDedupRecord(ContentDedupKey("acct", "T06"), 0);
  ASSERT_TRUE(failed_key.ok()) << failed_key.status();
  EXPECT_FALSE(failed_key->has_value());
  // T03 is the first one's, its second binding went with its write.
  absl::StatusOr<absl::optional<DedupRecord>> kept =
      store->GetDedupRecord(ContentDedupKey("acct", "T03"), 0);
  ASSERT_TRUE(kept.ok() && kept->has_value());
  // One count from T03's creation and one per task the batch committed;
  // the failed writes counted nothing.
  EXPECT_EQ(Counted(*store, CounterKind::kDuplicatesBlocked), 1 + 6);
  EXPECT_EQ(Counted(*store, CounterKind::kRejected), 11);

  store.reset();  // drains: nothing is answered a second time
  EXPECT_EQ(first.calls(0), 1);
  for (int i = 0; i < kWrites; ++i) EXPECT_EQ(batch.calls(i), 1) << i;
}

TEST_F(PgCommitTest, AConnectionLostMidBatchAnswersItUnavailableAndLosesNone) {
  std::unique_ptr<PgTaskStore> store = OpenStore(/*pool_size=*/1);
  ASSERT_NE(store, nullptr);
  const std::string middle_key = ContentDedupKey("acct", "middle");
  std::unique_ptr<PgConnection> middle_holder = HoldDedupKey(middle_key);
  ASSERT_NE(middle_holder, nullptr);
  Answers first(1);
  std::unique_ptr<PgConnection> first_holder =
      BlockTheCommitThread(*store, ContentDedupKey("acct", "first"), first);
  ASSERT_NE(first_holder, nullptr);

  // Write 5 of the batch waits for the middle key, after writes 0-4 ran.
  constexpr int kWrites = 10;
  Answers batch(kWrites);
  for (int i = 0; i < kWrites; ++i) {
    const std::string task_id = absl::StrFormat("L%02d", i);
    PreparedWrite prepared = NewTask(*store, task_id);
    if (i == 5) {
      prepared = store->PrepareRaw(
          {RawMutation::PutDedup(middle_key, {0, task_id, ""})});
    }
    store->Commit(std::move(prepared), batch.Done(i));
  }
  ASSERT_TRUE(first_holder->Execute("ROLLBACK", "letting go").ok());
  ASSERT_TRUE(PollUntil([&] { return first.AllAnswered(); }));
  ASSERT_TRUE(first.status(0).ok()) << first.status(0);
  ASSERT_TRUE(PollUntil([&] { return LockWaiters() == 1; }));
  absl::StatusOr<PgRows> ended = monitor_->Query(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
      "WHERE datname = current_database() AND wait_event_type = 'Lock'",
      {}, "ending the batch's connection");
  ASSERT_TRUE(ended.ok()) << ended.status();
  ASSERT_EQ(ended->rows[0][0], "1");
  ASSERT_TRUE(PollUntil([&] { return batch.AllAnswered(); }));
  ASSERT_TRUE(middle_holder->Execute("ROLLBACK", "letting go").ok());

  for (int i = 0; i < kWrites; ++i) {
    EXPECT_EQ(batch.status(i).code(), absl::StatusCode::kUnavailable)
        << i << ": " << batch.status(i);
  }
  // The store reconnects by itself; nothing of the batch was applied.
  absl::Status after = absl::UnknownError("not answered");
  ASSERT_TRUE(PollUntil([&] {
    after = store->WriteRaw(
        {RawMutation::CountOne(7, "veo-3", CounterKind::kRejected)});
    return after.ok();
  })) << after;
  for (int i = 0; i < kWrites; ++i) {
    const std::string task_id = absl::StrFormat("L%02d", i);
    EXPECT_EQ(store->GetTask(task_id).status().code(),
              absl::StatusCode::kNotFound)
        << task_id;
  }
  EXPECT_EQ(Counted(*store, CounterKind::kDuplicatesBlocked), 0);
  store.reset();
  for (int i = 0; i < kWrites; ++i) EXPECT_EQ(batch.calls(i), 1) << i;
}

TEST_F(PgCommitTest, EveryWriteAcknowledgedWhileConnectionsAreKilledIsThere) {
  std::unique_ptr<PgTaskStore> store = OpenStore(/*pool_size=*/2);
  ASSERT_NE(store, nullptr);
  constexpr int kWriters = 16;
  std::atomic<bool> stop{false};
  absl::Mutex mutex;
  std::vector<std::string> acknowledged;
  std::vector<absl::Status> refused;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int n = 0; !stop.load(); ++n) {
        const std::string task_id = absl::StrFormat("K%02d-%05d", w, n);
        absl::Status status = absl::UnknownError("not answered");
        absl::Notification answered;
        store->Commit(NewTask(*store, task_id), [&](absl::Status result) {
          status = std::move(result);
          answered.Notify();
        });
        answered.WaitForNotification();
        absl::MutexLock lock(&mutex);
        if (status.ok()) {
          acknowledged.push_back(task_id);
        } else {
          refused.push_back(status);
        }
      }
    });
  }
  const auto counts = [&] {
    absl::MutexLock lock(&mutex);
    return std::make_pair(acknowledged.size(), refused.size());
  };
  // Kill the store's connections until some writes were caught in it and
  // more were acknowledged after.
  int kills = 0;
  const bool caught = PollUntil([&] {
    absl::StatusOr<PgRows> ended = monitor_->Query(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend'",
        {}, "ending the store's connections");
    EXPECT_TRUE(ended.ok()) << ended.status();
    ++kills;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return counts().second >= 5 && kills >= 10;
  });
  const size_t acknowledged_before = counts().first;
  EXPECT_TRUE(
      PollUntil([&] { return counts().first >= acknowledged_before + 50; }));
  stop.store(true);
  for (std::thread& writer : writers) writer.join();
  ASSERT_TRUE(caught) << "no write was caught in a lost connection";

  for (const absl::Status& status : refused) {
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  }
  int missing = 0;
  for (const std::string& task_id : acknowledged) {
    if (!store->GetTask(task_id).ok() && ++missing <= 5) {
      ADD_FAILURE() << "acknowledged write of " << task_id << " is lost";
    }
  }
  EXPECT_EQ(missing, 0);
  // Every acknowledged task counted once, and no refused one more than
  // once: the counter is between the two.
  const int64_t counted = Counted(*store, CounterKind::kDuplicatesBlocked);
  EXPECT_GE(counted, static_cast<int64_t>(acknowledged.size()));
  EXPECT_LE(counted,
            static_cast<int64_t>(acknowledged.size() + refused.size()));
  EXPECT_TRUE(store->VerifyIndexes().ok());
}

TEST_F(PgCommitTest, ABatchSizeOutsideOneToSixtyFourIsRefused) {
  for (int size : {0, 65}) {
    PgStoreOptions options;
    options.conninfo = conninfo_;
    options.max_batch_writes = size;
    absl::StatusOr<std::unique_ptr<PgTaskStore>> store =
        PgTaskStore::Open(options);
    EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(store.status().message(), HasSubstr("max_batch_writes"));
  }
}

}  // namespace
}  // namespace tasktrail::store::postgres
