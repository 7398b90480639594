#include "store/keys.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace tasktrail::store {
namespace {

void AppendLength16(absl::string_view part, std::string* out) {
  // Parts longer than 65535 bytes are rejected by the service long before
  // they reach a key; clamp defensively so the encoding stays parseable.
  const size_t length =
      std::min<size_t>(part.size(), std::numeric_limits<uint16_t>::max());
  out->push_back(static_cast<char>((length >> 8) & 0xff));
  out->push_back(static_cast<char>(length & 0xff));
  out->append(part.data(), length);
}

void AppendLength32(absl::string_view part, std::string* out) {
  const uint32_t length = static_cast<uint32_t>(part.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((length >> shift) & 0xff));
  }
  out->append(part.data(), part.size());
}

}  // namespace

void AppendBigEndian64(uint64_t value, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((value >> shift) & 0xff));
  }
}

uint64_t ReadBigEndian64(absl::string_view bytes) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) {
    value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  }
  return value;
}

std::string EventPrefix(absl::string_view task_id) {
  std::string key;
  key.reserve(2 + task_id.size() + 8);
  AppendLength16(task_id, &key);
  return key;
}

std::string EventKey(absl::string_view task_id, int64_t seq) {
  std::string key = EventPrefix(task_id);
  AppendBigEndian64(static_cast<uint64_t>(seq), &key);
  return key;
}

absl::optional<ParsedEventKey> ParseEventKey(absl::string_view key) {
  if (key.size() < 2) return absl::nullopt;
  const size_t length =
      (static_cast<uint8_t>(key[0]) << 8) | static_cast<uint8_t>(key[1]);
  if (key.size() != 2 + length + 8) return absl::nullopt;
  ParsedEventKey parsed;
  parsed.task_id = std::string(key.substr(2, length));
  parsed.seq = static_cast<int64_t>(ReadBigEndian64(key.substr(2 + length)));
  return parsed;
}

std::string EventIdKey(absl::string_view task_id, absl::string_view event_id) {
  std::string key = EventPrefix(task_id);
  key.append(event_id.data(), event_id.size());
  return key;
}

std::string AuditKey(absl::string_view task_id, int64_t unix_micros,
                     uint64_t nonce) {
  std::string key = EventPrefix(task_id);
  AppendBigEndian64(static_cast<uint64_t>(unix_micros), &key);
  AppendBigEndian64(nonce, &key);
  return key;
}

absl::optional<ParsedAuditKey> ParseAuditKey(absl::string_view key) {
  if (key.size() < 2) return absl::nullopt;
  const size_t length =
      (static_cast<uint8_t>(key[0]) << 8) | static_cast<uint8_t>(key[1]);
  if (key.size() != 2 + length + 16) return absl::nullopt;
  ParsedAuditKey parsed;
  parsed.task_id = std::string(key.substr(2, length));
  parsed.unix_micros =
      static_cast<int64_t>(ReadBigEndian64(key.substr(2 + length)));
  parsed.nonce = ReadBigEndian64(key.substr(2 + length + 8));
  return parsed;
}

std::string IndexPrefix(IndexKind kind, absl::string_view value) {
  std::string key;
  key.reserve(1 + 4 + value.size() + 32);
  key.push_back(static_cast<char>(kind));
  AppendLength32(value, &key);
  return key;
}

std::string IndexKey(IndexKind kind, absl::string_view value,
                     absl::string_view task_id) {
  std::string key = IndexPrefix(kind, value);
  key.append(task_id.data(), task_id.size());
  return key;
}

absl::optional<std::string> TaskIdFromIndexKey(absl::string_view prefix,
                                               absl::string_view key) {
  if (key.size() <= prefix.size() || key.substr(0, prefix.size()) != prefix) {
    return absl::nullopt;
  }
  return std::string(key.substr(prefix.size()));
}

std::string PairIndexValue(absl::string_view first, absl::string_view second) {
  std::string value;
  value.reserve(2 + first.size() + second.size());
  AppendLength16(first, &value);
  value.append(second.data(), second.size());
  return value;
}

std::string RetentionIndexValue(RetentionClass retention_class,
                                int64_t unix_micros) {
  std::string value(1, static_cast<char>(retention_class));
  AppendBigEndian64(static_cast<uint64_t>(std::max<int64_t>(unix_micros, 0)),
                    &value);
  return value;
}

