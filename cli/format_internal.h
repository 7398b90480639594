// The building blocks that the CLI's output formats share (format.cc,
// format_task.cc, format_commands.cc): display width and one-line cuts of
// text, enum words, labelled fields and parts, aligned tables. Internal to
// cli/; format.h is the interface.
//
// Thread safety: the functions are pure; a Table belongs to one thread.
#ifndef TASKTRAIL_CLI_FORMAT_INTERNAL_H_
#define TASKTRAIL_CLI_FORMAT_INTERNAL_H_

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tasktrail::cli::format_internal {

// Separates the parts of one line.
inline constexpr absl::string_view kSep = " · ";

// The number of terminal columns `s` takes, counting UTF-8 code points.
size_t DisplayWidth(absl::string_view s);

// `s` on one line (control characters as spaces), cut to at most `max` code
// points with "…" marking the cut.
std::string OneLine(absl::string_view s, size_t max);

// An enum value name without `prefix`, such as "QUEUED" from
// "TASK_STATE_QUEUED"; "<fallback>_<number>" when the name is unknown.
std::string EnumWord(const std::string& name, absl::string_view prefix,
                     absl::string_view fallback, int number);

// "INVALID_PARAMS" -> "invalid params".
std::string LowerWords(absl::string_view upper);

// Whether `t` is set (ToAbslTime gives InfinitePast for an unset time).
bool IsSet(absl::Time t);

// Appends "label      value\n" when `value` is not empty.
void AddField(std::string* out, absl::string_view label,
              absl::string_view value);

// Appends `value` to `parts` as "name value" when `value` is not empty.
void AddPart(std::vector<std::string>* parts, absl::string_view name,
             absl::string_view value);

// Column-aligned rows; the last column is not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> header) {
    rows_.push_back(std::move(header));
  }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

  std::string Render() const {
    std::vector<size_t> widths;
    for (const auto& row : rows_) {
      if (widths.size() < row.size()) widths.resize(row.size(), 0);
      for (size_t i = 0; i < row.size(); ++i) {
        widths[i] = std::max(widths[i], DisplayWidth(row[i]));
      }
    }
    std::string out;
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) {
          line.append(widths[i] - DisplayWidth(row[i]) + 2, ' ');
        }
      }
      absl::StrAppend(&out, absl::StripTrailingAsciiWhitespace(line), "\n");
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace tasktrail::cli::format_internal

#endif  // TASKTRAIL_CLI_FORMAT_INTERNAL_H_
