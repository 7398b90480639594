#include "cli/format.h"

#include <algorithm>
#include <cstddef>
#include <map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace tasktrail::cli {
namespace {

using ::tasktrail::v1::EventType;
using ::tasktrail::v1::Failure;
using ::tasktrail::v1::Note;
using ::tasktrail::v1::Task;
using ::tasktrail::v1::TaskEvent;
using ::tasktrail::v1::TaskKind;
using ::tasktrail::v1::TaskParams;
using ::tasktrail::v1::TaskState;

constexpr absl::string_view kSep = " · ";
constexpr int kLabelWidth = 11;
constexpr size_t kPromptMax = 100;
constexpr size_t kMessageMax = 80;

// The number of terminal columns `s` takes, counting UTF-8 code points.
size_t DisplayWidth(absl::string_view s) {
  size_t width = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++width;
  }
  return width;
}

// `s` on one line (control characters as spaces), cut to at most `max` code
// points with "…" marking the cut.
std::string OneLine(absl::string_view s, size_t max) {
  std::string flat(s);
  for (char& c : flat) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  if (DisplayWidth(flat) <= max) return flat;
  size_t points = 0;
  size_t i = 0;
  for (; i < flat.size(); ++i) {
    bool lead = (static_cast<unsigned char>(flat[i]) & 0xC0) != 0x80;
    if (lead && ++points == max) break;
  }
  return absl::StrCat(flat.substr(0, i), "…");
}

// An enum value name without `prefix`, such as "QUEUED" from
// "TASK_STATE_QUEUED"; "<fallback>_<number>" when the name is unknown.
std::string EnumWord(const std::string& name, absl::string_view prefix,
                     absl::string_view fallback, int number) {
  if (name.empty()) return absl::StrCat(fallback, "_", number);
  return std::string(absl::StripPrefix(name, prefix));
}

// "INVALID_PARAMS" -> "invalid params".
std::string LowerWords(absl::string_view upper) {
  return absl::StrReplaceAll(absl::AsciiStrToLower(upper), {{"_", " "}});
}

bool IsSet(absl::Time t) { return t != absl::InfinitePast(); }

// Appends "label      value\n" when `value` is not empty.
void AddField(std::string* out, absl::string_view label,
              absl::string_view value) {
  if (value.empty()) return;
  absl::StrAppendFormat(out, "%-*s %s\n", kLabelWidth, label, value);
}

// Appends `value` to `parts` as "name value" when `value` is not empty.
void AddPart(std::vector<std::string>* parts, absl::string_view name,
             absl::string_view value) {
  if (value.empty()) return;
  parts->push_back(name.empty() ? std::string(value)
                                : absl::StrCat(name, " ", value));
}

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

// "a 3 · b 1" from a proto map, sorted by key; empty for an empty map.
std::string CountsLine(const google::protobuf::Map<std::string, int64_t>& m) {
  std::map<std::string, int64_t> sorted(m.begin(), m.end());
  std::vector<std::string> parts;
  for (const auto& [key, count] : sorted) {
    parts.push_back(absl::StrCat(key, " ", count));
  }
  return absl::StrJoin(parts, kSep);
}

// ---- Event details ---------------------------------------------------------

std::string SubmittedSummary(const v1::SubmittedDetail& d) {
  std::vector<std::string> parts;
  AddPart(&parts, "model", d.model());
  AddPart(&parts, "via", d.endpoint());
  AddPart(&parts, "request_id", d.request_id());
  if (d.charge_units() != 0) {
    parts.push_back(absl::StrCat("charge ", d.charge_units()));
  }
  return absl::StrJoin(parts, kSep);
}

std::string QueuedSummary(const v1::QueuedDetail& d) {
  std::vector<std::string> parts;
  AddPart(&parts, "upstream id", d.upstream_task_id());
  if (d.queue_position() > 0) {
    parts.push_back(absl::StrCat("position ", d.queue_position()));
  }
  return absl::StrJoin(parts, kSep);
}

std::string PolledSummary(const TaskEvent& e, const FormatOptions& opts) {
  const v1::PolledDetail& d = e.polled();
  std::vector<std::string> parts;
  AddPart(&parts, "", d.upstream_status());
  if (d.queue_position() > 0) {
    parts.push_back(absl::StrCat("position ", d.queue_position()));
  }
  if (d.progress_percent() > 0) {
    parts.push_back(absl::StrCat(d.progress_percent(), "%"));
  }
  if (d.http_status() != 0) {
    parts.push_back(absl::StrCat("HTTP ", d.http_status()));
  }
  if (d.has_eta()) {
    parts.push_back(
        absl::StrCat("upstream eta ", FormatSpan(ToAbslDuration(d.eta()))));
  }
  std::string summary = absl::StrJoin(parts, kSep);
  if (e.repeat_count() > 1) {
    absl::StrAppend(&summary, summary.empty() ? "" : " ", "×", e.repeat_count(),
                    " until ", FormatClock(ToAbslTime(e.last_time()), opts));
  }
  return summary;
}

