// The reads of PgTaskStore (pg_task_store.h): point lookups, timelines and
// the scans that page through an index. Each runs outside any transaction on
// a pooled connection (ConnectionPool::Query).
#include <algorithm>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "store/keys.h"
#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_pool.h"
#include "store/postgres/pg_task_store.h"
#include "store/postgres/pg_values.h"

namespace tasktrail::store::postgres {
namespace {

using v1::Task;
using v1::TaskEvent;
using Params = PgParams;

// Rows read per statement by the scans that page (Scan, the newest-first
// walks, VerifyIndexes): the rows of one page are held in memory, and no
// connection is held while the caller visits them.
constexpr int kPageRows = 256;

// The states of the tasks_unfinished partial index (schema.cc), spelled as
// its predicate so that the planner uses it.
static_assert(v1::TASK_STATE_SUBMITTED == 1 && v1::TASK_STATE_QUEUED == 2 &&
              v1::TASK_STATE_RUNNING == 3);
constexpr absl::string_view kUnfinishedPredicate = "state IN (1, 2, 3)";

// Parses the stored `bytes` of an event of `task_id` onto `events`.
absl::Status ParseEventOnto(absl::string_view task_id, absl::string_view bytes,
                            std::vector<TaskEvent>* events) {
  if (!events->emplace_back().ParseFromArray(bytes.data(),
                                             static_cast<int>(bytes.size()))) {
    events->pop_back();
    return absl::DataLossError(
        absl::StrCat("stored event of task ", task_id, " does not parse"));
  }
  return absl::OkStatus();
}

// The position of an audit entry: time and nonce, big-endian.
std::string AuditPosition(int64_t unix_micros, int64_t nonce) {
  std::string position;
  AppendBigEndian64(static_cast<uint64_t>(unix_micros), &position);
  AppendBigEndian64(static_cast<uint64_t>(nonce), &position);
  return position;
}

}  // namespace

absl::Status PgTaskStore::VisitTask(absl::string_view task_id,
                                    BytesVisitor visit) const {
  absl::StatusOr<PgRows> rows =
      pool_->Query("SELECT snapshot FROM tasktrail.tasks WHERE task_id = $1",
                   {std::string(task_id)}, "reading task");
  if (!rows.ok()) return rows.status();
  if (rows->rows.empty()) {
    return absl::NotFoundError(absl::StrCat("task ", task_id, " not found"));
  }
  absl::StatusOr<std::string> bytes =
      FromBytea(rows->rows[0][0], "reading task");
  if (!bytes.ok()) return bytes.status();
  return visit(*bytes);
}

absl::StatusOr<std::vector<TaskEvent>> PgTaskStore::ReadEvents(
    absl::string_view task_id, int64_t after_seq, int limit) const {
  std::vector<TaskEvent> events;
  absl::Status read =
      VisitEvents(task_id, after_seq, limit, [&](absl::string_view bytes) {
        return ParseEventOnto(task_id, bytes, &events);
      });
  if (!read.ok()) return read;
  return events;
}

absl::StatusOr<std::vector<TaskEvent>> PgTaskStore::ReadEventRange(
    absl::string_view task_id, int64_t first_seq, int64_t last_seq) const {
  std::vector<TaskEvent> events;
  absl::Status read = VisitEventRange(
      task_id, first_seq, last_seq, [&](absl::string_view bytes) {
        return ParseEventOnto(task_id, bytes, &events);
      });
  if (!read.ok()) return read;
  return events;
}

namespace {

// Calls `visit` with the bytea in column 0 of each row.
absl::Status VisitByteaColumn(const PgRows& rows, absl::string_view what,
                              TaskStore::BytesVisitor visit) {
  for (const std::vector<absl::optional<std::string>>& row : rows.rows) {
    absl::StatusOr<std::string> bytes = FromBytea(row[0], what);
    if (!bytes.ok()) return bytes.status();
    absl::Status visited = visit(*bytes);
    if (!visited.ok()) return visited;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status PgTaskStore::VisitEvents(absl::string_view task_id,
                                      int64_t after_seq, int limit,
                                      BytesVisitor visit) const {
  if (limit <= 0) return absl::OkStatus();
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT event FROM tasktrail.task_events WHERE task_id = $1 AND seq > $2 "
      "ORDER BY seq LIMIT $3",
      {std::string(task_id), Text(after_seq), Text(limit)}, "reading events");
  if (!rows.ok()) return rows.status();
  return VisitByteaColumn(*rows, "reading events", visit);
}

absl::Status PgTaskStore::VisitEventRange(absl::string_view task_id,
                                          int64_t first_seq, int64_t last_seq,
                                          BytesVisitor visit) const {
  if (last_seq < first_seq) return absl::OkStatus();
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT event FROM tasktrail.task_events WHERE task_id = $1 "
      "AND seq BETWEEN $2 AND $3 ORDER BY seq",
      {std::string(task_id), Text(first_seq), Text(last_seq)},
      "reading events");
  if (!rows.ok()) return rows.status();
  return VisitByteaColumn(*rows, "reading events", visit);
}

absl::Status PgTaskStore::VisitEventsNewestFirst(
    absl::string_view task_id, int64_t first_seq, int64_t last_seq,
    absl::FunctionRef<bool(int64_t seq, absl::string_view bytes)> visit) const {
  constexpr absl::string_view kWhat = "reading events";
  while (last_seq >= first_seq && last_seq >= 0) {
    absl::StatusOr<PgRows> rows = pool_->Query(
        "SELECT seq, event FROM tasktrail.task_events WHERE task_id = $1 "
        "AND seq BETWEEN $2 AND $3 ORDER BY seq DESC LIMIT $4",
        {std::string(task_id), Text(first_seq), Text(last_seq),
         Text(kPageRows)},
        kWhat);
    if (!rows.ok()) return rows.status();
    for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
      absl::StatusOr<int64_t> seq = FromInt(row[0], kWhat);
      if (!seq.ok()) return seq.status();
      absl::StatusOr<std::string> bytes = FromBytea(row[1], kWhat);
      if (!bytes.ok()) return bytes.status();
      if (!visit(*seq, *bytes)) return absl::OkStatus();
      last_seq = *seq - 1;
    }
    if (rows->rows.size() < static_cast<size_t>(kPageRows)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::optional<EventIdRecord>> PgTaskStore::GetEventIdRecord(
    absl::string_view task_id, absl::string_view event_id) const {
  constexpr absl::string_view kWhat = "reading an event id";
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT seq, body_digest FROM tasktrail.event_ids "
      "WHERE task_id = $1 AND event_id = $2",
      {std::string(task_id), std::string(event_id)}, kWhat);
  if (!rows.ok()) return rows.status();
  if (rows->rows.empty()) return absl::optional<EventIdRecord>();
  EventIdRecord record;
  absl::StatusOr<int64_t> seq = FromInt(rows->rows[0][0], kWhat);
  if (!seq.ok()) return seq.status();
  absl::StatusOr<std::string> digest = FromBytea(rows->rows[0][1], kWhat);
  if (!digest.ok()) return digest.status();
  record.seq = *seq;
  record.body_digest = *std::move(digest);
  return absl::optional<EventIdRecord>(std::move(record));
}

absl::StatusOr<std::string> PgTaskStore::ScanStoredTasks(
    const TaskScan& scan,
    const std::function<bool(absl::string_view task_id,
                             absl::string_view snapshot)>& visit) const {
  Params params;
  std::vector<std::string> conditions;
  const auto param = [&params](std::string value) {
    params.push_back(std::move(value));
    return absl::StrCat("$", params.size());
  };
  const auto equals = [&](absl::string_view column, std::string value) {
    conditions.push_back(absl::StrCat(column, " = ", param(std::move(value))));
  };
  switch (scan.index) {
    case ScanIndex::kAll:
      break;
    case ScanIndex::kAccount:
    case ScanIndex::kModel:
    case ScanIndex::kUpstream:
    case ScanIndex::kRequest:
    case ScanIndex::kRoute:
      // Tasks without the value are in no index.
      if (scan.value.empty()) return std::string();
      equals(scan.index == ScanIndex::kAccount    ? "account_id"
             : scan.index == ScanIndex::kModel    ? "model"
             : scan.index == ScanIndex::kUpstream ? "upstream_task_id"
             : scan.index == ScanIndex::kRoute    ? "route"
                                                  : "request_id",
             scan.value);
      break;
    case ScanIndex::kState:
      equals("state", Text(scan.state));
      break;
    case ScanIndex::kUnfinished:
      conditions.emplace_back(kUnfinishedPredicate);
      break;
    case ScanIndex::kOwed:
      // The predicate of the tasks_owed partial index.
      conditions.emplace_back("owed");
      break;
    case ScanIndex::kAccountState:
    case ScanIndex::kModelState:
      equals(scan.index == ScanIndex::kAccountState ? "account_id" : "model",
             scan.value);
      equals("state", Text(scan.state));
      break;
  }
  if (!scan.min_task_id.empty()) {
    conditions.push_back(absl::StrCat("task_id >= ", param(scan.min_task_id)));
  }
  if (!scan.end_task_id.empty()) {
    conditions.push_back(absl::StrCat("task_id < ", param(scan.end_task_id)));
  }
  // The resume bound is the last parameter but one, the limit the last.
  const std::string select = absl::StrCat(
      "SELECT task_id, snapshot FROM tasktrail.tasks WHERE ",
      absl::StrJoin(conditions, " AND "), conditions.empty() ? "" : " AND ",
      "($", params.size() + 1, "::text IS NULL OR task_id ",
      scan.oldest_first ? ">" : "<", " $", params.size() + 1,
      ") ORDER BY task_id ", scan.oldest_first ? "ASC" : "DESC", " LIMIT $",
      params.size() + 2);
  absl::optional<std::string> resume;
  if (!scan.resume_after_task_id.empty()) resume = scan.resume_after_task_id;
  std::string last_visited;
  int visits = 0;
  while (visits < scan.max_visits) {
    const int page = std::min(kPageRows, scan.max_visits - visits);
    Params page_params = params;
    page_params.push_back(resume);
    page_params.push_back(Text(page));
    absl::StatusOr<PgRows> rows = pool_->Query(
        select, page_params, "scanning tasks", PgPlanning::kEachCall);
    if (!rows.ok()) return rows.status();
    for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
      absl::StatusOr<std::string> bytes = FromBytea(row[1], "scanning tasks");
      if (!bytes.ok()) return bytes.status();
      ++visits;
      last_visited = row[0].value_or("");
      if (!visit(last_visited, *bytes)) return last_visited;
    }
    if (rows->rows.size() < static_cast<size_t>(page)) break;
    resume = last_visited;
  }
  return last_visited;
}

namespace {

constexpr absl::string_view kReadingDedup = "reading a dedup record";

// The record of a row (task_id, expire_unix_micros, payload[, key]) of
// dedup_records; nullopt once expired at `now_unix_micros`.
absl::StatusOr<absl::optional<DedupRecord>> DedupRecordOfRow(
    const std::vector<absl::optional<std::string>>& row,
    int64_t now_unix_micros) {
  DedupRecord record;
  record.task_id = row[0].value_or("");
  absl::StatusOr<int64_t> expire = FromInt(row[1], kReadingDedup);
  if (!expire.ok()) return expire.status();
  absl::StatusOr<std::string> payload = FromBytea(row[2], kReadingDedup);
  if (!payload.ok()) return payload.status();
  record.expire_unix_micros = *expire;
  record.payload = *std::move(payload);
  if (record.expire_unix_micros != 0 &&
      record.expire_unix_micros <= now_unix_micros) {
    return absl::optional<DedupRecord>();
  }
  return absl::optional<DedupRecord>(std::move(record));
}

}  // namespace

absl::StatusOr<absl::optional<DedupRecord>> PgTaskStore::GetDedupRecord(
    absl::string_view key, int64_t now_unix_micros) const {
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT task_id, expire_unix_micros, payload "
      "FROM tasktrail.dedup_records WHERE dedup_key = $1",
      {Bytea(key)}, kReadingDedup);
  if (!rows.ok()) return rows.status();
  if (rows->rows.empty()) return absl::optional<DedupRecord>();
  return DedupRecordOfRow(rows->rows[0], now_unix_micros);
}

absl::StatusOr<std::vector<absl::optional<DedupRecord>>>
PgTaskStore::GetDedupRecords(const std::vector<std::string>& keys,
                             int64_t now_unix_micros) const {
  std::vector<absl::optional<DedupRecord>> records(keys.size());
  if (keys.empty()) return records;
  // One statement, prepared once, for any number of keys.
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT task_id, expire_unix_micros, payload, dedup_key "
      "FROM tasktrail.dedup_records WHERE dedup_key = ANY($1::bytea[])",
      {ByteaArray(keys)}, kReadingDedup);
  if (!rows.ok()) return rows.status();
  for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
    absl::StatusOr<std::string> key = FromBytea(row[3], kReadingDedup);
    if (!key.ok()) return key.status();
    absl::StatusOr<absl::optional<DedupRecord>> record =
        DedupRecordOfRow(row, now_unix_micros);
    if (!record.ok()) return record.status();
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == *key) records[i] = *record;
    }
  }
  return records;
}

