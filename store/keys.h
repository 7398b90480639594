// Key encoding for every column family of the tasktrail store. All keys are
// built and parsed here and nowhere else. Integers are big-endian so that the
// byte order of keys is their numeric order; variable-length parts carry a
// length prefix so that one value is never a prefix of another.
//
// Thread safety: all functions are pure.
#ifndef TASKTRAIL_STORE_KEYS_H_
#define TASKTRAIL_STORE_KEYS_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace tasktrail::store {

// Column families, declared once. The numeric values index
// `kColumnFamilyNames`; never reorder.
enum class ColumnFamily : int {
  kDefault = 0,  // unused; RocksDB requires it
  kTasks,        // task_id -> Task snapshot (without events)
  kEvents,       // EventKey(task_id, seq) -> TaskEvent
  kEventIds,     // EventIdKey(task_id, event_id) -> EventIdRecord
  kIndexes,      // IndexKey(index, value, task_id) -> "" (secondary indexes)
  kDedup,        // DedupKey(scope, key) -> owner of the dedup key
  kCounters,     // CounterKey -> int64, QueueSampleKey -> wait (records.h)
  kMeta,         // "format_version" and other store metadata
  kAudit,        // AuditKey(task_id, time, nonce) -> AuditEntry (reads)
};
inline constexpr int kColumnFamilyCount = 9;
inline constexpr const char* kColumnFamilyNames[kColumnFamilyCount] = {
    "default", "tasks",    "events", "event_ids", "indexes",
    "dedup",   "counters", "meta",   "audit"};

// Secondary indexes, stored in ColumnFamily::kIndexes with this tag as the
// first key byte. On-disk values; never renumber.
enum class IndexKind : uint8_t {
  kAccount = 1,   // account_id
  kState = 2,     // TaskState number as one byte
  kModel = 3,     // model name
  kUpstream = 4,  // upstream_task_id
  kRequest = 5,   // request_id
  // Empty value; an entry for each task in SUBMITTED, QUEUED or RUNNING.
  kUnfinished = 6,
  kAccountState = 7,  // PairIndexValue(account_id, state byte)
  kModelState = 8,    // PairIndexValue(model, state byte)
  // RetentionIndexValue(class, time): every task, by the time its retention
  // runs from (see RetentionClass).
  kRetention = 9,
  // Empty value; an entry for each task whose charge is owed back
  // (IsOwedTask in task_store.h).
  kOwed = 10,
  // Task.route: the upstream route (channel, key alias or region) of the
  // task's latest queued event; tasks without one are in no entry.
  kRoute = 11,
};

// The two halves of the retention index (IndexKind::kRetention); on-disk
// bytes, never change.
enum class RetentionClass : char {
  // SUCCEEDED, FAILED or CANCELED tasks, by finish time.
  kFinished = 'f',
  // Tasks in SUBMITTED, QUEUED or RUNNING, by the time their snapshot last
  // changed (their last event).
  kUnfinished = 'u',
};

// The value of a retention index entry: the class byte, then the time as 8
// big-endian bytes (negative times as 0). Every value has the same length,
// so the entries of one class sort by time, then task id.
std::string RetentionIndexValue(RetentionClass retention_class,
                                int64_t unix_micros);

// The value of a two-part index (kAccountState, kModelState):
// len16(first) first second.
std::string PairIndexValue(absl::string_view first, absl::string_view second);

// The store's on-disk format version, kept under kFormatVersionKey in kMeta.
// Version 1 lacks the kUnfinished, kAccountState and kModelState entries,
// version 2 the kRetention ones, version 3 the kOwed ones and version 4 the
// kRoute ones; opening any of them adds what it lacks
// (RocksDbTaskStore::Open).
inline constexpr absl::string_view kFormatVersionKey = "format_version";
inline constexpr absl::string_view kFormatVersion = "5";
inline constexpr absl::string_view kFormatVersionWithoutFleetIndexes = "1";
inline constexpr absl::string_view kFormatVersionWithoutRetentionIndex = "2";
inline constexpr absl::string_view kFormatVersionWithoutOwedIndex = "3";
inline constexpr absl::string_view kFormatVersionWithoutRouteIndex = "4";

// Appends `value` as 8 big-endian bytes.
void AppendBigEndian64(uint64_t value, std::string* out);
// Reads 8 big-endian bytes. REQUIRES: bytes.size() >= 8.
uint64_t ReadBigEndian64(absl::string_view bytes);