std::string CompletedSummary(const v1::CompletedDetail& d,
                             const FormatOptions& opts) {
  std::string out = d.result_uris_size() == 1
                        ? OneLine(d.result_uris(0), kMessageMax)
                        : absl::StrCat(d.result_uris_size(), " result URIs");
  if (d.has_expire_time()) {
    absl::StrAppend(&out, kSep, "expires ",
                    FormatClock(ToAbslTime(d.expire_time()), opts));
  }
  return out;
}

std::string FailedSummary(const v1::FailedDetail& d) {
  std::vector<std::string> parts;
  if (d.http_status() != 0) {
    parts.push_back(absl::StrCat("HTTP ", d.http_status()));
  }
  AddPart(&parts, "", d.error_code());
  AddPart(&parts, "", OneLine(d.message(), kMessageMax));
  if (d.refunded()) parts.push_back("refunded");
  return absl::StrJoin(parts, kSep);
}

std::string RefundedSummary(const v1::RefundedDetail& d) {
  std::string units =
      d.units() == 0 ? "whole charge" : absl::StrCat(d.units(), " units");
  if (d.reason().empty()) return units;
  return absl::StrCat(units, kSep, OneLine(d.reason(), kMessageMax));
}

std::string DuplicateSummary(const v1::DuplicateBlockedDetail& d) {
  std::vector<std::string> parts;
  switch (d.reason()) {
    case v1::DEDUP_REASON_SAME_REQUEST_ID:
      parts.push_back("same request_id");
      break;
    case v1::DEDUP_REASON_SAME_CONTENT:
      parts.push_back("same content");
      break;
    default:
      break;
  }
  AddPart(&parts, "request_id", d.request_id());
  AddPart(&parts, "from", d.client());
  return absl::StrJoin(parts, kSep);
}

std::string NoteSummary(const Note& n) {
  std::string out = OneLine(n.text(), kMessageMax);
  if (!n.final_cause().empty()) {
    absl::StrAppend(&out,
                    " — final cause: ", OneLine(n.final_cause(), kMessageMax));
  }
  return out;
}

// ---- Task report sections --------------------------------------------------

void AddHeader(const Task& t, std::string* out) {
  AddField(out, "task", t.task_id());
  AddField(out, "state", StateName(t.state()));
  std::vector<std::string> who;
  AddPart(&who, "", t.account_id());
  AddPart(&who, "api key", t.api_key_id());
  AddPart(&who, "group", t.group());
  AddField(out, "account", absl::StrJoin(who, kSep));
  std::string model = t.model();
  if (t.kind() != v1::TASK_KIND_UNSPECIFIED) {
    absl::StrAppend(&model, " (", KindName(t.kind()), ")");
  }
  std::vector<std::string> what;
  AddPart(&what, "", model);
  AddPart(&what, "endpoint", t.endpoint());
  AddField(out, "model", absl::StrJoin(what, kSep));
}

void AddNotes(const Task& t, const FormatOptions& opts, std::string* out) {
  for (const Note& note : t.notes()) {
    absl::StrAppend(out, FormatNote(note, opts), "\n");
  }
  if (t.notes_size() > 0) out->append("\n");
}

void AddUpstream(const Task& t, const FormatOptions& opts, std::string* out) {
  std::vector<std::string> parts;
  AddPart(&parts, "id", t.upstream_task_id());
  AddPart(&parts, "status", t.upstream_status());
  if (t.queue_position() > 0) {
    parts.push_back(absl::StrCat("position ", t.queue_position()));
  }
  if (t.progress_percent() > 0) {
    parts.push_back(absl::StrCat("progress ", t.progress_percent(), "%"));
  }
  if (t.has_upstream_eta()) {
    parts.push_back(absl::StrCat(
        "eta ", FormatSpan(ToAbslDuration(t.upstream_eta())), " (upstream)"));
  }
  AddField(out, "upstream", absl::StrJoin(parts, kSep));
  AddField(out, "created",
           FormatTimeWithAge(ToAbslTime(t.create_time()), opts));
  if (t.has_update_time()) {
    AddField(out, "updated",
             FormatTimeWithAge(ToAbslTime(t.update_time()), opts));
  }
  if (t.poll_count() > 0 || t.has_last_poll_time()) {
    AddField(out, "last poll",
             absl::StrCat(
                 FormatTimeWithAge(ToAbslTime(t.last_poll_time()), opts), kSep,
                 t.poll_count(), t.poll_count() == 1 ? " poll" : " polls"));
  }
  AddField(out, "request id", t.request_id());
}

