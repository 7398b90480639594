#include "store/rocksdb/compaction.h"

#include <chrono>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "rocksdb/compaction_filter.h"
#include "rocksdb/merge_operator.h"
#include "store/keys.h"
#include "store/records.h"

namespace tasktrail::store {
namespace {

// Adds 8-byte big-endian int64 operands (counter increments).
class Int64AddOperator final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& /*key*/, const rocksdb::Slice* existing,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* /*logger*/) const override {
    int64_t sum = DecodeInt64(absl::string_view(value.data(), value.size()));
    if (existing != nullptr) {
      sum += DecodeInt64(absl::string_view(existing->data(), existing->size()));
    }
    *new_value = EncodeInt64(sum);
    return true;
  }
  const char* Name() const override { return "tasktrail.Int64Add"; }
};

// Drops per-minute counters older than the retention, and queue samples
// older than kQueueSampleRetentionMinutes.
class CounterExpiryFilter final : public rocksdb::CompactionFilter {
 public:
  explicit CounterExpiryFilter(int64_t retention_minutes)
      : retention_minutes_(retention_minutes) {}

  bool Filter(int /*level*/, const rocksdb::Slice& key,
              const rocksdb::Slice& /*value*/, std::string* /*new_value*/,
              bool* /*value_changed*/) const override {
    const absl::string_view bytes(key.data(), key.size());
    const int64_t now_minute =
        std::chrono::duration_cast<std::chrono::minutes>(
            std::chrono::system_clock::now().time_since_epoch())
            .count();
    if (absl::optional<ParsedCounterKey> counter = ParseCounterKey(bytes)) {
      return counter->unix_minute < now_minute - retention_minutes_;
    }
    // Queue samples are trimmed to the newest ones per model as they are
    // written; this only collects the few a race may leave behind.
    if (absl::optional<int64_t> exit_micros = QueueSampleExitMicros(bytes)) {
      return *exit_micros / 60000000 <
             now_minute - kQueueSampleRetentionMinutes;
    }
    return false;
  }
  const char* Name() const override { return "tasktrail.CounterExpiry"; }

 private:
  const int64_t retention_minutes_;
};

// Drops dedup records whose expiry has passed. Lookups check the expiry too,
// so the filter only bounds the space, lazily.
class DedupExpiryFilterImpl final : public rocksdb::CompactionFilter {
 public:
  bool Filter(int /*level*/, const rocksdb::Slice& /*key*/,
              const rocksdb::Slice& value, std::string* /*new_value*/,
              bool* /*value_changed*/) const override {
    absl::optional<DedupRecord> record =
        DecodeDedupRecord(absl::string_view(value.data(), value.size()));
    if (!record.has_value() || record->expire_unix_micros == 0) return false;
    const int64_t now_micros =
        std::chrono::duration_cast<std::chrono::microseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count();
    return record->expire_unix_micros < now_micros;
  }
  const char* Name() const override { return "tasktrail.DedupExpiry"; }
};

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> NewInt64AddOperator() {
  return std::make_shared<Int64AddOperator>();
}

std::shared_ptr<rocksdb::CompactionFilter> NewCounterExpiryFilter(
    int64_t retention_minutes) {
  return std::make_shared<CounterExpiryFilter>(retention_minutes);
}

const rocksdb::CompactionFilter* DedupExpiryFilter() {
  static const DedupExpiryFilterImpl kDedupExpiry;
  return &kDedupExpiry;
}

}  // namespace tasktrail::store
