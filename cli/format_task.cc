// The task report of `get`, its timeline and its parts (format.h, "Task
// report").
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/format.h"
#include "cli/format_internal.h"

namespace tasktrail::cli {
namespace {

using format_internal::AddField;
using format_internal::AddPart;
using format_internal::EnumWord;
using format_internal::IsSet;
using format_internal::kSep;
using format_internal::LowerWords;
using format_internal::OneLine;
using format_internal::Table;
using ::tasktrail::v1::Failure;
using ::tasktrail::v1::Note;
using ::tasktrail::v1::Task;
using ::tasktrail::v1::TaskEvent;
using ::tasktrail::v1::TaskParams;

constexpr size_t kPromptMax = 100;
constexpr size_t kMessageMax = 80;
// A failure's message or cause shown whole: more than the server keeps.
constexpr size_t kMaxWholeText = 8192;

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
  AddPart(&parts, "route", d.route());
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

std::string ChargeAdjustedSummary(const v1::ChargeAdjustedDetail& d) {
  std::vector<std::string> parts;
  parts.push_back(
      absl::StrCat(d.delta_units() > 0 ? "+" : "", d.delta_units(), " units"));
  AddPart(&parts, "ledger", d.ledger_ref());
  AddPart(&parts, "", OneLine(d.reason(), kMessageMax));
  return absl::StrJoin(parts, kSep);
}

std::string LateResultSummary(const v1::LateResultDetail& d) {
  std::vector<std::string> parts;
  AddPart(&parts, "", d.upstream_status());
  if (d.result_uris_size() > 0) {
    parts.push_back(absl::StrCat("completed", kSep,
                                 OneLine(d.result_uris(0), kMessageMax)));
    if (d.result_uris_size() > 1) {
      parts.push_back(absl::StrCat("+", d.result_uris_size() - 1, " more"));
    }
  } else {
    parts.push_back("failed");
  }
  if (d.http_status() != 0) {
    parts.push_back(absl::StrCat("HTTP ", d.http_status()));
  }
  AddPart(&parts, "", d.error_code());
  AddPart(&parts, "", OneLine(d.message(), kMessageMax));
  return absl::StrJoin(parts, kSep);
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
  if (t.note_count() > t.notes_size()) {
    absl::StrAppend(out, "notes: showing newest ", t.notes_size(), " of ",
                    t.note_count(), "; `tasktrail watch ", t.task_id(),
                    "` replays them all\n");
  }
  for (const Note& note : t.notes()) {
    absl::StrAppend(out, FormatNote(note, opts), "\n");
  }
  if (t.notes_size() > 0) out->append("\n");
}

void AddUpstream(const Task& t, const FormatOptions& opts, std::string* out) {
  std::vector<std::string> parts;
  AddPart(&parts, "id", t.upstream_task_id());
  AddPart(&parts, "route", t.route());
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

// How a failure is shown.
enum class RuleLine {
  // `get`: message and cause cut to one short line each, the id of the rule
  // that decided after the cause ("... · rule ID") when one did.
  kInCause,
  // `classify`: message and cause whole (on one line), and a "rule" line of
  // its own, also when no rule decided.
  kOwn,
};

// The failure's fields, one labelled line each.
void AddFailureFields(const Failure& f, RuleLine rule_line, std::string* out) {
  const size_t text_max =
      rule_line == RuleLine::kOwn ? kMaxWholeText : kPromptMax;
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
  AddField(out, "message", OneLine(f.message(), text_max));
  // The rule that decided, so an operator knows which rule to edit.
  std::string cause = OneLine(f.cause(), text_max);
  if (rule_line == RuleLine::kInCause && !f.rule().empty()) {
    absl::StrAppend(&cause, kSep, "rule ", OneLine(f.rule(), kMessageMax));
  }
  AddField(out, "cause", cause);
  AddField(out, "retryable",
           f.retryable() ? "yes — a retry may succeed"
                         : "no — retrying unchanged will fail again");
  if (rule_line == RuleLine::kOwn) {
    AddField(out, "rule",
             f.rule().empty() ? "none matched — unclassified; add a rule for it"
                              : OneLine(f.rule(), kMessageMax));
  }
}

void AddFailure(const Task& t, std::string* out) {
  if (!t.has_failure()) return;
  AddFailureFields(t.failure(), RuleLine::kInCause, out);
}

}  // namespace

// ---- Task report -----------------------------------------------------------

std::string FormatClassification(const Failure& failure,
                                 absl::string_view model) {
  std::string out;
  AddField(&out, "model", model);
  AddFailureFields(failure, RuleLine::kOwn, &out);
  return out;
}

std::string FormatChargeLine(const Task& task, const FormatOptions& opts) {
  if (task.adjusted_units() != 0) {
    std::string line = absl::StrCat(
        "charged ", task.charge_units(), kSep, "adjusted ",
        task.adjusted_units() > 0 ? "+" : "", task.adjusted_units());
    if (!task.last_ledger_ref().empty()) {
      absl::StrAppend(&line, " (ledger ", task.last_ledger_ref(), ")");
    }
    absl::StrAppend(&line, kSep, "refunded ",
                    task.refunded() ? task.refunded_units() : 0);
    if (task.refunded() && task.has_refund_time()) {
      absl::StrAppend(&line, " ",
                      FormatClock(ToAbslTime(task.refund_time()), opts));
    }
    return absl::StrCat(line, kSep, "net ", task.net_units());
  }
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

std::string FormatLateResultLine(const Task& task) {
  if (task.late_outcome() == v1::TASK_STATE_UNSPECIFIED) return "";
  std::string line = absl::StrCat(
      "provider ",
      task.late_outcome() == v1::TASK_STATE_SUCCEEDED ? "completed" : "failed",
      " ",
      FormatSpan(absl::Trunc(
          ToAbslTime(task.late_result_time()) - ToAbslTime(task.finish_time()),
          absl::Seconds(1))),
      " after ");
  if (task.state() == v1::TASK_STATE_CANCELED) {
    line.append("it was canceled");
  } else if (task.failure().origin() == v1::FAILURE_ORIGIN_GATEWAY) {
    line.append("the gateway failed it");
  } else {
    line.append("it failed here");
  }
  if (task.refunded()) {
    absl::StrAppend(&line, kSep, "refunded ", task.refunded_units());
  } else {
    absl::StrAppend(&line, kSep, "not refunded");
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
    absl::StrAppend(&line, " (",
                    FormatClock(ToAbslTime(note.create_time()), opts), ")");
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
    case TaskEvent::kChargeAdjusted:
      return ChargeAdjustedSummary(event.charge_adjusted());
    case TaskEvent::kLateResult:
      return LateResultSummary(event.late_result());
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
    const FormatOptions& opts) {
  Table table({"SEQ", "TIME", "EVENT", "ACTOR", "DETAIL"});
  for (const TaskEvent& e : events) {
    table.Add({absl::StrCat(e.seq()), FormatClock(ToAbslTime(e.time()), opts),
               EventTypeName(e.type()), e.actor().empty() ? "-" : e.actor(),
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
  AddField(&out, "late result", FormatLateResultLine(task));
  AddField(&out, "duplicates", FormatDuplicatesLine(task, opts));
  AddField(&out, "catalog", task.catalog_version());
  if (task.events_size() > 0) {
    out.append("\n");
    if (task.omitted_event_count() > 0) {
      absl::StrAppend(&out, "… ", task.omitted_event_count(),
                      " earlier events omitted; `tasktrail watch ",
                      task.task_id(), "` replays them all\n");
    }
    out.append(FormatTimeline(task.events(), opts));
  }
  return out;
}

}  // namespace tasktrail::cli
