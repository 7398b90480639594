// Reading the files an operator points tasktraild at (the catalog, the
// failure rules, the auth file): regular files only, of bounded size, so that
// a path such as /dev/zero, a FIFO or a huge file cannot make a start or a
// reload read forever or exhaust memory.
//
// Thread safety: the function is reentrant.
#ifndef TASKTRAIL_SERVICE_RULES_OPERATOR_FILE_H_
#define TASKTRAIL_SERVICE_RULES_OPERATOR_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tasktrail {

// The largest operator file read: a catalog or rules document is a few
// hundred KB at most.
inline constexpr size_t kMaxOperatorFileBytes = size_t{4} << 20;

// The contents of the regular file at `path`; `what` names it in errors
// ("catalog", "failure rules", "auth file"), which always name `path` too.
// Never blocks on a FIFO or device: the file is opened non-blocking and
// refused unless it is a regular file.
//   NOT_FOUND           it cannot be opened (missing, no permission)
//   FAILED_PRECONDITION it is not a regular file (directory, FIFO, device,
//                       socket), or it is larger than `max_bytes`
//   UNAVAILABLE         reading it failed
absl::StatusOr<std::string> ReadOperatorFile(
    const std::string& path, absl::string_view what,
    size_t max_bytes = kMaxOperatorFileBytes);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_OPERATOR_FILE_H_