void AddParams(const TaskParams& p, std::string* out) {
  if (!p.prompt().empty()) {
    AddField(out, "prompt",
             absl::StrCat("\"", OneLine(p.prompt(), kPromptMax), "\""));
  }
  if (!p.negative_prompt().empty()) {
    AddField(
        out, "negative",
        absl::StrCat("\"", OneLine(p.negative_prompt(), kPromptMax), "\""));
  }
  std::vector<std::string> parts;
  AddPart(&parts, "ratio", p.aspect_ratio());
  AddPart(&parts, "resolution", p.resolution());
  if (p.duration_seconds() != 0) {
    parts.push_back(absl::StrCat("duration ", p.duration_seconds(), "s"));
  }
  if (p.reference_images_size() > 0) {
    parts.push_back(
        absl::StrCat(p.reference_images_size(), p.reference_images_size() == 1
                                                    ? " reference image"
                                                    : " reference images"));
  }
  if (p.generate_audio()) parts.push_back("audio");
  if (p.has_seed()) parts.push_back(absl::StrCat("seed ", p.seed()));
  if (p.has_watermark()) {
    parts.push_back(p.watermark() ? "watermark" : "no watermark");
  }
  if (p.image_count() != 0) {
    parts.push_back(absl::StrCat(p.image_count(), " images"));
  }
  AddPart(&parts, "callback", OneLine(p.callback_url(), kMessageMax));
  AddField(out, "params", absl::StrJoin(parts, kSep));
}

void AddResults(const Task& t, const FormatOptions& opts, std::string* out) {
  for (int i = 0; i < t.result_uris_size(); ++i) {
    AddField(out, i == 0 ? "results" : "", t.result_uris(i));
  }
  if (t.has_result_expire_time()) {
    AddField(out, "expires",
             FormatTimeWithAge(ToAbslTime(t.result_expire_time()), opts));
  }
  if (t.download_count() > 0) {
    std::string line = absl::StrCat(t.download_count());
    if (t.has_last_download_time()) {
      absl::StrAppend(
          &line, kSep, "last ",
          FormatTimeWithAge(ToAbslTime(t.last_download_time()), opts));
    }
    AddField(out, "downloads", line);
  }
}

void AddFailure(const Task& t, std::string* out) {
  if (!t.has_failure()) return;
  const Failure& f = t.failure();
  std::vector<std::string> parts;
  AddPart(&parts, "",
          LowerWords(EnumWord(v1::FailureCategory_Name(f.category()),
                              "FAILURE_CATEGORY_", "CATEGORY", f.category())));
  if (f.origin() != v1::FAILURE_ORIGIN_UNSPECIFIED) {
    parts.push_back(absl::StrCat(
        "origin ",
        LowerWords(EnumWord(v1::FailureOrigin_Name(f.origin()),
                            "FAILURE_ORIGIN_", "ORIGIN", f.origin()))));
  }
  if (f.http_status() != 0) {
    parts.push_back(absl::StrCat("HTTP ", f.http_status()));
  }
  AddPart(&parts, "code", f.error_code());
  AddField(out, "failure", absl::StrJoin(parts, kSep));
  AddField(out, "message", OneLine(f.message(), kPromptMax));
  AddField(out, "cause", OneLine(f.cause(), kPromptMax));
  AddField(out, "retryable",
           f.retryable() ? "yes — a retry may succeed"
                         : "no — retrying unchanged will fail again");
}

std::string StatCount(const v1::ModelStats& m, absl::string_view state) {
  int64_t total = 0;
  for (const auto& [key, count] : m.tasks_by_state()) {
    std::string word = absl::AsciiStrToUpper(key);
    if (absl::StripPrefix(word, "TASK_STATE_") == state) total += count;
  }
  return absl::StrCat(total);
}

// One row per model: totals, outcomes, duplicates and queue waits.
std::string StatsTable(const v1::Stats& stats) {
  if (stats.models_size() == 0) return "no tasks in the window\n";
  Table table({"MODEL", "SUBMITTED", "SUCCEEDED", "FAILED", "CANCELED",
               "DUP BLOCKED", "WAIT P50", "WAIT P90"});
  for (const v1::ModelStats& m : stats.models()) {
    table.Add({m.model(), StatCount(m, "SUBMITTED"), StatCount(m, "SUCCEEDED"),
               StatCount(m, "FAILED"), StatCount(m, "CANCELED"),
               absl::StrCat(m.duplicates_blocked()),
               FormatSpan(ToAbslDuration(m.queue_wait_p50())),
               FormatSpan(ToAbslDuration(m.queue_wait_p90()))});
  }
  return table.Render();
}

