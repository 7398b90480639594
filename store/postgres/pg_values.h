// How the PostgreSQL store's values travel to and from the database: every
// parameter and result in PostgreSQL's text form (bytea in hex), and the
// columns derived from a task snapshot. Shared by the store's writes
// (pg_task_store.cc) and reads (pg_task_reads.cc).
#ifndef TASKTRAIL_STORE_POSTGRES_PG_VALUES_H_
#define TASKTRAIL_STORE_POSTGRES_PG_VALUES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "google/protobuf/timestamp.pb.h"
#include "tasktrail/v1/task.pb.h"

namespace tasktrail::store::postgres {

// A bytea parameter in hex text form.
std::string Bytea(absl::string_view bytes);

// The bytes of a bytea result; INTERNAL (naming `what`) when it is NULL or
// not in hex form.
absl::StatusOr<std::string> FromBytea(const absl::optional<std::string>& text,
                                      absl::string_view what);

// The value of an integer result; INTERNAL (naming `what`) when it is NULL
// or not an integer.
absl::StatusOr<int64_t> FromInt(const absl::optional<std::string>& text,
                                absl::string_view what);

// An integer parameter.
std::string Text(int64_t value);

// A text[] parameter: an array literal whose elements are `values`, each
// quoted (any text, including commas, quotes, backslashes and braces).
std::string TextArray(const std::vector<std::string>& values);

// A bytea[] parameter: an array literal whose elements are `values`, each
// any bytes, in hex text form.
std::string ByteaArray(const std::vector<std::string>& values);

// A bigint[] parameter.
std::string IntArray(const std::vector<int64_t>& values);

int64_t UnixMicros(const google::protobuf::Timestamp& time);

// The `retention_unix_micros` column: when the task's retention runs from,
// a finished task's finish time (its last change when a snapshot lacks
// one), any other task's last change.
int64_t RetentionMicros(const v1::Task& task);

// The `owed` column of a task, as PostgreSQL writes a boolean in text form.
std::string OwedText(const v1::Task& task);

}  // namespace tasktrail::store::postgres

#endif  // TASKTRAIL_STORE_POSTGRES_PG_VALUES_H_
