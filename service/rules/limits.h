// Limits on request fields: sizes (bytes, or entries for lists) and the
// spans a time field may take. Requests over a limit are INVALID_ARGUMENT
// naming the field.
#ifndef TASKTRAIL_SERVICE_RULES_LIMITS_H_
#define TASKTRAIL_SERVICE_RULES_LIMITS_H_

#include <cstddef>

#include "absl/time/time.h"

namespace tasktrail {

inline constexpr size_t kMaxIdBytes = 128;
inline constexpr size_t kMaxEndpointBytes = 256;
inline constexpr size_t kMaxPromptBytes = 32 * 1024;
inline constexpr size_t kMaxTextBytes = 4096;
inline constexpr size_t kMaxUriBytes = 2048;
inline constexpr int kMaxResultUris = 64;
inline constexpr int kMaxReferenceImages = 16;
inline constexpr int kDefaultPageSize = 50;
inline constexpr int kMaxPageSize = 1000;

// The longest remaining time an upstream's ETA (polled.eta) may announce.
inline constexpr absl::Duration kMaxUpstreamEta = absl::Hours(30 * 24);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_LIMITS_H_
