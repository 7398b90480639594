#include "store/postgres/pg_values.h"

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "store/task_store.h"

namespace tasktrail::store::postgres {

std::string Bytea(absl::string_view bytes) {
  return absl::StrCat("\\x", absl::BytesToHexString(bytes));
}

absl::StatusOr<std::string> FromBytea(const absl::optional<std::string>& text,
                                      absl::string_view what) {
  if (!text.has_value() || text->size() % 2 != 0 ||
      text->compare(0, 2, "\\x") != 0) {
    return absl::InternalError(
        absl::StrCat(what, ": PostgreSQL sent a bytea value not in hex form"));
  }
  return absl::HexStringToBytes(absl::string_view(*text).substr(2));
}

absl::StatusOr<int64_t> FromInt(const absl::optional<std::string>& text,
                                absl::string_view what) {
  int64_t value = 0;
  if (!text.has_value() || !absl::SimpleAtoi(*text, &value)) {
    return absl::InternalError(
        absl::StrCat(what, ": PostgreSQL sent a value that is not an integer"));
  }
  return value;
}

std::string Text(int64_t value) { return std::to_string(value); }

std::string TextArray(const std::vector<std::string>& values) {
  std::string literal = "{";
  for (const std::string& value : values) {
    if (literal.size() > 1) literal.push_back(',');
    literal.push_back('"');
    for (const char c : value) {
      if (c == '"' || c == '\\') literal.push_back('\\');
      literal.push_back(c);
    }
    literal.push_back('"');
  }
  literal.push_back('}');
  return literal;
}

std::string ByteaArray(const std::vector<std::string>& values) {
  std::vector<std::string> hex;
  hex.reserve(values.size());
  for (const std::string& value : values) hex.push_back(Bytea(value));
  return TextArray(hex);
}

std::string IntArray(const std::vector<int64_t>& values) {
  return absl::StrCat("{", absl::StrJoin(values, ","), "}");
}

int64_t UnixMicros(const google::protobuf::Timestamp& time) {
  return time.seconds() * 1000000 + time.nanos() / 1000;
}

int64_t RetentionMicros(const v1::Task& task) {
  if (!IsUnfinishedState(task.state()) && task.has_finish_time()) {
    return UnixMicros(task.finish_time());
  }
  return UnixMicros(task.update_time());
}

std::string OwedText(const v1::Task& task) {
  return IsOwedTask(task) ? "t" : "f";
}

}  // namespace tasktrail::store::postgres
