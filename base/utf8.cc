#include "base/utf8.h"

namespace tasktrail {

size_t Utf8SequenceLength(absl::string_view text, size_t pos,
                          uint32_t* code_point) {
  const uint8_t lead = static_cast<uint8_t>(text[pos]);
  if (lead < 0x80) {
    if (code_point != nullptr) *code_point = lead;
    return 1;
  }
  size_t continuation = 0;
  uint32_t decoded = 0;
  uint32_t smallest = 0;  // below it, the encoding is overlong
  if ((lead & 0xE0) == 0xC0) {
    continuation = 1;
    decoded = lead & 0x1F;
    smallest = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    continuation = 2;
    decoded = lead & 0x0F;
    smallest = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    continuation = 3;
    decoded = lead & 0x07;
    smallest = 0x10000;
  } else {
    return 0;
  }
  if (text.size() - pos <= continuation) return 0;
  for (size_t k = 1; k <= continuation; ++k) {
    const uint8_t byte = static_cast<uint8_t>(text[pos + k]);
    if ((byte & 0xC0) != 0x80) return 0;
    decoded = (decoded << 6) | (byte & 0x3F);
  }
  if (decoded < smallest || decoded > 0x10FFFF ||
      (decoded >= 0xD800 && decoded <= 0xDFFF)) {
    return 0;
  }
  if (code_point != nullptr) *code_point = decoded;
  return continuation + 1;
}

}  // namespace tasktrail
