#include "store/rocksdb/rocksdb_task_store.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/listener.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"
#include "store/rocksdb/commit_queue.h"
#include "store/rocksdb/index_entries.h"
#include "store/rocksdb/rocksdb_options.h"
#include "store/rocksdb/rocksdb_status.h"

namespace tasktrail::store {
namespace {

using v1::Task;
using v1::TaskEvent;

// The options of a read on the calling thread: inside a BulkReadScope the
// blocks read are not put in the block cache (a pass over the whole store
// would evict the foreground's working set). No readahead is set: RocksDB's
// own grows while an iterator reads in sequence, whereas a fixed one is
// read in full by every iterator, however few keys it visits.
rocksdb::ReadOptions ThreadReadOptions() {
  rocksdb::ReadOptions options;
  if (BulkReadScope::Active()) {
    options.fill_cache = false;
  }
  return options;
}

// Parses the stored `bytes` of an event of `task_id` onto `events`.
absl::Status ParseEvent(absl::string_view task_id, absl::string_view bytes,
                        std::vector<TaskEvent>* events) {
  TaskEvent& event = events->emplace_back();
  if (!event.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    events->pop_back();
    return absl::DataLossError(
        absl::StrCat("stored event of task ", task_id, " does not parse"));
  }
  return absl::OkStatus();
}

// The answer to a write once an earlier write has failed.
absl::Status RefusedAfterFailure() {
  return absl::UnavailableError(
      "the store failed an earlier write and refuses writes until restart");
}

// The failure reported for RocksDB's `status` of a failed write.
absl::Status WriteFailure(const rocksdb::Status& status) {
  return absl::UnavailableError(
      absl::StrCat(status.ToString(),
                   "; the store refuses writes until tasktraild is restarted"));
}

// Hands RocksDB's warnings and errors to StoreOptions::log, in place of
// RocksDB's LOG file in the data directory. That file is written through a
// WritableFileWriter, like the WAL, on the same file system: when the disk is
// full, the line about the failed write fails to be written too, and the
// next line (from the thread that polls for free space to recover) finds
// the writer failed and aborts the process on librocksdb's assertion
// `sync_without_flush_called_`. Nothing here touches the disk.
class ForwardingLogger final : public rocksdb::Logger {
 public:
  using Sink = std::function<void(absl::LogSeverity, absl::string_view)>;

  explicit ForwardingLogger(Sink sink)
      : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL),
        sink_(std::move(sink)) {}

  // Lines without a level are INFO lines and headers (the options dump).
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
  void LogHeader(const char* /*format*/, va_list /*ap*/) override {}

  void Logv(const rocksdb::InfoLogLevel level, const char* format,
            va_list ap) override {
    if (sink_ == nullptr || level < GetInfoLogLevel() ||
        level >= rocksdb::InfoLogLevel::HEADER_LEVEL) {
      return;
    }
    char line[1024];
    va_list copy;
    va_copy(copy, ap);
    const int length = std::vsnprintf(line, sizeof(line), format, copy);
    va_end(copy);
    if (length < 0) return;
    std::string message;
    if (static_cast<size_t>(length) < sizeof(line)) {
      message.assign(line, static_cast<size_t>(length));
    } else {
      message.resize(static_cast<size_t>(length) + 1);
      std::vsnprintf(message.data(), message.size(), format, ap);
      message.resize(static_cast<size_t>(length));
    }
    while (!message.empty() && message.back() == '\n') message.pop_back();
    sink_(level == rocksdb::InfoLogLevel::WARN_LEVEL
              ? absl::LogSeverity::kWarning
              : absl::LogSeverity::kError,
          message);
  }

 private:
  const Sink sink_;
};

// `status` with `what` (the write it answers) before its message.
absl::Status NamingTheWrite(absl::string_view what,
                            const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(what, ": ", status.message()));
}

bool IsLockError(const rocksdb::Status& status) {
  return status.IsIOError() &&
         status.ToString().find("lock") != std::string::npos;
}

