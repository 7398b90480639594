// Short names for the failure categories and origins, for the tables of the
// failure classification tests.
#ifndef TASKTRAIL_TESTS_RULES_FAILURE_VERDICTS_H_
#define TASKTRAIL_TESTS_RULES_FAILURE_VERDICTS_H_

#include "tasktrail/v1/task.pb.h"

namespace tasktrail {

inline constexpr v1::FailureCategory kAuth = v1::FAILURE_CATEGORY_AUTH;
inline constexpr v1::FailureCategory kModel =
    v1::FAILURE_CATEGORY_MODEL_NOT_FOUND;
inline constexpr v1::FailureCategory kQuota = v1::FAILURE_CATEGORY_QUOTA;
inline constexpr v1::FailureCategory kParams =
    v1::FAILURE_CATEGORY_INVALID_PARAMS;
inline constexpr v1::FailureCategory kContent =
    v1::FAILURE_CATEGORY_CONTENT_POLICY;
inline constexpr v1::FailureCategory kRate = v1::FAILURE_CATEGORY_RATE_LIMITED;
inline constexpr v1::FailureCategory kTimeout = v1::FAILURE_CATEGORY_TIMEOUT;
inline constexpr v1::FailureCategory kUnavailable =
    v1::FAILURE_CATEGORY_UPSTREAM_UNAVAILABLE;
inline constexpr v1::FailureCategory kStream =
    v1::FAILURE_CATEGORY_STREAM_INTERRUPTED;
inline constexpr v1::FailureCategory kUnknown = v1::FAILURE_CATEGORY_UNKNOWN;

inline constexpr v1::FailureOrigin kConfig = v1::FAILURE_ORIGIN_CONFIGURATION;
inline constexpr v1::FailureOrigin kProvider = v1::FAILURE_ORIGIN_PROVIDER;
inline constexpr v1::FailureOrigin kUser = v1::FAILURE_ORIGIN_USER_CONTENT;
inline constexpr v1::FailureOrigin kNobody = v1::FAILURE_ORIGIN_UNKNOWN;

}  // namespace tasktrail

#endif  // TASKTRAIL_TESTS_RULES_FAILURE_VERDICTS_H_
