// UTF-8 as RFC 3629 defines it: no overlong encodings, surrogates or code
// points past U+10FFFF.
//
// Thread safety: pure functions.
#ifndef TASKTRAIL_BASE_UTF8_H_
#define TASKTRAIL_BASE_UTF8_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace tasktrail {

// The length in bytes (1 to 4) of the UTF-8 sequence that starts at
// text[pos], or 0 when the bytes there do not form one. When not 0 and
// `code_point` is not null, sets it to the code point decoded.
// REQUIRES: pos < text.size().
size_t Utf8SequenceLength(absl::string_view text, size_t pos,
                          uint32_t* code_point = nullptr);

}  // namespace tasktrail

#endif  // TASKTRAIL_BASE_UTF8_H_