// Per model: counts by state, failure category and origin, and rejections.
std::string StatsBreakdown(const v1::Stats& stats) {
  std::string out;
  for (const v1::ModelStats& m : stats.models()) {
    std::string block;
    AddField(&block, "  entered", CountsLine(m.tasks_by_state()));
    AddField(&block, "  failures", CountsLine(m.failures_by_category()));
    AddField(&block, "  origins", CountsLine(m.failures_by_origin()));
    AddField(&block, "  rejected", CountsLine(m.rejections_by_reason()));
    if (!block.empty()) absl::StrAppend(&out, "\n", m.model(), "\n", block);
  }
  return out;
}

// Whether `text` contains the lower-case `needle`, ignoring ASCII case.
bool ContainsNoCase(absl::string_view text, absl::string_view needle) {
  return absl::StrContains(absl::AsciiStrToLower(text), needle);
}

// Whether a RESOURCE_EXHAUSTED message is about the request's size rather
// than the server's load.
bool IsTooLarge(absl::string_view message) {
  return ContainsNoCase(message, "too large") ||
         ContainsNoCase(message, "larger than max");
}

}  // namespace

// ---- Names -----------------------------------------------------------------

std::string StateName(TaskState state) {
  return EnumWord(v1::TaskState_Name(state), "TASK_STATE_", "STATE", state);
}

TaskState ParseStateName(absl::string_view name) {
  TaskState state = v1::TASK_STATE_UNSPECIFIED;
  std::string full = absl::StrCat("TASK_STATE_", absl::AsciiStrToUpper(name));
  if (!v1::TaskState_Parse(full, &state)) return v1::TASK_STATE_UNSPECIFIED;
  return state;
}

std::string EventTypeName(EventType type) {
  switch (type) {
    case v1::EVENT_TYPE_SUBMITTED:
      return "submitted";
    case v1::EVENT_TYPE_QUEUED:
      return "queued";
    case v1::EVENT_TYPE_STARTED:
      return "started";
    case v1::EVENT_TYPE_POLLED:
      return "polled";
    case v1::EVENT_TYPE_COMPLETED:
      return "completed";
    case v1::EVENT_TYPE_FAILED:
      return "failed";
    case v1::EVENT_TYPE_DOWNLOADED:
      return "downloaded";
    case v1::EVENT_TYPE_CANCELED:
      return "canceled";
    case v1::EVENT_TYPE_DUPLICATE_BLOCKED:
      return "duplicate-blocked";
    case v1::EVENT_TYPE_NOTE_ADDED:
      return "note";
    case v1::EVENT_TYPE_REFUNDED:
      return "refunded";
    default:
      return absl::StrCat("event-", static_cast<int>(type));
  }
}

std::string KindName(TaskKind kind) {
  switch (kind) {
    case v1::TASK_KIND_IMAGE:
      return "image";
    case v1::TASK_KIND_VIDEO:
      return "video";
    default:
      return "unknown";
  }
}

std::string StatusCodeName(grpc::StatusCode code) {
  const int n = static_cast<int>(code);
  // gRPC and absl share the code numbering (0..16).
  if (n < 0 || n > static_cast<int>(grpc::StatusCode::UNAUTHENTICATED)) {
    return absl::StrCat("CODE_", n);
  }
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(n));
}

// ---- Times and spans -------------------------------------------------------