absl::Status PgTaskStore::ScanCounters(
    int64_t first_minute, int64_t end_minute,
    const std::function<void(const ParsedCounterKey& counter, int64_t value)>&
        visit) const {
  constexpr absl::string_view kWhat = "reading counters";
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT unix_minute, model, name, sum(value)::bigint "
      "FROM tasktrail.stats_counters "
      "WHERE unix_minute >= $1 AND unix_minute < $2 "
      "GROUP BY unix_minute, model, name "
      "ORDER BY unix_minute, octet_length(model), model, name",
      {Text(first_minute), Text(end_minute)}, kWhat);
  if (!rows.ok()) return rows.status();
  for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
    absl::StatusOr<int64_t> minute = FromInt(row[0], kWhat);
    if (!minute.ok()) return minute.status();
    absl::StatusOr<int64_t> value = FromInt(row[3], kWhat);
    if (!value.ok()) return value.status();
    visit(ParsedCounterKey{*minute, row[1].value_or(""), row[2].value_or("")},
          *value);
  }
  return absl::OkStatus();
}

absl::Status PgTaskStore::ScanQueueSamples(
    absl::string_view model,
    const std::function<void(QueueSample sample)>& visit) const {
  constexpr absl::string_view kWhat = "reading queue-wait samples";
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT exit_unix_micros, task_id, wait_micros "
      "FROM tasktrail.queue_wait_samples WHERE model = $1 "
      "ORDER BY exit_unix_micros, task_id",
      {std::string(model)}, kWhat);
  if (!rows.ok()) return rows.status();
  for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
    absl::StatusOr<int64_t> exit = FromInt(row[0], kWhat);
    if (!exit.ok()) return exit.status();
    absl::StatusOr<int64_t> wait = FromInt(row[2], kWhat);
    if (!wait.ok()) return wait.status();
    visit(QueueSample{*exit, row[1].value_or(""), *wait});
  }
  return absl::OkStatus();
}