// The index prefix a scan walks.
std::string ScanPrefix(const TaskScan& scan) {
  const std::string state(1, static_cast<char>(scan.state));
  switch (scan.index) {
    case ScanIndex::kAll:
      return "";
    case ScanIndex::kAccount:
      return IndexPrefix(IndexKind::kAccount, scan.value);
    case ScanIndex::kState:
      return IndexPrefix(IndexKind::kState, state);
    case ScanIndex::kModel:
      return IndexPrefix(IndexKind::kModel, scan.value);
    case ScanIndex::kUpstream:
      return IndexPrefix(IndexKind::kUpstream, scan.value);
    case ScanIndex::kRequest:
      return IndexPrefix(IndexKind::kRequest, scan.value);
    case ScanIndex::kUnfinished:
      return IndexPrefix(IndexKind::kUnfinished, "");
    case ScanIndex::kOwed:
      return IndexPrefix(IndexKind::kOwed, "");
    case ScanIndex::kRoute:
      return IndexPrefix(IndexKind::kRoute, scan.value);
    case ScanIndex::kAccountState:
      return IndexPrefix(IndexKind::kAccountState,
                         PairIndexValue(scan.value, state));
    case ScanIndex::kModelState:
      return IndexPrefix(IndexKind::kModelState,
                         PairIndexValue(scan.value, state));
  }
  return "";
}

std::string EncodeEventIdRecord(const EventIdRecord& record) {
  std::string value;
  AppendBigEndian64(static_cast<uint64_t>(record.seq), &value);
  value.append(record.body_digest);
  return value;
}

// Calls `visit` with every stored task, in task id order, until it returns
// an error. DATA_LOSS when a snapshot does not parse.
absl::Status VisitEveryTask(
    rocksdb::DB& db, rocksdb::ColumnFamilyHandle* tasks,
    const std::function<absl::Status(const Task&)>& visit) {
  std::unique_ptr<rocksdb::Iterator> it(
      db.NewIterator(rocksdb::ReadOptions(), tasks));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    Task task;
    if (!task.ParseFromArray(it->value().data(),
                             static_cast<int>(it->value().size()))) {
      return absl::DataLossError(absl::StrCat(
          "stored task ", it->key().ToString(), " does not parse"));
    }
    absl::Status visited = visit(task);
    if (!visited.ok()) return visited;
  }
  return FromRocks(it->status(), "scanning tasks");
}

}  // namespace

// The store's failure state. RocksDB calls it as a listener, so that a flush
// or compaction that fails leaves the store failed as a failed commit does,
// and so that RocksDB's automatic recovery from the error is declined: as
// soon as the file system reports free space, that recovery syncs the WAL
// whose append failed, flushes the memtables and writes the MANIFEST, all
// through a database the store has given up on.
class RocksDbTaskStore::FailureLatch final : public rocksdb::EventListener {
 public:
  explicit FailureLatch(std::function<void(const absl::Status&)> on_failure)
      : on_failure_(std::move(on_failure)) {}

  // Marks the store failed; the first call reports `failure` to on_failure.
  void Trip(const absl::Status& failure) {
    if (!tripped_.exchange(true, std::memory_order_acq_rel) &&
        on_failure_ != nullptr) {
      on_failure_(failure);
    }
  }

  bool tripped() const { return tripped_.load(std::memory_order_acquire); }

  const char* Name() const override { return "tasktrail.FailureLatch"; }

  void OnBackgroundError(rocksdb::BackgroundErrorReason /*reason*/,
                         rocksdb::Status* bg_error) override {
    Trip(WriteFailure(*bg_error));
  }

  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason /*reason*/,
                            rocksdb::Status /*bg_error*/,
                            bool* auto_recovery) override {
    *auto_recovery = false;
  }

 private:
  const std::function<void(const absl::Status&)> on_failure_;
  std::atomic<bool> tripped_{false};
};

