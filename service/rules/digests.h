// SHA-256 digests used across the domain (fingerprints, token digests,
// request digests, document versions), and the error collector shared by the
// loaders of configuration documents (catalog, failure rules).
//
// Thread safety: the functions are pure; a DocumentChecker is used by one
// thread.
#ifndef TASKTRAIL_SERVICE_RULES_DIGESTS_H_
#define TASKTRAIL_SERVICE_RULES_DIGESTS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message_lite.h"

namespace tasktrail {

// The 32-byte SHA-256 of `bytes`.
std::string Sha256(absl::string_view bytes);

// The SHA-256 of `bytes` as 64 lower-case hex digits.
std::string Sha256Hex(absl::string_view bytes);

// The deterministic serialization of `message` (map entries sorted), stable
// across processes of the same build.
std::string DeterministicBytes(const google::protobuf::MessageLite& message);

// "sha256:" and the first 16 hex digits of the SHA-256 of the message's
// deterministic serialization: the content version of a document.
std::string ContentVersion(const google::protobuf::MessageLite& message);

// Collects the first problem found in a configuration document, with the
// path of the offending field, as "ORIGIN: PATH: PROBLEM".
class DocumentChecker {
 public:
  explicit DocumentChecker(absl::string_view origin) : origin_(origin) {}

  // Records a problem unless one was recorded already.
  void Fail(const std::string& path, absl::string_view problem);
  bool failed() const { return !error_.empty(); }
  // INVALID_ARGUMENT with the first problem, or OK.
  absl::Status status() const;

 private:
  std::string origin_;
  std::string error_;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_DIGESTS_H_