// Events of one task: len16(task_id) task_id seq64. All events of a task share
// the prefix EventPrefix(task_id) and sort by seq.
std::string EventPrefix(absl::string_view task_id);
std::string EventKey(absl::string_view task_id, int64_t seq);
// Parses an EventKey. Returns nullopt when `key` is not a well-formed event
// key.
struct ParsedEventKey {
  std::string task_id;
  int64_t seq = 0;
};
absl::optional<ParsedEventKey> ParseEventKey(absl::string_view key);

// Recorded event ids of a task: len16(task_id) task_id event_id.
std::string EventIdKey(absl::string_view task_id, absl::string_view event_id);

// Index entries: tag len32(value) value task_id. All tasks with the same
// indexed value share IndexPrefix(kind, value) and sort by task_id, that is by
// creation time.
std::string IndexPrefix(IndexKind kind, absl::string_view value);
std::string IndexKey(IndexKind kind, absl::string_view value,
                     absl::string_view task_id);
// Returns the task_id of an index key with the given prefix, or nullopt when
// `key` does not start with `prefix`.
absl::optional<std::string> TaskIdFromIndexKey(absl::string_view prefix,
                                               absl::string_view key);

// Audit entries of a task: len16(task_id) task_id time64 nonce64; they share
// EventPrefix(task_id) and sort by time.
std::string AuditKey(absl::string_view task_id, int64_t unix_micros,
                     uint64_t nonce);
// Parses an AuditKey; nullopt when `key` is not a well-formed one.
struct ParsedAuditKey {
  std::string task_id;
  int64_t unix_micros = 0;
  uint64_t nonce = 0;
};
absl::optional<ParsedAuditKey> ParseAuditKey(absl::string_view key);

// Dedup keys: len16(scope) scope key. `scope` separates key spaces (for
// example per account and per kind of key).
std::string DedupKey(absl::string_view scope, absl::string_view key);
// The two scopes in use, one of each per account (on-disk strings: "r:" and
// "c:" followed by the account id): a request_id the account sent, and the
// content fingerprint of a submission of the account.
std::string RequestIdDedupKey(absl::string_view account,
                              absl::string_view request_id);
std::string ContentDedupKey(absl::string_view account,
                            absl::string_view fingerprint);

// Per-minute counters (ColumnFamily::kCounters): 'c' minute64 len16(model)
// model name. Keys of one minute are contiguous and minutes sort in time
// order, so a window is one range scan. Values are 8-byte big-endian int64s
// updated with the store's add merge operator.
inline constexpr char kCounterTag = 'c';
std::string CounterKey(int64_t unix_minute, absl::string_view model,
                       absl::string_view name);
// The first key of `unix_minute`: a scan from CounterMinuteStart(a) to
// CounterMinuteStart(b) covers minutes [a, b).
std::string CounterMinuteStart(int64_t unix_minute);
struct ParsedCounterKey {
  int64_t unix_minute = 0;
  std::string model;
  std::string name;
};
absl::optional<ParsedCounterKey> ParseCounterKey(absl::string_view key);

// Queue-wait samples (ColumnFamily::kCounters): 'q' len16(model) model
// exit64 task_id -> EncodeInt64(wait in microseconds). A model's samples
// share QueueSamplePrefix(model) and sort by the time the task left the
// queue (Unix microseconds).
inline constexpr char kQueueSampleTag = 'q';
std::string QueueSamplePrefix(absl::string_view model);
std::string QueueSampleKey(absl::string_view model, int64_t exit_unix_micros,
                           absl::string_view task_id);
// The exit time of a sample key, or nullopt when `key` is not one.
absl::optional<int64_t> QueueSampleExitMicros(absl::string_view key);
// A sample key parsed, or nullopt when `key` is not one.
struct ParsedQueueSampleKey {
  std::string model;
  int64_t exit_unix_micros = 0;
  std::string task_id;
};
absl::optional<ParsedQueueSampleKey> ParseQueueSampleKey(absl::string_view key);

// The value under a DedupKey: which task owns the key and until when.
// Encoded as expire64 len16(task_id) task_id payload; the expiry comes first
// so that the compaction filter reads it without parsing the rest.
struct DedupRecord {
  // Unix microseconds after which the record is void; 0: never.
  int64_t expire_unix_micros = 0;
  std::string task_id;
  // Owner-defined bytes (the request shape for request_id keys).
  std::string payload;
};
std::string EncodeDedupRecord(const DedupRecord& record);
absl::optional<DedupRecord> DecodeDedupRecord(absl::string_view value);

// 8-byte big-endian encoding of counter values and deltas.
std::string EncodeInt64(int64_t value);
int64_t DecodeInt64(absl::string_view bytes);  // 0 unless exactly 8 bytes

}  // namespace tasktrail::store

#endif  // TASKTRAIL_STORE_KEYS_H_