absl::StatusOr<std::unique_ptr<RocksDbTaskStore>> RocksDbTaskStore::Open(
    const StoreOptions& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("store path is empty");
  }
  RocksDbOptions tuned = TunedRocksDbOptions(options.block_cache_mb,
                                             options.counter_retention_minutes);
  rocksdb::DBOptions& db_options = tuned.db;
  db_options.info_log = std::make_shared<ForwardingLogger>(options.log);
  // After a failed write the store refuses writes until it is reopened, and
  // RocksDB does not try to resume on its own (see FailureLatch).
  auto failure = std::make_shared<FailureLatch>(options.on_failure);
  db_options.listeners.push_back(failure);
  db_options.max_bgerror_resume_count = 0;
  if (options.env != nullptr) db_options.env = options.env.get();

  // RocksDB creates a missing directory too, but only after logging an error
  // about it (to StoreOptions::log).
  rocksdb::Status created = db_options.env->CreateDirIfMissing(options.path);
  if (!created.ok()) {
    return FromRocks(
        created, absl::StrCat("creating database directory ", options.path));
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status status = rocksdb::DB::Open(db_options, options.path,
                                             tuned.families, &handles, &raw_db);
  if (!status.ok()) {
    if (IsLockError(status)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database directory ", options.path,
          " is already in use by another process (", status.ToString(), ")"));
    }
    return FromRocks(status, absl::StrCat("opening database ", options.path));
  }
  std::unique_ptr<rocksdb::DB> db(raw_db);
  std::unique_ptr<RocksDbTaskStore> store(new RocksDbTaskStore(
      options, std::move(db), std::move(handles), std::move(failure)));
  store->counter_expiry_ = std::move(tuned.counter_expiry);

  // Check, or on a fresh store write, the format version.
  absl::StatusOr<absl::optional<std::string>> version =
      store->GetRaw(ColumnFamily::kMeta, kFormatVersionKey);
  if (!version.ok()) return version.status();
  if (!version->has_value()) {
    absl::Status written =
        store->WriteRaw({{ColumnFamily::kMeta, std::string(kFormatVersionKey),
                          std::string(kFormatVersion)}});
    if (!written.ok()) return written;
  } else if (**version == kFormatVersionWithoutFleetIndexes) {
    absl::Status upgraded = store->BackfillIndexes(
        kIndexKindsSinceVersion1,
        "adding the index entries of format versions 2 to 5");
    if (!upgraded.ok()) return upgraded;
  } else if (**version == kFormatVersionWithoutRetentionIndex) {
    absl::Status upgraded = store->BackfillIndexes(
        kIndexKindsSinceVersion2,
        "adding the retention, owed and route indexes of format versions 3 "
        "to 5");
    if (!upgraded.ok()) return upgraded;
  } else if (**version == kFormatVersionWithoutOwedIndex) {
    absl::Status upgraded = store->BackfillIndexes(
        kIndexKindsSinceVersion3,
        "adding the owed and route indexes of format versions 4 and 5");
    if (!upgraded.ok()) return upgraded;
  } else if (**version == kFormatVersionWithoutRouteIndex) {
    absl::Status upgraded = store->BackfillIndexes(
        kIndexKindsSinceVersion4, "adding the route index of format version 5");
    if (!upgraded.ok()) return upgraded;
  } else if (**version != kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database ", options.path, " has format version ", **version,
        "; this build reads format version ", kFormatVersion));
  }
  return store;
}

RocksDbTaskStore::RocksDbTaskStore(
    StoreOptions options, std::unique_ptr<rocksdb::DB> db,
    std::vector<rocksdb::ColumnFamilyHandle*> handles,
    std::shared_ptr<FailureLatch> failure)
    : options_(std::move(options)),
      db_(std::move(db)),
      handles_(std::move(handles)),
      failure_(std::move(failure)),
      commit_queue_(std::make_unique<CommitQueue>(
          [this](rocksdb::WriteBatch* batch, bool sync) {
            return ApplyBatch(batch, sync);
          },
          options_.on_commit == nullptr
              ? CommitQueue::Observe()
              : CommitQueue::Observe([this](size_t writes, double seconds) {
                  options_.on_commit(writes, seconds);
                }))) {}

RocksDbTaskStore::~RocksDbTaskStore() {
  commit_queue_.reset();  // applies what is queued
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    db_->DestroyColumnFamilyHandle(handle);
  }
  db_->Close();
}

absl::Status RocksDbTaskStore::VisitTask(absl::string_view task_id,
                                         BytesVisitor visit) const {
  rocksdb::PinnableSlice value;
  rocksdb::Status status =
      db_->Get(ThreadReadOptions(), handle(ColumnFamily::kTasks),
               rocksdb::Slice(task_id.data(), task_id.size()), &value);
  if (status.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat("task ", task_id, " not found"));
  }
  if (!status.ok()) return FromRocks(status, "reading task");
  return visit(absl::string_view(value.data(), value.size()));
}

absl::StatusOr<std::vector<TaskEvent>> RocksDbTaskStore::ReadEvents(
    absl::string_view task_id, int64_t after_seq, int limit) const {
  std::vector<TaskEvent> events;
  absl::Status read =
      VisitEvents(task_id, after_seq, limit, [&](absl::string_view bytes) {
        return ParseEvent(task_id, bytes, &events);
      });
  if (!read.ok()) return read;
  return events;
}

