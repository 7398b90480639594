#include "store/postgres/pg_connection.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace tasktrail::store::postgres {
namespace {

struct ResultClearer {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ResultClearer>;

// The status of a statement that did not succeed: from its result when the
// server answered, from the connection otherwise.
absl::Status StatusFromFailure(PGconn* connection, const PGresult* result,
                               absl::string_view what) {
  const char* sql_state = result == nullptr
                              ? nullptr
                              : PQresultErrorField(result, PG_DIAG_SQLSTATE);
  std::string message(absl::StripAsciiWhitespace(
      result != nullptr ? PQresultErrorMessage(result)
                        : PQerrorMessage(connection)));
  if (message.empty()) message = PQerrorMessage(connection);
  if (sql_state == nullptr) {
    // No SQLSTATE: the server did not answer (a lost connection).
    return absl::UnavailableError(absl::StrCat(
        what,
        ": no answer from PostgreSQL: ", absl::StripAsciiWhitespace(message)));
  }
  return absl::Status(
      StatusCodeFromSqlState(sql_state),
      absl::StrCat(what, ": ", message, " (SQLSTATE ", sql_state, ")"));
}

// The payload that marks a stale prepared statement's failure.
constexpr absl::string_view kStalePreparedStatement =
    "tasktrail.store.postgres/stale-prepared-statement";

// True when `result`, the failure of a statement executed by name, shows
// the server's copy of the prepared statement unusable: gone (26000), or
// planned for a result type its tables no longer give (0A000 from the plan
// cache, known by the routine that raises it whatever language the server
// writes its messages in, or by its message).
bool IsStalePreparedFailure(const PGresult* result) {
  const char* sql_state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  if (sql_state == nullptr) return false;
  if (absl::string_view(sql_state) == "26000") return true;
  if (absl::string_view(sql_state) != "0A000") return false;
  const char* routine = PQresultErrorField(result, PG_DIAG_SOURCE_FUNCTION);
  const char* message = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  return (routine != nullptr &&
          absl::string_view(routine) == "RevalidateCachedQuery") ||
         (message != nullptr &&
          absl::StrContains(message,
                            "cached plan must not change result type"));
}

// The C strings of `params` for libpq (null for NULL), valid while
// `params` is.
std::vector<const char*> ParamValues(const PgParams& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const absl::optional<std::string>& param : params) {
    values.push_back(param.has_value() ? param->c_str() : nullptr);
  }
  return values;
}

// The rows of a successful `result` and the rows it changed.
PgRows RowsOf(const PGresult* result) {
  PgRows rows;
  const int row_count = PQntuples(result);
  const int column_count = PQnfields(result);
  rows.rows.reserve(row_count);
  for (int row = 0; row < row_count; ++row) {
    std::vector<absl::optional<std::string>>& values_out =
        rows.rows.emplace_back();
    values_out.reserve(column_count);
    for (int column = 0; column < column_count; ++column) {
      if (PQgetisnull(result, row, column)) {
        values_out.emplace_back(absl::nullopt);
      } else {
        values_out.emplace_back(std::string(PQgetvalue(result, row, column),
                                            PQgetlength(result, row, column)));
      }
    }
  }
  // PQcmdTuples takes a non-const result but does not change it.
  const char* affected = PQcmdTuples(const_cast<PGresult*>(result));
  rows.affected = (affected == nullptr || *affected == '\0')
                      ? 0
                      : std::strtoll(affected, nullptr, 10);
  return rows;
}

}  // namespace

absl::StatusCode StatusCodeFromSqlState(absl::string_view sql_state) {
  if (sql_state == "40001" || sql_state == "40P01") {
    return absl::StatusCode::kAborted;
  }
  if (sql_state == "23505") return absl::StatusCode::kAlreadyExists;
  if (absl::StartsWith(sql_state, "23")) {
    return absl::StatusCode::kFailedPrecondition;
  }
  if (sql_state.empty() || absl::StartsWith(sql_state, "08") ||
      absl::StartsWith(sql_state, "53") || sql_state == "57P01" ||
      sql_state == "57P02" || sql_state == "57P03") {
    return absl::StatusCode::kUnavailable;
  }
  return absl::StatusCode::kInternal;
}

bool IsRetryableTransactionError(const absl::Status& status) {
  return status.code() == absl::StatusCode::kAborted;
}

bool IsStalePreparedStatement(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable &&
         status.GetPayload(kStalePreparedStatement).has_value();
}

absl::Status NamingTheWork(absl::string_view what, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(what, ": ", status.message()));
}

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Connect(
    const std::string& conninfo, bool prepare_statements) {
  PGconn* connection = PQconnectdb(conninfo.c_str());
  if (connection == nullptr) {
    return absl::UnavailableError("connecting to PostgreSQL: out of memory");
  }
  if (PQstatus(connection) != CONNECTION_OK) {
    absl::Status status = absl::UnavailableError(
        absl::StrCat("connecting to PostgreSQL: ",
                     absl::StripAsciiWhitespace(PQerrorMessage(connection))));
    PQfinish(connection);
    return status;
  }
  return std::unique_ptr<PgConnection>(
      new PgConnection(connection, prepare_statements));
}