std::string DedupKey(absl::string_view scope, absl::string_view key) {
  std::string encoded;
  encoded.reserve(2 + scope.size() + key.size());
  AppendLength16(scope, &encoded);
  encoded.append(key.data(), key.size());
  return encoded;
}

std::string RequestIdDedupKey(absl::string_view account,
                              absl::string_view request_id) {
  return DedupKey(absl::StrCat("r:", account), request_id);
}

std::string ContentDedupKey(absl::string_view account,
                            absl::string_view fingerprint) {
  return DedupKey(absl::StrCat("c:", account), fingerprint);
}

std::string CounterMinuteStart(int64_t unix_minute) {
  std::string key(1, kCounterTag);
  AppendBigEndian64(static_cast<uint64_t>(unix_minute), &key);
  return key;
}

std::string CounterKey(int64_t unix_minute, absl::string_view model,
                       absl::string_view name) {
  std::string key = CounterMinuteStart(unix_minute);
  AppendLength16(model, &key);
  key.append(name.data(), name.size());
  return key;
}

absl::optional<ParsedCounterKey> ParseCounterKey(absl::string_view key) {
  if (key.size() < 11 || key[0] != kCounterTag) return absl::nullopt;
  ParsedCounterKey parsed;
  parsed.unix_minute = static_cast<int64_t>(ReadBigEndian64(key.substr(1)));
  const size_t length =
      (static_cast<uint8_t>(key[9]) << 8) | static_cast<uint8_t>(key[10]);
  if (key.size() < 11 + length) return absl::nullopt;
  parsed.model = std::string(key.substr(11, length));
  parsed.name = std::string(key.substr(11 + length));
  return parsed;
}

std::string QueueSamplePrefix(absl::string_view model) {
  std::string key(1, kQueueSampleTag);
  AppendLength16(model, &key);
  return key;
}

std::string QueueSampleKey(absl::string_view model, int64_t exit_unix_micros,
                           absl::string_view task_id) {
  std::string key = QueueSamplePrefix(model);
  AppendBigEndian64(static_cast<uint64_t>(exit_unix_micros), &key);
  key.append(task_id.data(), task_id.size());
  return key;
}

absl::optional<int64_t> QueueSampleExitMicros(absl::string_view key) {
  if (key.size() < 3 || key[0] != kQueueSampleTag) return absl::nullopt;
  const size_t length =
      (static_cast<uint8_t>(key[1]) << 8) | static_cast<uint8_t>(key[2]);
  if (key.size() < 3 + length + 8) return absl::nullopt;
  return static_cast<int64_t>(ReadBigEndian64(key.substr(3 + length)));
}

absl::optional<ParsedQueueSampleKey> ParseQueueSampleKey(
    absl::string_view key) {
  absl::optional<int64_t> exit_micros = QueueSampleExitMicros(key);
  if (!exit_micros.has_value()) return absl::nullopt;
  const size_t length =
      (static_cast<uint8_t>(key[1]) << 8) | static_cast<uint8_t>(key[2]);
  ParsedQueueSampleKey parsed;
  parsed.model = std::string(key.substr(3, length));
  parsed.exit_unix_micros = *exit_micros;
  parsed.task_id = std::string(key.substr(3 + length + 8));
  return parsed;
}

std::string EncodeDedupRecord(const DedupRecord& record) {
  std::string value;
  AppendBigEndian64(static_cast<uint64_t>(record.expire_unix_micros), &value);
  AppendLength16(record.task_id, &value);
  value.append(record.payload);
  return value;
}

absl::optional<DedupRecord> DecodeDedupRecord(absl::string_view value) {
  if (value.size() < 10) return absl::nullopt;
  DedupRecord record;
  record.expire_unix_micros = static_cast<int64_t>(ReadBigEndian64(value));
  const size_t length =
      (static_cast<uint8_t>(value[8]) << 8) | static_cast<uint8_t>(value[9]);
  if (value.size() < 10 + length) return absl::nullopt;
  record.task_id = std::string(value.substr(10, length));
  record.payload = std::string(value.substr(10 + length));
  return record;
}

std::string EncodeInt64(int64_t value) {
  std::string bytes;
  AppendBigEndian64(static_cast<uint64_t>(value), &bytes);
  return bytes;
}

int64_t DecodeInt64(absl::string_view bytes) {
  if (bytes.size() != 8) return 0;
  return static_cast<int64_t>(ReadBigEndian64(bytes));
}

}  // namespace tasktrail::store