absl::StatusOr<std::vector<TaskEvent>> RocksDbTaskStore::ReadEventRange(
    absl::string_view task_id, int64_t first_seq, int64_t last_seq) const {
  std::vector<TaskEvent> events;
  if (last_seq >= first_seq) {
    events.reserve(static_cast<size_t>(last_seq - first_seq + 1));
  }
  absl::Status read = VisitEventRange(
      task_id, first_seq, last_seq, [&](absl::string_view bytes) {
        return ParseEvent(task_id, bytes, &events);
      });
  if (!read.ok()) return read;
  return events;
}

absl::Status RocksDbTaskStore::VisitEvents(absl::string_view task_id,
                                           int64_t after_seq, int limit,
                                           BytesVisitor visit) const {
  const std::string prefix = EventPrefix(task_id);
  const std::string start = EventKey(task_id, after_seq + 1);
  std::string upper = prefix;
  AppendBigEndian64(~uint64_t{0}, &upper);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  read_options.prefix_same_as_start = true;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(read_options, handle(ColumnFamily::kEvents)));
  int visited = 0;
  for (it->Seek(start); it->Valid() && visited < limit; it->Next(), ++visited) {
    absl::Status visited_status =
        visit(absl::string_view(it->value().data(), it->value().size()));
    if (!visited_status.ok()) return visited_status;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading events");
  return absl::OkStatus();
}

absl::Status RocksDbTaskStore::VisitEventRange(absl::string_view task_id,
                                               int64_t first_seq,
                                               int64_t last_seq,
                                               BytesVisitor visit) const {
  if (last_seq < first_seq) return absl::OkStatus();
  const size_t count = static_cast<size_t>(last_seq - first_seq + 1);
  std::vector<std::string> keys;
  keys.reserve(count);
  for (int64_t seq = first_seq; seq <= last_seq; ++seq) {
    keys.push_back(EventKey(task_id, seq));
  }
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(count);
  std::vector<rocksdb::Status> statuses(count);
  db_->MultiGet(ThreadReadOptions(), handle(ColumnFamily::kEvents), count,
                slices.data(), values.data(), statuses.data(),
                /*sorted_input=*/true);
  for (size_t i = 0; i < count; ++i) {
    if (statuses[i].IsNotFound()) continue;
    if (!statuses[i].ok()) return FromRocks(statuses[i], "reading events");
    absl::Status visited =
        visit(absl::string_view(values[i].data(), values[i].size()));
    if (!visited.ok()) return visited;
  }
  return absl::OkStatus();
}

absl::Status RocksDbTaskStore::VisitNewestFirst(
    ColumnFamily family, absl::string_view lower, absl::string_view upper,
    absl::string_view what,
    absl::FunctionRef<bool(absl::string_view key, absl::string_view value)>
        visit) const {
  const rocksdb::Slice lower_slice(lower.data(), lower.size());
  const rocksdb::Slice upper_slice(upper.data(), upper.size());
  rocksdb::ReadOptions read_options;
  read_options.iterate_lower_bound = &lower_slice;
  read_options.iterate_upper_bound = &upper_slice;
  read_options.prefix_same_as_start = true;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(read_options, handle(family)));
  for (it->SeekForPrev(upper_slice); it->Valid(); it->Prev()) {
    const rocksdb::Slice key = it->key();
    if (key.compare(upper_slice) >= 0) continue;
    if (key.compare(lower_slice) < 0) break;
    if (!visit(absl::string_view(key.data(), key.size()),
               absl::string_view(it->value().data(), it->value().size()))) {
      break;
    }
  }
  return FromRocks(it->status(), what);
}

absl::Status RocksDbTaskStore::VisitEventsNewestFirst(
    absl::string_view task_id, int64_t first_seq, int64_t last_seq,
    absl::FunctionRef<bool(int64_t seq, absl::string_view bytes)> visit) const {
  if (last_seq < first_seq || last_seq < 0) return absl::OkStatus();
  const std::string lower = EventKey(task_id, std::max<int64_t>(first_seq, 0));
  std::string upper = EventPrefix(task_id);
  AppendBigEndian64(static_cast<uint64_t>(last_seq) + 1, &upper);
  return VisitNewestFirst(
      ColumnFamily::kEvents, lower, upper, "reading events",
      [&visit](absl::string_view key, absl::string_view value) {
        if (key.size() < 8) return false;
        const auto seq = static_cast<int64_t>(
            ReadBigEndian64(key.substr(key.size() - 8, 8)));
        return visit(seq, value);
      });
}

