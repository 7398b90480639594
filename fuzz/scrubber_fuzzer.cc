// Fuzzes the secret scrubber: any text is scrubbed without crashing, the
// result is stable (scrubbing again changes nothing), and text reported free
// of secrets comes back byte for byte.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "service/rules/scrubber.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string scrubbed = tasktrail::ScrubSecrets(text);
  if (tasktrail::ScrubSecrets(scrubbed) != scrubbed) abort();
  if (!tasktrail::ContainsSecret(text) && scrubbed != text) abort();
  const std::string key_id = tasktrail::SafeKeyId(text);
  if (tasktrail::SafeKeyId(key_id) != key_id) abort();
  return 0;
}