absl::Status PgTaskStore::ScanAudit(
    absl::string_view task_id,
    const std::function<void(absl::string_view entry)>& visit) const {
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT entry FROM tasktrail.audit_entries WHERE task_id = $1 "
      "ORDER BY unix_micros, nonce",
      {std::string(task_id)}, "reading the audit log");
  if (!rows.ok()) return rows.status();
  return VisitByteaColumn(*rows, "reading the audit log",
                          [&visit](absl::string_view entry) {
                            visit(entry);
                            return absl::OkStatus();
                          });
}

absl::Status PgTaskStore::ScanAuditNewestFirst(
    absl::string_view task_id, absl::string_view before_position,
    absl::FunctionRef<bool(absl::string_view position, absl::string_view entry)>
        visit) const {
  constexpr absl::string_view kWhat = "reading the audit log";
  absl::optional<std::string> before_micros;
  absl::optional<std::string> before_nonce;
  if (!before_position.empty()) {
    if (before_position.size() != 16) {
      return absl::InvalidArgumentError(
          "audit position is not one this store made");
    }
    before_micros =
        Text(static_cast<int64_t>(ReadBigEndian64(before_position)));
    before_nonce =
        Text(static_cast<int64_t>(ReadBigEndian64(before_position.substr(8))));
  }
  while (true) {
    absl::StatusOr<PgRows> rows = pool_->Query(
        "SELECT unix_micros, nonce, entry FROM tasktrail.audit_entries "
        "WHERE task_id = $1 AND ($2::bigint IS NULL OR "
        "(unix_micros, nonce) < ($2::bigint, $3::bigint)) "
        "ORDER BY unix_micros DESC, nonce DESC LIMIT $4",
        {std::string(task_id), before_micros, before_nonce, Text(kPageRows)},
        kWhat, PgPlanning::kEachCall);
    if (!rows.ok()) return rows.status();
    for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
      absl::StatusOr<int64_t> micros = FromInt(row[0], kWhat);
      if (!micros.ok()) return micros.status();
      absl::StatusOr<int64_t> nonce = FromInt(row[1], kWhat);
      if (!nonce.ok()) return nonce.status();
      absl::StatusOr<std::string> entry = FromBytea(row[2], kWhat);
      if (!entry.ok()) return entry.status();
      if (!visit(AuditPosition(*micros, *nonce), *entry)) {
        return absl::OkStatus();
      }
      before_micros = row[0];
      before_nonce = row[1];
    }
    if (rows->rows.size() < static_cast<size_t>(kPageRows)) {
      return absl::OkStatus();
    }
  }
}