absl::StatusOr<absl::optional<EventIdRecord>>
RocksDbTaskStore::GetEventIdRecord(absl::string_view task_id,
                                   absl::string_view event_id) const {
  absl::StatusOr<absl::optional<std::string>> raw =
      GetRaw(ColumnFamily::kEventIds, EventIdKey(task_id, event_id));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return absl::optional<EventIdRecord>();
  const std::string& value = **raw;
  if (value.size() < 8) {
    return absl::DataLossError("stored event id record is truncated");
  }
  EventIdRecord record;
  record.seq = static_cast<int64_t>(ReadBigEndian64(value));
  record.body_digest = value.substr(8);
  return absl::optional<EventIdRecord>(std::move(record));
}

absl::StatusOr<PreparedWrite> RocksDbTaskStore::Prepare(
    const TaskWrite& write) const {
  if (write.task == nullptr || write.task->task_id().empty()) {
    return absl::InvalidArgumentError("TaskWrite without a task");
  }
  const Task& task = *write.task;
  const std::string& task_id = task.task_id();
  auto batch = std::make_unique<rocksdb::WriteBatch>();

  std::string snapshot;
  if (task.events_size() > 0) {
    Task without_events = task;
    without_events.clear_events();
    without_events.SerializeToString(&snapshot);
  } else {
    task.SerializeToString(&snapshot);
  }
  batch->Put(handle(ColumnFamily::kTasks), task_id, snapshot);

  for (IndexKind kind : kAllIndexKinds) {
    const absl::optional<std::string> new_value = IndexValue(kind, task);
    const absl::optional<std::string> old_value =
        write.previous != nullptr ? IndexValue(kind, *write.previous)
                                  : absl::nullopt;
    if (old_value == new_value) continue;
    if (old_value.has_value()) {
      batch->Delete(handle(ColumnFamily::kIndexes),
                    IndexKey(kind, *old_value, task_id));
    }
    if (new_value.has_value()) {
      batch->Put(handle(ColumnFamily::kIndexes),
                 IndexKey(kind, *new_value, task_id), "");
    }
  }

  std::string event_value;
  for (const TaskEvent* event : write.events) {
    event->SerializeToString(&event_value);
    batch->Put(handle(ColumnFamily::kEvents), EventKey(task_id, event->seq()),
               event_value);
  }
  if (write.event_id.has_value()) {
    batch->Put(handle(ColumnFamily::kEventIds),
               EventIdKey(task_id, write.event_id->first),
               EncodeEventIdRecord(write.event_id->second));
  }
  AddMutations(write.extra, batch.get());
  return PreparedWrite(std::make_unique<PreparedBatch>(std::move(batch)),
                       absl::StrCat("writing task ", task_id));
}

PreparedWrite RocksDbTaskStore::PrepareRaw(
    const std::vector<RawMutation>& mutations) const {
  auto batch = std::make_unique<rocksdb::WriteBatch>();
  AddMutations(mutations, batch.get());
  return PreparedWrite(std::make_unique<PreparedBatch>(std::move(batch)),
                       "writing");
}

void RocksDbTaskStore::Commit(PreparedWrite prepared,
                              absl::AnyInvocable<void(absl::Status)> done) {
  if (failure_->tripped()) {
    std::move(done)(RefusedAfterFailure());
    return;
  }
  // REQUIRES: prepared by this store (a PreparedBatch).
  std::unique_ptr<rocksdb::WriteBatch> batch =
      std::move(static_cast<PreparedBatch*>(prepared.body())->batch);
  commit_queue_->Enqueue(std::move(batch), options_.sync_writes,
                         [what = prepared.what(),
                          done = std::move(done)](absl::Status status) mutable {
                           std::move(done)(NamingTheWrite(what, status));
                         });
}

