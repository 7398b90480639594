// The Tracker's answer to a conflicting commit (ABORTED, store/task_store.h):
// every read-modify-write is prepared again from fresh reads and answered
// once it commits, and given up with ABORTED after
// ConflictRetrier::kMaxAttempts. A store wrapper injects the conflicts in
// front of a real RocksDbTaskStore, which never conflicts by itself.
#include "service/tracker/conflict_retry.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/rules/catalog.h"
#include "service/rules/clock.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/tracker.h"
#include "store/rocksdb/rocksdb_task_store.h"
#include "store/task_store.h"
#include "tests/store/scan_ids.h"
#include "tests/support/temp_dir.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;

// Answers the next `Inject(n)` commits ABORTED without applying them, as a
// shared store does when another replica wrote first; everything else goes
// to `inner`.
class ConflictInjectingStore final : public store::TaskStore {
 public:
  explicit ConflictInjectingStore(store::TaskStore* inner) : inner_(inner) {}

  void Inject(int conflicts) { to_inject_ = conflicts; }
  int injected() const { return injected_; }

  void Commit(store::PreparedWrite prepared,
              absl::AnyInvocable<void(absl::Status)> done) override {
    if (to_inject_.fetch_sub(1) > 0) {
      ++injected_;
      std::move(done)(absl::AbortedError("injected conflict"));
      return;
    }
    inner_->Commit(std::move(prepared), std::move(done));
  }

  absl::Status VisitTask(absl::string_view task_id,
                         BytesVisitor visit) const override {
    return inner_->VisitTask(task_id, visit);
  }
  absl::StatusOr<std::vector<v1::TaskEvent>> ReadEvents(
      absl::string_view task_id, int64_t after_seq, int limit) const override {
    return inner_->ReadEvents(task_id, after_seq, limit);
  }
  absl::StatusOr<std::vector<v1::TaskEvent>> ReadEventRange(
      absl::string_view task_id, int64_t first_seq,
      int64_t last_seq) const override {
    return inner_->ReadEventRange(task_id, first_seq, last_seq);
  }
  absl::Status VisitEvents(absl::string_view task_id, int64_t after_seq,
                           int limit, BytesVisitor visit) const override {
    return inner_->VisitEvents(task_id, after_seq, limit, visit);
  }
  absl::Status VisitEventRange(absl::string_view task_id, int64_t first_seq,
                               int64_t last_seq,
                               BytesVisitor visit) const override {
    return inner_->VisitEventRange(task_id, first_seq, last_seq, visit);
  }
  absl::Status VisitEventsNewestFirst(
      absl::string_view task_id, int64_t first_seq, int64_t last_seq,
      absl::FunctionRef<bool(int64_t seq, absl::string_view bytes)> visit)
      const override {
    return inner_->VisitEventsNewestFirst(task_id, first_seq, last_seq, visit);
  }
  absl::StatusOr<absl::optional<store::EventIdRecord>> GetEventIdRecord(
      absl::string_view task_id, absl::string_view event_id) const override {
    return inner_->GetEventIdRecord(task_id, event_id);
  }
  absl::StatusOr<store::PreparedWrite> Prepare(
      const store::TaskWrite& write) const override {
    return inner_->Prepare(write);
  }
  store::PreparedWrite PrepareRaw(
      const std::vector<store::RawMutation>& mutations) const override {
    return inner_->PrepareRaw(mutations);
  }
  absl::StatusOr<std::string> ScanStoredTasks(
      const store::TaskScan& scan,
      const std::function<bool(absl::string_view task_id,
                               absl::string_view snapshot)>& visit)
      const override {
    return inner_->ScanStoredTasks(scan, visit);
  }
  absl::StatusOr<absl::optional<store::DedupRecord>> GetDedupRecord(
      absl::string_view key, int64_t now_unix_micros) const override {
    return inner_->GetDedupRecord(key, now_unix_micros);
  }
  absl::Status ScanCounters(
      int64_t first_minute, int64_t end_minute,
      const std::function<void(const store::ParsedCounterKey& counter,
                               int64_t value)>& visit) const override {
    return inner_->ScanCounters(first_minute, end_minute, visit);
  }
  absl::Status ScanQueueSamples(
      absl::string_view model,
      const std::function<void(store::QueueSample sample)>& visit)
      const override {
    return inner_->ScanQueueSamples(model, visit);
  }
  absl::Status WriteAudit(absl::string_view task_id, int64_t unix_micros,
                          uint64_t nonce, std::string entry) override {
    return inner_->WriteAudit(task_id, unix_micros, nonce, std::move(entry));
  }
  absl::Status ScanAudit(absl::string_view task_id,
                         const std::function<void(absl::string_view entry)>&
                             visit) const override {
    return inner_->ScanAudit(task_id, visit);
  }
  absl::Status ScanAuditNewestFirst(
      absl::string_view task_id, absl::string_view before_position,
      absl::FunctionRef<bool(absl::string_view position,
                             absl::string_view entry)>
          visit) const override {
    return inner_->ScanAuditNewestFirst(task_id, before_position, visit);
  }
  absl::Status WriteRaw(const std::vector<store::RawMutation>& mutations,
                        Durability durability) override {
    return inner_->WriteRaw(mutations, durability);
  }
  absl::StatusOr<std::vector<std::string>> ListDueTasks(
      int64_t finished_before_unix_micros,
      int64_t unfinished_before_unix_micros, int limit) const override {
    return inner_->ListDueTasks(finished_before_unix_micros,
                                unfinished_before_unix_micros, limit);
  }
  absl::StatusOr<store::PreparedWrite> PreparePurge(
      absl::string_view task_id,
      absl::Span<const std::string> dedup_keys) const override {
    return inner_->PreparePurge(task_id, dedup_keys);
  }
  absl::Status VerifyIndexes() const override {
    return inner_->VerifyIndexes();
  }
  bool failed() const override { return inner_->failed(); }
  absl::StatusOr<store::BackupInfo> CreateBackup() override {
    return inner_->CreateBackup();
  }
  absl::StatusOr<std::vector<store::BackupInfo>> ListBackups() const override {
    return inner_->ListBackups();
  }