absl::Time ToAbslTime(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return absl::InfinitePast();
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

absl::Duration ToAbslDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

std::string FormatRelative(absl::Time then, absl::Time now) {
  absl::Duration d = now - then;
  bool future = d < absl::ZeroDuration();
  int64_t s = absl::ToInt64Seconds(future ? -d : d);
  std::string span;
  if (s < 60) {
    span = absl::StrCat(s, "s");
  } else if (s < 3600) {
    span = absl::StrCat(s / 60, "m");
  } else if (s < 86400) {
    span = absl::StrCat(s / 3600, "h");
  } else {
    span = absl::StrCat(s / 86400, "d");
  }
  return future ? absl::StrCat("in ", span) : absl::StrCat(span, " ago");
}

std::string FormatSpan(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return "0s";
  if (d < absl::Seconds(1)) return absl::FormatDuration(d);
  int64_t s = absl::ToInt64Seconds(d);
  auto two = [](int64_t big, const char* big_unit, int64_t small,
                const char* small_unit) {
    return small == 0 ? absl::StrCat(big, big_unit)
                      : absl::StrCat(big, big_unit, small, small_unit);
  };
  if (s >= 86400) return two(s / 86400, "d", s % 86400 / 3600, "h");
  if (s >= 3600) return two(s / 3600, "h", s % 3600 / 60, "m");
  if (s >= 60) return two(s / 60, "m", s % 60, "s");
  return absl::StrCat(s, "s");
}

std::string FormatTimeWithAge(absl::Time t, const FormatOptions& opts) {
  if (!IsSet(t)) return "-";
  return absl::StrCat(absl::FormatTime("%Y-%m-%d %H:%M:%S %Ez", t, opts.zone),
                      " (", FormatRelative(t, opts.now), ")");
}

std::string FormatClock(absl::Time t, const FormatOptions& opts) {
  if (!IsSet(t)) return "-";
  return absl::FormatTime("%H:%M:%S", t, opts.zone);
}

// ---- Task report -----------------------------------------------------------

std::string FormatChargeLine(const Task& task, const FormatOptions& opts) {
  if (task.charge_units() == 0 && !task.refunded()) return "not charged";
  std::string line = absl::StrCat("charged ", task.charge_units(), " units");
  if (!task.refunded()) return absl::StrCat(line, kSep, "not refunded");
  absl::StrAppend(&line, kSep, "refunded");
  if (task.refunded_units() != 0 &&
      task.refunded_units() != task.charge_units()) {
    absl::StrAppend(&line, " ", task.refunded_units(), " units");
  }
  if (task.has_refund_time()) {
    absl::StrAppend(&line, " ",
                    FormatClock(ToAbslTime(task.refund_time()), opts));
  }
  return line;
}

std::string FormatDuplicatesLine(const Task& task, const FormatOptions& opts) {
  int64_t n = task.duplicate_count();
  if (n <= 0) return "";
  std::string line =
      absl::StrCat("blocked ", n,
                   n == 1 ? " duplicate submission" : " duplicate submissions");
  if (task.has_last_duplicate_time()) {
    absl::StrAppend(&line, " (last ",
                    FormatClock(ToAbslTime(task.last_duplicate_time()), opts),
                    ")");
  }
  return line;
}

std::string FormatNote(const Note& note, const FormatOptions& opts) {
  std::string line = absl::StrCat(
      "note by ", note.author().empty() ? "unknown" : note.author());
  if (note.has_create_time()) {
    absl::StrAppend(
        &line, " (",
        absl::FormatTime("%H:%M", ToAbslTime(note.create_time()), opts.zone),
        ")");
  }
  absl::StrAppend(&line, ": ", NoteSummary(note));
  return line;
}

std::string FormatEventDetail(const TaskEvent& event,
                              const FormatOptions& opts) {
  switch (event.detail_case()) {
    case TaskEvent::kSubmitted:
      return SubmittedSummary(event.submitted());
    case TaskEvent::kQueued:
      return QueuedSummary(event.queued());
    case TaskEvent::kStarted:
      return event.started().progress_percent() > 0
                 ? absl::StrCat(event.started().progress_percent(), "%")
                 : "";
    case TaskEvent::kPolled:
      return PolledSummary(event, opts);
    case TaskEvent::kCompleted:
      return CompletedSummary(event.completed(), opts);
    case TaskEvent::kFailed:
      return FailedSummary(event.failed());
    case TaskEvent::kDownloaded: {
      std::string out = OneLine(event.downloaded().uri(), kMessageMax);
      if (!event.downloaded().client().empty()) {
        absl::StrAppend(&out, " by ", event.downloaded().client());
      }
      return out;
    }
    case TaskEvent::kCanceled:
      return OneLine(event.canceled().reason(), kMessageMax);
    case TaskEvent::kRefunded:
      return RefundedSummary(event.refunded());
    case TaskEvent::kDuplicateBlocked:
      return DuplicateSummary(event.duplicate_blocked());
    case TaskEvent::kNote:
      return NoteSummary(event.note());
    case TaskEvent::DETAIL_NOT_SET:
      break;
  }
  return "";
}

std::string FormatEventLine(const TaskEvent& event, const FormatOptions& opts) {
  std::string time = IsSet(ToAbslTime(event.time()))
                         ? absl::FormatTime("%Y-%m-%d %H:%M:%S %Ez",
                                            ToAbslTime(event.time()), opts.zone)
                         : "-";
  std::string line = absl::StrFormat(
      "#%-3d %s  %-17s %-8s", event.seq(), time, EventTypeName(event.type()),
      event.actor().empty() ? "-" : event.actor());
  absl::StrAppend(&line, "  ", FormatEventDetail(event, opts));
  return absl::StrCat(absl::StripTrailingAsciiWhitespace(line), "\n");
}

std::string FormatTimeline(
    const google::protobuf::RepeatedPtrField<TaskEvent>& events,
    absl::Time day_of, const FormatOptions& opts) {
  std::string day =
      IsSet(day_of) ? absl::FormatTime("%Y-%m-%d", day_of, opts.zone) : "";
  Table table({"SEQ", "TIME", "EVENT", "ACTOR", "DETAIL"});
  for (const TaskEvent& e : events) {
    absl::Time t = ToAbslTime(e.time());
    std::string time = "-";
    if (IsSet(t)) {
      bool same_day = absl::FormatTime("%Y-%m-%d", t, opts.zone) == day;
      time = absl::FormatTime(same_day ? "%H:%M:%S" : "%Y-%m-%d %H:%M:%S", t,
                              opts.zone);
    }
    table.Add({absl::StrCat(e.seq()), time, EventTypeName(e.type()),
               e.actor().empty() ? "-" : e.actor(),
               FormatEventDetail(e, opts)});
  }
  return table.Render();
}

std::string FormatTask(const Task& task, const FormatOptions& opts) {
  std::string out;
  AddHeader(task, &out);
  out.append("\n");
  AddNotes(task, opts, &out);
  AddUpstream(task, opts, &out);
  AddParams(task.params(), &out);
  AddResults(task, opts, &out);
  AddFailure(task, &out);
  AddField(&out, "charge", FormatChargeLine(task, opts));
  AddField(&out, "duplicates", FormatDuplicatesLine(task, opts));
  AddField(&out, "catalog", task.catalog_version());
  if (task.events_size() > 0) {
    out.append("\n");
    if (task.omitted_event_count() > 0) {
      absl::StrAppend(&out, "… ", task.omitted_event_count(),
                      " earlier events omitted; `tasktrail watch ",
                      task.task_id(), "` replays them all\n");
    }
    out.append(
        FormatTimeline(task.events(), ToAbslTime(task.create_time()), opts));
  }
  return out;
}

// ---- Other commands --------------------------------------------------------

std::string FormatQueueStatus(const v1::QueueStatus& s,
                              const FormatOptions& opts) {
  std::string out;
  AddField(&out, "task", s.task_id());
  std::string verdict =
      LowerWords(EnumWord(v1::QueueVerdict_Name(s.verdict()), "QUEUE_VERDICT_",
                          "VERDICT", s.verdict()));
  AddField(&out, "state", absl::StrCat(StateName(s.state()), kSep, verdict));
  std::string wait = FormatSpan(ToAbslDuration(s.time_in_queue()));
  if (s.typical_wait_samples() > 0) {
    absl::StrAppend(&wait, " (typical for this model: p50 ",
                    FormatSpan(ToAbslDuration(s.typical_wait_p50())), kSep,
                    "p90 ", FormatSpan(ToAbslDuration(s.typical_wait_p90())),
                    ", ", s.typical_wait_samples(), " tasks)");
  } else {
    absl::StrAppend(&wait, " (no typical wait known for this model yet)");
  }
  AddField(&out, "in queue", wait);
  std::vector<std::string> up;
  AddPart(&up, "status", s.upstream_status());
  if (s.queue_position() > 0) {
    up.push_back(absl::StrCat("position ", s.queue_position()));
  }
  AddField(&out, "upstream", absl::StrJoin(up, kSep));
  if (s.has_last_poll_time()) {
    AddField(&out, "last poll",
             FormatTimeWithAge(ToAbslTime(s.last_poll_time()), opts));
  }
  AddField(&out, "eta",
           s.has_upstream_eta()
               ? absl::StrCat(FormatSpan(ToAbslDuration(s.upstream_eta())),
                              " (given by the upstream)")
               : "none given by the upstream");
  AddField(&out, "resubmit", s.resubmit_advised() ? "advised" : "not advised");
  AddField(&out, "advice", s.advice());
  return out;
}

std::string FormatTaskList(const v1::ListTasksResponse& response,
                           const FormatOptions& opts) {
  std::string out;
  if (response.tasks_size() == 0) {
    out = "no tasks\n";
  } else {
    Table table(
        {"TASK ID", "CREATED", "ACCOUNT", "MODEL", "STATE", "UPSTREAM ID"});
    for (const Task& t : response.tasks()) {
      absl::Time created = ToAbslTime(t.create_time());
      table.Add({t.task_id(),
                 IsSet(created) ? FormatRelative(created, opts.now) : "-",
                 t.account_id(), t.model(), StateName(t.state()),
                 t.upstream_task_id().empty() ? "-" : t.upstream_task_id()});
    }
    out = table.Render();
  }
  if (!response.next_page_token().empty()) {
    absl::StrAppend(&out, "next page: --page-token ",
                    response.next_page_token(), "\n");
  }
  return out;
}

std::string FormatValidation(const v1::ValidateTaskResponse& response,
                             absl::string_view model) {
  if (response.violations_size() == 0) {
    return absl::StrCat("valid for ", model, "\n");
  }
  std::string out;
  for (const v1::FieldViolation& v : response.violations()) {
    absl::StrAppend(&out, v.field(), ": ", v.description());
    if (!v.reason().empty()) absl::StrAppend(&out, " (", v.reason(), ")");
    out.append("\n");
  }
  return out;
}

namespace {

std::string RangeText(const v1::IntRange& range) {
  if (range.min() == range.max()) return absl::StrCat(range.min());
  return absl::StrCat(range.min(), "-", range.max());
}

// What a model accepts, one cell per aspect.
std::vector<std::string> ModelRow(const v1::ModelSpec& m) {
  std::vector<std::string> resolutions;
  for (const v1::ResolutionSpec& r : m.resolutions()) {
    resolutions.push_back(r.name());
  }
  std::string durations = "-";
  if (m.durations_size() > 0) {
    durations = absl::StrCat(absl::StrJoin(m.durations(), "/"), " s");
  } else if (m.duration_range().max() > 0) {
    durations = absl::StrCat(RangeText(m.duration_range()), " s");
  }
  const v1::ReferenceImageSpec& refs = m.reference_images();
  std::string images = "-";
  if (refs.max_count() > 0) {
    images = absl::StrCat(refs.required() ? "required" : "optional", ", ≤",
                          refs.max_count());
    if (refs.max_bytes() > 0) {
      absl::StrAppend(&images, ", ≤", refs.max_bytes() / (1024 * 1024), " MB");
    }
  }
  std::vector<std::string> extras;
  if (m.audio_supported()) extras.push_back("audio");
  if (m.image_count().max() > 0) {
    extras.push_back(absl::StrCat("n=", RangeText(m.image_count())));
  }
  if (m.seed_range().max() > 0) extras.push_back("seed");
  if (m.groups_size() > 0) {
    extras.push_back(absl::StrCat("groups ", absl::StrJoin(m.groups(), "/")));
  }
  auto or_dash = [](const std::string& text) {
    return text.empty() ? std::string("-") : text;
  };
  return {m.name(),
          KindName(m.kind()),
          or_dash(absl::StrJoin(m.aspect_ratios(), " ")),
          or_dash(absl::StrJoin(resolutions, " ")),
          durations,
          images,
          or_dash(absl::StrJoin(extras, ", "))};
}

}  // namespace

std::string FormatAudit(const v1::ListAuditResponse& response,
                        const FormatOptions& opts) {
  if (response.entries_size() == 0) return "no support or admin reads\n";
  Table table({"TIME", "PRINCIPAL", "ROLE", "RPC"});
  for (const v1::AuditEntry& entry : response.entries()) {
    table.Add({FormatTimeWithAge(ToAbslTime(entry.time()), opts),
               entry.principal(), entry.role(), entry.rpc()});
  }
  return table.Render();
}

std::string FormatModels(const v1::ListModelsResponse& response) {
  if (response.models_size() == 0) return "no models\n";
  Table table({"NAME", "KIND", "RATIOS", "RESOLUTIONS", "DURATION",
               "REF IMAGES", "OTHER"});
  for (const v1::ModelSpec& m : response.models()) table.Add(ModelRow(m));
  std::string out = table.Render();
  if (!response.catalog_version().empty()) {
    absl::StrAppend(&out, "catalog version ", response.catalog_version(), "\n");
  }
  return out;
}

std::string FormatStats(const v1::Stats& stats, const FormatOptions& opts) {
  std::string out =
      absl::StrCat("window ", FormatSpan(ToAbslDuration(stats.window())));
  if (stats.has_compute_time()) {
    absl::StrAppend(&out, kSep, "computed ",
                    FormatTimeWithAge(ToAbslTime(stats.compute_time()), opts));
  }
  absl::StrAppend(&out, "\n\n", StatsTable(stats), StatsBreakdown(stats));
  if (stats.incidents_size() == 0) return absl::StrCat(out, "\nno incidents\n");
  out.append("\nincidents\n");
  for (const std::string& incident : stats.incidents()) {
    absl::StrAppend(&out, "  - ", incident, "\n");
  }
  return out;
}

// ---- Terminal safety -------------------------------------------------------

std::string EscapeControlCharacters(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out.append("\\n");
    } else if (c == '\r') {
      out.append("\\r");
    } else if (c == '\t') {
      out.append("\\t");
    } else if (c < 0x20 || c == 0x7f) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    } else if (c == 0xc2 && i + 1 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      absl::StrAppendFormat(&out, "\\u%04x",
                            static_cast<unsigned char>(text[i + 1]));
      ++i;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

void EscapeControlCharactersIn(google::protobuf::Message* message) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = message->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(*message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(*message, field); ++i) {
          EscapeControlCharactersIn(
              reflection->MutableRepeatedMessage(message, field, i));
        }
      } else {
        EscapeControlCharactersIn(reflection->MutableMessage(message, field));
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING &&
               field->type() == FieldDescriptor::TYPE_STRING) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(*message, field); ++i) {
          reflection->SetRepeatedString(
              message, field, i,
              EscapeControlCharacters(
                  reflection->GetRepeatedString(*message, field, i)));
        }
      } else {
        reflection->SetString(
            message, field,
            EscapeControlCharacters(reflection->GetString(*message, field)));
      }
    }
  }
}