absl::StatusOr<std::string> RocksDbTaskStore::ScanStoredTasks(
    const TaskScan& scan,
    const std::function<bool(absl::string_view task_id,
                             absl::string_view snapshot)>& visit) const {
  // Over kTasks the keys are the task ids; over an index, the prefix and the
  // task id. Task ids are ASCII, so prefix + "\xff" is above every key of
  // the prefix.
  const bool all = scan.index == ScanIndex::kAll;
  const std::string prefix = ScanPrefix(scan);
  const std::string lower = prefix + scan.min_task_id;
  const std::string upper = scan.end_task_id.empty()
                                ? (all ? std::string() : prefix + "\xff")
                                : prefix + scan.end_task_id;
  const rocksdb::Slice lower_slice(lower);
  const rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions read_options = ThreadReadOptions();
  if (!lower.empty()) read_options.iterate_lower_bound = &lower_slice;
  if (!upper.empty()) read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(
      read_options,
      handle(all ? ColumnFamily::kTasks : ColumnFamily::kIndexes)));
  const auto in_range = [&](const rocksdb::Slice& key) {
    return key.compare(lower_slice) >= 0 &&
           (upper.empty() || key.compare(upper_slice) < 0);
  };

  if (!scan.resume_after_task_id.empty()) {
    const std::string resume = prefix + scan.resume_after_task_id;
    if (scan.oldest_first) {
      it->Seek(resume);
      if (it->Valid() && it->key() == resume) it->Next();
    } else {
      it->SeekForPrev(resume);
      if (it->Valid() && it->key() == resume) it->Prev();
    }
  } else if (scan.oldest_first) {
    it->Seek(lower);
  } else if (upper.empty()) {
    it->SeekToLast();
  } else {
    it->SeekForPrev(upper);
    if (it->Valid() && !in_range(it->key())) it->Prev();
  }

  std::string last_visited;
  int visits = 0;
  for (; it->Valid() && visits < scan.max_visits;
       scan.oldest_first ? it->Next() : it->Prev()) {
    const rocksdb::Slice key = it->key();
    if (!in_range(key)) break;
    bool more = true;
    if (all) {
      last_visited.assign(key.data(), key.size());
      more = visit(last_visited,
                   absl::string_view(it->value().data(), it->value().size()));
    } else {
      absl::optional<std::string> task_id =
          TaskIdFromIndexKey(prefix, absl::string_view(key.data(), key.size()));
      if (!task_id.has_value()) break;
      absl::Status read = VisitTask(*task_id, [&](absl::string_view snapshot) {
        more = visit(*task_id, snapshot);
        return absl::OkStatus();
      });
      // Purged since the iterator read its index entry: no longer a task
      // of the scan.
      if (absl::IsNotFound(read)) continue;
      if (!read.ok()) return read;
      last_visited = *std::move(task_id);
    }
    ++visits;
    if (!more) break;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scanning tasks");
  return last_visited;
}

absl::Status RocksDbTaskStore::BackfillIndexes(
    absl::Span<const IndexKind> kinds, absl::string_view what) {
  constexpr int kTasksPerBatch = 1000;
  const absl::string_view kWhat = what;
  rocksdb::WriteBatch batch;
  int in_batch = 0;
  absl::Status visited =
      VisitEveryTask(*db_, handle(ColumnFamily::kTasks), [&](const Task& task) {
        for (IndexKind kind : kinds) {
          absl::optional<std::string> value = IndexValue(kind, task);
          if (value.has_value()) {
            batch.Put(handle(ColumnFamily::kIndexes),
                      IndexKey(kind, *value, task.task_id()), "");
          }
        }
        if (++in_batch < kTasksPerBatch) return absl::OkStatus();
        in_batch = 0;
        absl::Status applied =
            NamingTheWrite(kWhat, ApplyBatch(&batch, /*sync=*/false));
        batch.Clear();
        return applied;
      });
  if (!visited.ok()) return visited;
  batch.Put(handle(ColumnFamily::kMeta), std::string(kFormatVersionKey),
            std::string(kFormatVersion));
  // Synced: the version is written only after (and with) every entry.
  return NamingTheWrite(kWhat, ApplyBatch(&batch, /*sync=*/true));
}

absl::Status RocksDbTaskStore::VerifyIndexes() const {
  std::set<std::string> expected;
  absl::Status visited = VisitEveryTask(
      *db_, handle(ColumnFamily::kTasks), [&expected](const Task& task) {
        for (IndexKind kind : kAllIndexKinds) {
          absl::optional<std::string> value = IndexValue(kind, task);
          if (value.has_value()) {
            expected.insert(IndexKey(kind, *value, task.task_id()));
          }
        }
        return absl::OkStatus();
      });
  if (!visited.ok()) return visited;
  std::vector<std::string> differences;
  const auto note = [&differences](absl::string_view what,
                                   absl::string_view key) {
    if (differences.size() < 5) {
      differences.push_back(
          absl::StrCat(what, " index key ", absl::CHexEscape(key)));
    }
  };
  std::unique_ptr<rocksdb::Iterator> index(
      db_->NewIterator(rocksdb::ReadOptions(), handle(ColumnFamily::kIndexes)));
  size_t found = 0;
  for (index->SeekToFirst(); index->Valid(); index->Next()) {
    const std::string key = index->key().ToString();
    if (expected.count(key) == 0) {
      note("unexpected", key);
    } else {
      ++found;
    }
  }
  if (!index->status().ok()) {
    return FromRocks(index->status(), "scanning indexes");
  }
  if (found != expected.size()) {
    for (const std::string& key : expected) {
      rocksdb::PinnableSlice value;
      if (db_->Get(rocksdb::ReadOptions(), handle(ColumnFamily::kIndexes), key,
                   &value)
              .IsNotFound()) {
        note("missing", key);
      }
    }
  }
  if (differences.empty()) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("the indexes disagree with the tasks: ",
                   absl::StrJoin(differences, "; ")));
}