 private:
  store::TaskStore* const inner_;
  std::atomic<int> to_inject_{0};
  std::atomic<int> injected_{0};
};

class ConflictRetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store::StoreOptions options;
    options.path = dir_.File("db");
    options.block_cache_mb = 8;
    absl::StatusOr<std::unique_ptr<store::RocksDbTaskStore>> opened =
        store::RocksDbTaskStore::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    inner_ = *std::move(opened);
    store_ = std::make_unique<ConflictInjectingStore>(inner_.get());
    tracker_ = std::make_unique<Tracker>(store_.get(), &catalog_,
                                         SystemClock::Get(), &hub_);
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

  std::vector<std::string> AllTaskIds() {
    store::TaskScan all;
    all.index = store::ScanIndex::kAll;
    return store::ScanIds(*store_, all);
  }

  testing::TempDir dir_{"conflict-retry-test"};
  CatalogHolder catalog_{Catalog::BuiltIn()};
  EventHub hub_;
  std::unique_ptr<store::RocksDbTaskStore> inner_;
  std::unique_ptr<ConflictInjectingStore> store_;
  std::unique_ptr<Tracker> tracker_;
};

TEST_F(ConflictRetryTest, ASubmissionThatConflictedOnceIsPreparedAgain) {
  store_->Inject(1);
  absl::StatusOr<v1::SubmitTaskResponse> submitted =
      AwaitWrite(*tracker_, &Tracker::SubmitTask, Request("req-1"), "");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(store_->injected(), 1);
  EXPECT_FALSE(submitted->deduplicated());
  // One task: the conflicting attempt wrote nothing.
  EXPECT_THAT(AllTaskIds(),
              ::testing::ElementsAre(submitted->task().task_id()));
  EXPECT_TRUE(store_->GetTask(submitted->task().task_id()).ok());
  EXPECT_TRUE(store_->VerifyIndexes().ok());
}

TEST_F(ConflictRetryTest, AnEventAndANoteThatConflictedAreAppliedOnce) {
  absl::StatusOr<v1::SubmitTaskResponse> submitted =
      AwaitWrite(*tracker_, &Tracker::SubmitTask, Request(""), "");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string task_id = submitted->task().task_id();

  store_->Inject(2);
  v1::RecordEventRequest queued;
  queued.set_task_id(task_id);
  queued.set_event_id("ev-queued");
  queued.mutable_queued()->set_upstream_task_id("up-1");
  absl::StatusOr<v1::RecordEventResponse> recorded =
      AwaitWrite(*tracker_, &Tracker::RecordEvent, queued, "");
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  EXPECT_EQ(store_->injected(), 2);
  EXPECT_TRUE(recorded->applied());

  store_->Inject(1);
  v1::AddNoteRequest note;
  note.set_task_id(task_id);
  note.set_text("looked at it");
  absl::StatusOr<v1::Task> noted =
      AwaitWrite(*tracker_, &Tracker::AddNote, note, "");
  ASSERT_TRUE(noted.ok()) << noted.status();
  EXPECT_EQ(store_->injected(), 3);

  absl::StatusOr<std::vector<v1::TaskEvent>> timeline =
      store_->ReadEvents(task_id, 0, 100);
  ASSERT_TRUE(timeline.ok()) << timeline.status();
  ASSERT_EQ(timeline->size(), 3u);
  EXPECT_EQ((*timeline)[1].type(), v1::EVENT_TYPE_QUEUED);
  EXPECT_EQ((*timeline)[2].type(), v1::EVENT_TYPE_NOTE_ADDED);
}

TEST_F(ConflictRetryTest, AWriteThatKeepsConflictingIsGivenUpWithAborted) {
  store_->Inject(1000);
  absl::StatusOr<v1::SubmitTaskResponse> submitted =
      AwaitWrite(*tracker_, &Tracker::SubmitTask, Request("req-1"), "");
  EXPECT_EQ(submitted.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(submitted.status().message(), HasSubstr("send it again"));
  EXPECT_EQ(store_->injected(), ConflictRetrier::kMaxAttempts);
  EXPECT_THAT(AllTaskIds(), ::testing::IsEmpty());

  // Once the conflicts stop, the same request goes through.
  store_->Inject(0);
  submitted = AwaitWrite(*tracker_, &Tracker::SubmitTask, Request("req-1"), "");
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_FALSE(submitted->deduplicated());
}

}  // namespace
}  // namespace tasktrail
