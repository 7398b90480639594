// Timeline rules: turning a RecordEventRequest into a TaskEvent, applying an
// event to a task snapshot, folding repeated polls, and the digest that tells
// an event_id replay from a conflict.
//
// Thread safety: all functions are pure.
#ifndef TASKTRAIL_SERVICE_RULES_TIMELINE_H_
#define TASKTRAIL_SERVICE_RULES_TIMELINE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tasktrail/v1/tracker.pb.h"

namespace tasktrail {

// Builds the event (type and detail) carried by `request`, checking the
// detail's fields. Errors: INVALID_ARGUMENT (with a field violation) when no
// event is set, a field is out of range or too long, or an identifier
// (upstream_task_id, result and download URIs, the downloading client)
// holds a control character (CheckIdentifier); a Duration or
// Timestamp outside protobuf's range is out of range, and so is a
// polled.eta that is negative or longer than kMaxUpstreamEta.
absl::StatusOr<v1::TaskEvent> EventFromRequest(
    const v1::RecordEventRequest& request);

// What a late upstream result says the provider did: TASK_STATE_SUCCEEDED
// when it carries result URIs, TASK_STATE_FAILED when it carries failure
// evidence (an HTTP status of 400 or more, an error code or a message).
// INVALID_ARGUMENT naming late_result when it carries both (ambiguous) or
// neither.
absl::StatusOr<v1::TaskState> LateOutcome(const v1::LateResultDetail& late);

// The units a task is charged after its adjustments: charge_units +
// adjusted_units. A refund of the "whole charge" refunds this.
int64_t ChargedUnits(const v1::Task& task);

// What the user paid in the end: ChargedUnits - refunded_units (when
// refunded).
int64_t NetUnits(const v1::Task& task);

// The checks of a failure's evidence, as a FailedDetail carries it: the HTTP
// status 0 (none) or 100-599 (FIELD_OUT_OF_RANGE), the error code at most
// kMaxIdBytes and the message at most kMaxTextBytes (FIELD_TOO_LONG). Errors:
// INVALID_ARGUMENT naming `prefix` + the field ("failed.http_status" with
// prefix "failed.").
absl::Status CheckFailureEvidence(absl::string_view prefix,
                                  const v1::FailedDetail& failure);

// The checks of an event's own times against the time it happened
// (occur_time, or when it was recorded): a completion's expire_time must be
// after it. Errors: INVALID_ARGUMENT naming the field. The ranges of the
// request's times are EventFromRequest's.
absl::Status CheckEventTimes(const v1::TaskEvent& event, absl::Time event_time);

// Scrubs secrets (API keys, bearer tokens, signed-URL parameters) from the
// free text and URIs of an event's detail before it is stored: upstream
// status and messages, reasons, clients, result and download URIs.
void ScrubEventText(v1::TaskEvent* event);

// Updates the snapshot fields that `event` carries (upstream id and status,
// progress, polls, results, downloads, failure, refund, notes, duplicates,
// the queue and finish times, charge adjustments and net_units, late
// results). Does not touch `state`, `last_event_seq` or
// `update_time`. REQUIRES: event.time() is set.
void ApplyToSnapshot(const v1::TaskEvent& event, v1::Task* task);

// True when `poll` repeats `last` (both polls with the same upstream status,
// progress, queue position, HTTP status and ETA) and can be folded into it.
bool FoldsInto(const v1::TaskEvent& last, const v1::TaskEvent& poll);

// Folds `poll` into `last`: one more repeat, `last_time` moves to the poll's
// time. REQUIRES: FoldsInto(*last, poll).
void Fold(const v1::TaskEvent& poll, v1::TaskEvent* last);

// A digest of the request body (the event and occur_time; not task_id or
// event_id), stable across processes.
std::string RequestDigest(const v1::RecordEventRequest& request);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_TIMELINE_H_