absl::StatusOr<absl::optional<DedupRecord>> RocksDbTaskStore::GetDedupRecord(
    absl::string_view key, int64_t now_unix_micros) const {
  absl::StatusOr<absl::optional<std::string>> raw =
      GetRaw(ColumnFamily::kDedup, key);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return absl::optional<DedupRecord>();
  absl::optional<DedupRecord> record = DecodeDedupRecord(**raw);
  if (record.has_value() && record->expire_unix_micros != 0 &&
      record->expire_unix_micros <= now_unix_micros) {
    record.reset();
  }
  return record;
}

absl::Status RocksDbTaskStore::ScanCounters(
    int64_t first_minute, int64_t end_minute,
    const std::function<void(const ParsedCounterKey& counter, int64_t value)>&
        visit) const {
  return ScanRange(ColumnFamily::kCounters, CounterMinuteStart(first_minute),
                   CounterMinuteStart(end_minute),
                   [&visit](absl::string_view key, absl::string_view value) {
                     absl::optional<ParsedCounterKey> parsed =
                         ParseCounterKey(key);
                     if (parsed.has_value()) visit(*parsed, DecodeInt64(value));
                     return true;
                   });
}

absl::Status RocksDbTaskStore::ScanQueueSamples(
    absl::string_view model,
    const std::function<void(QueueSample sample)>& visit) const {
  return ScanRaw(
      ColumnFamily::kCounters, QueueSamplePrefix(model),
      [&visit](absl::string_view key, absl::string_view value) {
        absl::optional<ParsedQueueSampleKey> parsed = ParseQueueSampleKey(key);
        if (parsed.has_value()) {
          visit(QueueSample{parsed->exit_unix_micros,
                            std::move(parsed->task_id), DecodeInt64(value)});
        }
        return true;
      });
}

absl::Status RocksDbTaskStore::WriteAudit(absl::string_view task_id,
                                          int64_t unix_micros, uint64_t nonce,
                                          std::string entry) {
  return WriteRaw({{ColumnFamily::kAudit, AuditKey(task_id, unix_micros, nonce),
                    std::move(entry)}},
                  Durability::kBuffered);
}

absl::Status RocksDbTaskStore::ScanAudit(
    absl::string_view task_id,
    const std::function<void(absl::string_view entry)>& visit) const {
  return ScanRaw(ColumnFamily::kAudit, EventPrefix(task_id),
                 [&visit](absl::string_view, absl::string_view value) {
                   visit(value);
                   return true;
                 });
}

absl::Status RocksDbTaskStore::ScanAuditNewestFirst(
    absl::string_view task_id, absl::string_view before_position,
    absl::FunctionRef<bool(absl::string_view position, absl::string_view entry)>
        visit) const {
  const std::string lower = EventPrefix(task_id);
  // Every key of the task's log sorts below its prefix followed by 0xff
  // bytes: the positions are 16 bytes (time and nonce).
  std::string upper = lower;
  if (before_position.empty()) {
    upper.append(17, '\xff');
  } else {
    upper.append(before_position.data(), before_position.size());
  }
  return VisitNewestFirst(ColumnFamily::kAudit, lower, upper,
                          "reading the audit log",
                          [&](absl::string_view key, absl::string_view value) {
                            return visit(key.substr(lower.size()), value);
                          });
}

absl::StatusOr<absl::optional<std::string>> RocksDbTaskStore::GetRaw(
    ColumnFamily family, absl::string_view key) const {
  std::string value;
  rocksdb::Status status =
      db_->Get(rocksdb::ReadOptions(), handle(family),
               rocksdb::Slice(key.data(), key.size()), &value);
  if (status.IsNotFound()) return absl::optional<std::string>();
  if (!status.ok()) return FromRocks(status, "reading");
  return absl::optional<std::string>(std::move(value));
}