absl::Status PgTaskStore::VerifyIndexes() const {
  constexpr absl::string_view kWhat = "verifying the indexed columns";
  std::vector<std::string> differences;
  const auto note = [&differences](
                        const std::string& task_id, absl::string_view column,
                        absl::string_view stored, absl::string_view expected) {
    if (differences.size() < 5) {
      differences.push_back(absl::StrCat(
          "task ", task_id, " has ", column, " ", absl::CHexEscape(stored),
          " but its snapshot says ", absl::CHexEscape(expected)));
    }
  };
  absl::optional<std::string> after;
  while (true) {
    absl::StatusOr<PgRows> rows = pool_->Query(
        "SELECT task_id, account_id, model, state, upstream_task_id, "
        "request_id, last_seq, snapshot, retention_unix_micros, owed, route "
        "FROM tasktrail.tasks "
        "WHERE $1::text IS NULL OR task_id > $1 ORDER BY task_id LIMIT $2",
        {after, Text(kPageRows)}, kWhat, PgPlanning::kEachCall);
    if (!rows.ok()) return rows.status();
    for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
      const std::string task_id = row[0].value_or("");
      absl::StatusOr<std::string> bytes = FromBytea(row[7], kWhat);
      if (!bytes.ok()) return bytes.status();
      Task task;
      if (!task.ParseFromString(*bytes)) {
        return absl::DataLossError(
            absl::StrCat("stored task ", task_id, " does not parse"));
      }
      const std::pair<const char*, std::string> expected[] = {
          {"task_id", task.task_id()},
          {"account_id", task.account_id()},
          {"model", task.model()},
          {"state", Text(task.state())},
          {"upstream_task_id", task.upstream_task_id()},
          {"request_id", task.request_id()},
          {"last_seq", Text(task.last_event_seq())},
          {"retention_unix_micros", Text(RetentionMicros(task))},
          {"owed", OwedText(task)},
          {"route", task.route()}};
      const std::string stored[] = {task_id,
                                    row[1].value_or(""),
                                    row[2].value_or(""),
                                    row[3].value_or(""),
                                    row[4].value_or(""),
                                    row[5].value_or(""),
                                    row[6].value_or(""),
                                    row[8].value_or(""),
                                    row[9].value_or(""),
                                    row[10].value_or("")};
      for (size_t i = 0; i < std::size(expected); ++i) {
        if (stored[i] != expected[i].second) {
          note(task_id, expected[i].first, stored[i], expected[i].second);
        }
      }
      after = task_id;
    }
    if (rows->rows.size() < static_cast<size_t>(kPageRows)) break;
  }
  if (differences.empty()) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("the indexed columns disagree with the tasks: ",
                   absl::StrJoin(differences, "; ")));
}

absl::StatusOr<std::vector<std::string>> PgTaskStore::ListDueTasks(
    int64_t finished_before_unix_micros, int64_t unfinished_before_unix_micros,
    int limit) const {
  constexpr absl::string_view kWhat = "listing the tasks due for purging";
  std::vector<std::string> due;
  const std::pair<const char*, int64_t> halves[] = {
      {"state IN (4, 5, 6)", finished_before_unix_micros},
      {"state NOT IN (4, 5, 6)", unfinished_before_unix_micros}};
  for (const auto& [predicate, before] : halves) {
    if (before <= 0 || static_cast<int>(due.size()) >= limit) continue;
    absl::StatusOr<PgRows> rows = pool_->Query(
        absl::StrCat("SELECT task_id FROM tasktrail.tasks WHERE ", predicate,
                     " AND retention_unix_micros < $1 "
                     "ORDER BY retention_unix_micros, task_id LIMIT $2"),
        {Text(before), Text(limit - static_cast<int>(due.size()))}, kWhat);
    if (!rows.ok()) return rows.status();
    for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
      due.push_back(row[0].value_or(""));
    }
  }
  return due;
}

}  // namespace tasktrail::store::postgres
