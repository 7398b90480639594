// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status (abseil 20220623 has
// none of its own).
#ifndef TASKTRAIL_SERVICE_RULES_STATUS_MACROS_H_
#define TASKTRAIL_SERVICE_RULES_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TT_CONCAT_INNER_(a, b) a##b
#define TT_CONCAT_(a, b) TT_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the current function when it is not OK.
#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    const ::absl::Status tt_status_ = (expr); \
    if (!tt_status_.ok()) return tt_status_;  \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status when not OK,
// else moves its value into `lhs` (a declaration or an lvalue).
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  TT_ASSIGN_OR_RETURN_IMPL_(TT_CONCAT_(tt_statusor_, __LINE__), lhs, rexpr)
#define TT_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                              \
  if (!statusor.ok()) return statusor.status();         \
  lhs = std::move(statusor).value()

#endif  // TASKTRAIL_SERVICE_RULES_STATUS_MACROS_H_