// ---- JSON ------------------------------------------------------------------

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message,
                                   bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto printed =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!printed.ok()) {
    return absl::InvalidArgumentError(std::string(printed.message()));
  }
  return absl::StrCat(absl::StripTrailingAsciiWhitespace(json), "\n");
}

// ---- Errors and exit statuses ----------------------------------------------

int ExitCodeFor(grpc::StatusCode code, absl::string_view message) {
  switch (code) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kExitRefused;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return IsTooLarge(message) ? kExitRefused : kExitUnavailable;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitUnavailable;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return kExitAuth;
    default:
      return kExitOther;
  }
}

std::string FormatRpcError(grpc::StatusCode code, absl::string_view message,
                           absl::string_view server) {
  std::string msg = OneLine(message, 300);
  std::string why = msg.empty()
                        ? StatusCodeName(code)
                        : absl::StrCat(msg, " (", StatusCodeName(code), ")");
  switch (ExitCodeFor(code, message)) {
    case kExitUnavailable:
      return absl::StrCat("cannot reach tasktraild at ", server, ": ", why);
    case kExitAuth:
      return absl::StrCat("not authorized by tasktraild at ", server, ": ", why,
                          "; check --token or TASKTRAIL_TOKEN");
    case kExitNotFound:
      return ContainsNoCase(msg, "not found")
                 ? msg
                 : absl::StrCat("not found: ", why);
    case kExitRefused:
      return absl::StrCat("request refused: ", why);
    default:
      if (code == grpc::StatusCode::UNIMPLEMENTED) {
        return absl::StrCat("tasktraild at ", server,
                            " does not implement this call: ", why);
      }
      return absl::StrCat("tasktraild at ", server, " failed: ", why);
  }
}