PgConnection::~PgConnection() { PQfinish(connection_); }

absl::StatusOr<std::vector<PgNotification>> PgConnection::AwaitNotifications(
    absl::Duration timeout) {
  std::vector<PgNotification> received;
  const auto take = [&] {
    while (PGnotify* notification = PQnotifies(connection_)) {
      received.push_back(
          {notification->relname, notification->extra == nullptr
                                      ? std::string()
                                      : std::string(notification->extra)});
      PQfreemem(notification);
    }
  };
  const auto lost = [&] {
    return absl::UnavailableError(
        absl::StrCat("listening for notifications: the connection is lost: ",
                     absl::StripAsciiWhitespace(PQerrorMessage(connection_))));
  };
  take();
  if (!received.empty()) return received;
  const int socket = PQsocket(connection_);
  if (socket < 0 || PQstatus(connection_) != CONNECTION_OK) return lost();
  pollfd readable = {socket, POLLIN, 0};
  const int ready =
      poll(&readable, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (ready < 0 && errno != EINTR) return lost();
  if (ready > 0) {
    if (PQconsumeInput(connection_) == 0) return lost();
    take();
  }
  if (PQstatus(connection_) != CONNECTION_OK) return lost();
  return received;
}

bool PgConnection::CheckAlive() {
  if (!connected()) return false;
  // A few reads at most: a server that ends a connection sends an error,
  // then closes it.
  for (int read = 0; read < 4; ++read) {
    pollfd readable = {PQsocket(connection_), POLLIN, 0};
    if (poll(&readable, 1, /*timeout=*/0) <= 0) break;
    if (PQconsumeInput(connection_) == 0) return false;
  }
  return connected();
}

bool PgConnection::connected() const {
  return !broken_ && PQstatus(connection_) == CONNECTION_OK;
}

absl::Status PgConnection::Execute(absl::string_view sql,
                                   absl::string_view what) {
  const std::string text(sql);
  Result result(PQexec(connection_, text.c_str()));
  const ExecStatusType status =
      result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result.get());
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    return absl::OkStatus();
  }
  return StatusFromFailure(connection_, result.get(), what);
}

const std::string* PgConnection::PreparedName(absl::string_view sql) const {
  const auto found = prepared_.find(sql);
  return found == prepared_.end() ? nullptr : &found->second;
}

absl::optional<std::string> PgConnection::NextPreparedName(size_t pending) {
  if (!prepare_statements_ ||
      prepared_.size() + pending >= kMaxPreparedStatements) {
    return absl::nullopt;
  }
  return absl::StrCat("tt_", names_used_++);
}

absl::StatusOr<PgRows> PgConnection::Query(absl::string_view sql,
                                           const PgParams& params,
                                           absl::string_view what,
                                           PgPlanning planning) {
  const PgPipelineStatement statement{sql, &params, planning};
  absl::StatusOr<std::vector<absl::StatusOr<PgRows>>> results =
      RunPipeline({&statement, 1}, what);
  if (!results.ok()) return results.status();
  return std::move(results->front());
}

absl::StatusOr<std::vector<absl::StatusOr<PgRows>>> PgConnection::RunPipeline(
    absl::Span<const PgPipelineStatement> statements, absl::string_view what) {
  const auto lost = [&] {
    broken_ = true;
    return absl::UnavailableError(
        absl::StrCat(what, ": no answer from PostgreSQL: ",
                     absl::StripAsciiWhitespace(PQerrorMessage(connection_))));
  };
  if (broken_ || PQenterPipelineMode(connection_) != 1) return lost();
  std::vector<SentStatement> sent(statements.size());
  // Prepared in this flight, not yet confirmed: SQL text -> name.
  absl::flat_hash_map<std::string, std::string> preparing;
  for (size_t i = 0; i < statements.size(); ++i) {
    const PgPipelineStatement& statement = statements[i];
    const std::string text(statement.sql);
    const std::vector<const char*> values = statement.params != nullptr
                                                ? ParamValues(*statement.params)
                                                : std::vector<const char*>();
    const int count = static_cast<int>(values.size());
    const std::string* name = nullptr;
    if (count > 0 && statement.planning == PgPlanning::kPrepared) {
      name = PreparedName(text);
      if (name == nullptr) {
        const auto pending = preparing.find(text);
        if (pending != preparing.end()) name = &pending->second;
      }
      absl::optional<std::string> new_name;
      if (name == nullptr) new_name = NextPreparedName(preparing.size());
      if (new_name.has_value()) {
        if (PQsendPrepare(connection_, new_name->c_str(), text.c_str(), count,
                          /*paramTypes=*/nullptr) != 1) {
          return lost();
        }
        sent[i].prepared_as = *new_name;
        name = &preparing.emplace(text, *std::move(new_name)).first->second;
      }
    }
    sent[i].by_name = name != nullptr;
    const int queued =
        name != nullptr
            ? PQsendQueryPrepared(connection_, name->c_str(), count,
                                  values.data(), /*paramLengths=*/nullptr,
                                  /*paramFormats=*/nullptr, /*resultFormat=*/0)
            : PQsendQueryParams(connection_, text.c_str(), count,
                                /*paramTypes=*/nullptr, values.data(),
                                /*paramLengths=*/nullptr,
                                /*paramFormats=*/nullptr, /*resultFormat=*/0);
    if (queued != 1) return lost();
  }
  if (PQpipelineSync(connection_) != 1) return lost();
  absl::StatusOr<std::vector<absl::StatusOr<PgRows>>> results =
      ReadPipelineResults(statements, sent, what);
  if (!results.ok()) {
    broken_ = true;
    return absl::UnavailableError(results.status().message());
  }
  if (PQexitPipelineMode(connection_) != 1) {
    // A null result may still mark the end of the sync point's results.
    Result rest(PQgetResult(connection_));
    if (rest != nullptr || PQexitPipelineMode(connection_) != 1) return lost();
  }
  return results;
}