absl::Status RocksDbTaskStore::ScanRange(
    ColumnFamily family, absl::string_view start, absl::string_view limit,
    const std::function<bool(absl::string_view, absl::string_view)>& visit)
    const {
  const rocksdb::Slice limit_slice(limit.data(), limit.size());
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &limit_slice;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(read_options, handle(family)));
  for (it->Seek(rocksdb::Slice(start.data(), start.size())); it->Valid();
       it->Next()) {
    if (!visit(absl::string_view(it->key().data(), it->key().size()),
               absl::string_view(it->value().data(), it->value().size()))) {
      break;
    }
  }
  return FromRocks(it->status(), "scanning");
}

absl::Status RocksDbTaskStore::ScanRaw(
    ColumnFamily family, absl::string_view prefix,
    const std::function<bool(absl::string_view, absl::string_view)>& visit)
    const {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handle(family)));
  const rocksdb::Slice prefix_slice(prefix.data(), prefix.size());
  for (it->Seek(prefix_slice);
       it->Valid() && it->key().starts_with(prefix_slice); it->Next()) {
    if (!visit(absl::string_view(it->key().data(), it->key().size()),
               absl::string_view(it->value().data(), it->value().size()))) {
      break;
    }
  }
  return FromRocks(it->status(), "scanning");
}

absl::Status RocksDbTaskStore::WriteRaw(
    const std::vector<RawMutation>& mutations, Durability durability) {
  if (durability == Durability::kSynced) {
    return CommitAndWait(PrepareRaw(mutations));
  }
  rocksdb::WriteBatch batch;
  AddMutations(mutations, &batch);
  return NamingTheWrite("writing", ApplyBatch(&batch, /*sync=*/false));
}

void RocksDbTaskStore::AddMutations(const std::vector<RawMutation>& mutations,
                                    rocksdb::WriteBatch* batch) const {
  for (const RawMutation& mutation : mutations) {
    if (mutation.add) {
      batch->Merge(handle(mutation.family), mutation.key,
                   mutation.value.value_or(EncodeInt64(0)));
    } else if (mutation.value.has_value()) {
      batch->Put(handle(mutation.family), mutation.key, *mutation.value);
    } else {
      batch->Delete(handle(mutation.family), mutation.key);
    }
  }
}

absl::Status RocksDbTaskStore::ApplyBatch(rocksdb::WriteBatch* batch,
                                          bool sync) {
  if (failure_->tripped()) return RefusedAfterFailure();
  rocksdb::WriteOptions write_options;
  write_options.sync = sync;
  rocksdb::Status status = db_->Write(write_options, batch);
  if (!status.ok()) {
    absl::Status failure = WriteFailure(status);
    failure_->Trip(failure);
    return failure;
  }
  return absl::OkStatus();
}

absl::Status RocksDbTaskStore::Compact(ColumnFamily family) {
  if (failure_->tripped()) return RefusedAfterFailure();
  rocksdb::CompactRangeOptions options;
  options.bottommost_level_compaction =
      rocksdb::BottommostLevelCompaction::kForce;
  return FromRocks(db_->CompactRange(options, handle(family), nullptr, nullptr),
                   "compacting");
}

CommitQueue::Counts RocksDbTaskStore::commit_counts() const {
  return commit_queue_->counts();
}

RocksDbTaskStore::Properties RocksDbTaskStore::properties() const {
  Properties properties;
  auto summed = [this](const std::string& name) {
    uint64_t value = 0;
    return db_->GetAggregatedIntProperty(name, &value) ? value : 0;
  };
  auto whole = [this](const std::string& name) {
    uint64_t value = 0;
    return db_->GetIntProperty(name, &value) ? value : 0;
  };
  properties.live_data_bytes =
      summed(rocksdb::DB::Properties::kEstimateLiveDataSize);
  properties.sst_bytes = summed(rocksdb::DB::Properties::kTotalSstFilesSize);
  properties.pending_compaction_bytes =
      summed(rocksdb::DB::Properties::kEstimatePendingCompactionBytes);
  properties.running_compactions =
      whole(rocksdb::DB::Properties::kNumRunningCompactions);
  properties.block_cache_bytes =
      whole(rocksdb::DB::Properties::kBlockCacheUsage);
  return properties;
}

bool RocksDbTaskStore::failed() const { return failure_->tripped(); }

}  // namespace tasktrail::store