std::string FormatErrorDetails(const std::string& details) {
  google::rpc::Status status;
  if (details.empty() || !status.ParseFromString(details)) return "";
  std::string violations;
  std::string infos;
  for (const google::protobuf::Any& any : status.details()) {
    google::rpc::BadRequest bad;
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&bad)) {
      for (const auto& v : bad.field_violations()) {
        absl::StrAppend(&violations, "  ", v.field(), ": ", v.description());
        if (!v.reason().empty())
          absl::StrAppend(&violations, " (", v.reason(), ")");
        violations.append("\n");
      }
    } else if (any.UnpackTo(&info)) {
      absl::StrAppend(&infos, "  reason: ", info.reason());
      if (!info.domain().empty())
        absl::StrAppend(&infos, " (", info.domain(), ")");
      infos.append("\n");
    }
  }
  return violations.empty() ? infos : violations;
}

// ---- Argument parsing ------------------------------------------------------

absl::StatusOr<v1::ReferenceImage> ParseReferenceImage(absl::string_view spec) {
  std::vector<absl::string_view> parts = absl::StrSplit(spec, ',');
  std::string uri(parts[0]);
  if (parts.size() > 4) {
    size_t extra = parts.size() - 3;
    uri = absl::StrJoin(parts.begin(), parts.begin() + extra, ",");
    parts.erase(parts.begin() + 1, parts.begin() + extra);
  }
  v1::ReferenceImage image;
  if (uri.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ref-image \"", spec, "\": the URI is missing"));
  }
  image.set_uri(uri);
  if (parts.size() > 1) image.set_mime_type(std::string(parts[1]));
  int64_t bytes = 0;
  if (parts.size() > 2 && !parts[2].empty()) {
    if (!absl::SimpleAtoi(parts[2], &bytes) || bytes < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--ref-image \"", spec, "\": BYTES must be a whole number"));
    }
  }
  image.set_size_bytes(bytes);
  if (parts.size() > 3 && !parts[3].empty()) {
    std::vector<absl::string_view> wh =
        absl::StrSplit(parts[3], absl::ByAnyChar("xX"));
    int32_t w = 0;
    int32_t h = 0;
    if (wh.size() != 2 || !absl::SimpleAtoi(wh[0], &w) ||
        !absl::SimpleAtoi(wh[1], &h) || w < 0 || h < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--ref-image \"", spec, "\": size must be WIDTHxHEIGHT"));
    }
    image.set_width(w);
    image.set_height(h);
  }
  return image;
}

}  // namespace tasktrail::cli