absl::StatusOr<std::vector<absl::StatusOr<PgRows>>>
PgConnection::ReadPipelineResults(
    absl::Span<const PgPipelineStatement> statements,
    absl::Span<const SentStatement> sent, absl::string_view what) {
  const auto missing = [&] {
    return absl::UnavailableError(
        absl::StrCat(what, ": no answer from PostgreSQL: ",
                     absl::StripAsciiWhitespace(PQerrorMessage(connection_))));
  };
  // The next result, which must be followed by a null one; null when it
  // does not arrive.
  const auto next_result = [&]() -> Result {
    Result result(PQgetResult(connection_));
    if (result == nullptr) return nullptr;
    if (Result more{PQgetResult(connection_)}) return nullptr;
    return result;
  };
  // True when `failed` shows the connection lost: no more results come.
  const auto ends_pipeline = [&](const absl::Status& failed) {
    return failed.code() == absl::StatusCode::kUnavailable ||
           PQstatus(connection_) != CONNECTION_OK;
  };
  std::vector<absl::StatusOr<PgRows>> results;
  results.reserve(sent.size());
  // Parses that succeeded: SQL text -> name, recorded once all arrived.
  std::vector<std::pair<std::string, std::string>> prepared;
  for (size_t i = 0; i < sent.size(); ++i) {
    // A failed Parse is the statement's failure: the server then skips the
    // statement itself.
    absl::optional<absl::Status> parse_failure;
    if (!sent[i].prepared_as.empty()) {
      Result parse = next_result();
      if (parse == nullptr) return missing();
      switch (PQresultStatus(parse.get())) {
        case PGRES_COMMAND_OK:
          prepared.emplace_back(std::string(statements[i].sql),
                                sent[i].prepared_as);
          break;
        case PGRES_PIPELINE_ABORTED:
          break;
        default: {
          absl::Status failed =
              StatusFromFailure(connection_, parse.get(), what);
          if (ends_pipeline(failed)) return failed;
          parse_failure = std::move(failed);
        }
      }
    }
    Result result = next_result();
    if (result == nullptr) return missing();
    switch (PQresultStatus(result.get())) {
      case PGRES_COMMAND_OK:
      case PGRES_TUPLES_OK:
        results.push_back(RowsOf(result.get()));
        break;
      case PGRES_PIPELINE_ABORTED:
        if (parse_failure.has_value()) {
          results.push_back(*std::move(parse_failure));
        } else {
          results.push_back(absl::CancelledError(absl::StrCat(
              what, ": not run: an earlier statement of its pipeline failed")));
        }
        break;
      default: {
        absl::Status failed =
            StatusFromFailure(connection_, result.get(), what);
        if (ends_pipeline(failed)) return failed;
        if (sent[i].by_name && IsStalePreparedFailure(result.get())) {
          broken_ = true;
          failed = absl::UnavailableError(absl::StrCat(
              failed.message(),
              "; not run: the server no longer holds the statement as this "
              "connection prepared it, so the connection is dropped"));
          failed.SetPayload(kStalePreparedStatement, absl::Cord());
        }
        results.push_back(std::move(failed));
      }
    }
  }
  Result sync(PQgetResult(connection_));
  if (sync == nullptr || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) {
    return missing();
  }
  for (auto& [sql, name] : prepared) {
    prepared_.emplace(std::move(sql), std::move(name));
  }
  return results;
}

}  // namespace tasktrail::store::postgres
