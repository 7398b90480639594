#include "service/rules/digests.h"

#include <openssl/sha.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace tasktrail {

std::string Sha256(absl::string_view bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
         digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

std::string Sha256Hex(absl::string_view bytes) {
  return absl::BytesToHexString(Sha256(bytes));
}

std::string DeterministicBytes(const google::protobuf::MessageLite& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return bytes;
}

std::string ContentVersion(const google::protobuf::MessageLite& message) {
  return absl::StrCat("sha256:",
                      Sha256Hex(DeterministicBytes(message)).substr(0, 16));
}

void DocumentChecker::Fail(const std::string& path, absl::string_view problem) {
  if (error_.empty()) error_ = absl::StrCat(origin_, ": ", path, ": ", problem);
}

absl::Status DocumentChecker::status() const {
  return failed() ? absl::InvalidArgumentError(error_) : absl::OkStatus();
}

}  // namespace tasktrail
