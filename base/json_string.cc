#include "base/json_string.h"

#include <cstdint>

#include "base/utf8.h"

namespace tasktrail {
namespace {

// U+FFFD REPLACEMENT CHARACTER, for each byte that is not part of UTF-8.
constexpr absl::string_view kReplacement = "\xEF\xBF\xBD";

constexpr char kHex[] = "0123456789abcdef";

void AppendU16Escape(uint32_t unit, std::string* out) {
  const char escape[] = {'\\',
                         'u',
                         kHex[(unit >> 12) & 0xf],
                         kHex[(unit >> 8) & 0xf],
                         kHex[(unit >> 4) & 0xf],
                         kHex[unit & 0xf]};
  out->append(escape, sizeof(escape));
}

// The C1 controls, which are always escaped.
bool IsC1Control(uint32_t cp) { return cp >= 0x80 && cp <= 0x9f; }

// The code points above U+009F that protobuf 3.21's JSON printer escapes:
// Unicode format characters.
bool IsFormatCharacterProtobufEscapes(uint32_t cp) {
  return cp == 0xad || (cp >= 0x600 && cp <= 0x603) || cp == 0x6dd ||
         cp == 0x70f || (cp >= 0x17b4 && cp <= 0x17b5) ||
         (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
         (cp >= 0x2060 && cp <= 0x2064) || (cp >= 0x206a && cp <= 0x206f) ||
         cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb) ||
         (cp >= 0x1d173 && cp <= 0x1d17a) || cp == 0xe0001 ||
         (cp >= 0xe0020 && cp <= 0xe007f);
}

// Appends the escape of `cp`: \uXXXX, or a surrogate pair above U+FFFF.
void AppendCodePointEscape(uint32_t cp, std::string* out) {
  if (cp >= 0x10000) {
    const uint32_t v = cp - 0x10000;
    AppendU16Escape(0xd800 + (v >> 10), out);
    AppendU16Escape(0xdc00 + (v & 0x3ff), out);
  } else {
    AppendU16Escape(cp, out);
  }
}

void AppendAsciiEscaped(char c, const JsonEscapeOptions& options,
                        std::string* out) {
  switch (c) {
    case '"':
    case '\\':
      if (options.escape_quotes) out->push_back('\\');
      out->push_back(c);
      return;
    case '\b':
      out->append("\\b");
      return;
    case '\f':
      out->append("\\f");
      return;
    case '\n':
      out->append("\\n");
      return;
    case '\r':
      out->append("\\r");
      return;
    case '\t':
      out->append("\\t");
      return;
    case '<':
    case '>':
      if (options.like_protobuf) {
        AppendU16Escape(static_cast<uint8_t>(c), out);
      } else {
        out->push_back(c);
      }
      return;
    default:
      if (static_cast<uint8_t>(c) < 0x20 || c == 0x7f) {
        AppendU16Escape(static_cast<uint8_t>(c), out);
      } else {
        out->push_back(c);
      }
  }
}

}  // namespace

bool AppendJsonEscaped(absl::string_view text, const JsonEscapeOptions& options,
                       std::string* out) {
  size_t i = 0;
  while (i < text.size()) {
    uint32_t cp = 0;
    const size_t length = Utf8SequenceLength(text, i, &cp);
    if (length == 0) {
      if (options.invalid_utf8 == JsonEscapeOptions::InvalidUtf8::kRefuse) {
        return false;
      }
      out->append(kReplacement.data(), kReplacement.size());
      ++i;
      continue;
    }
    if (length == 1) {
      AppendAsciiEscaped(text[i], options, out);
    } else if (IsC1Control(cp) || (options.like_protobuf &&
                                   IsFormatCharacterProtobufEscapes(cp))) {
      AppendCodePointEscape(cp, out);
    } else {
      out->append(text.data() + i, length);
    }
    i += length;
  }
  return true;
}

}  // namespace tasktrail
