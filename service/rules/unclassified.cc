#include "service/rules/unclassified.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "service/rules/scrubber.h"

namespace tasktrail {
namespace {

constexpr absl::string_view kUrlMask = "<url>";
constexpr absl::string_view kIdMask = "<id>";
constexpr absl::string_view kNumberMask = "<n>";
constexpr absl::string_view kCut = "…";

bool IsSchemeChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' ||
         c == '.' || c == '-';
}

bool IsAlnum(absl::string_view text, size_t i) {
  return i < text.size() &&
         absl::ascii_isalnum(static_cast<unsigned char>(text[i]));
}

// Whitespace and control characters (C0 and DEL) separate pieces as one
// space.
bool IsBlank(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  return u <= 0x20 || u == 0x7f;
}

// The length of the URL that starts at `i`, or 0: a scheme of letters,
// digits, '+', '.' and '-' (starting with a letter that no scheme character
// precedes) and "://", up to whitespace, a control character, a quote or an
// angle bracket, less trailing punctuation.
size_t UrlLength(absl::string_view text, size_t i) {
  if (!absl::ascii_isalpha(static_cast<unsigned char>(text[i])) ||
      (i > 0 && IsSchemeChar(text[i - 1]))) {
    return 0;
  }
  size_t j = i;
  while (j < text.size() && IsSchemeChar(text[j])) ++j;
  if (text.substr(j, 3) != "://") return 0;
  j += 3;
  while (j < text.size() && !IsBlank(text[j]) && text[j] != '"' &&
         text[j] != '\'' && text[j] != '<' && text[j] != '>') {
    ++j;
  }
  while (j > i && absl::string_view(".,;:)]}").find(text[j - 1]) !=
                      absl::string_view::npos) {
    --j;
  }
  return j - i;
}

// Whether a UUID (8-4-4-4-12 hex digits) that is not part of a longer word
// starts at `i`.
bool IsUuidAt(absl::string_view text, size_t i) {
  constexpr size_t kUuidLength = 36;
  if (text.size() - i < kUuidLength || (i > 0 && IsAlnum(text, i - 1)) ||
      IsAlnum(text, i + kUuidLength)) {
    return false;
  }
  for (size_t k = 0; k < kUuidLength; ++k) {
    const char c = text[i + k];
    if (k == 8 || k == 13 || k == 18 || k == 23) {
      if (c != '-') return false;
    } else if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

// A word (letters and digits) as it is counted: masked, or itself.
absl::string_view MaskWord(absl::string_view word) {
  bool digits = false;
  bool letters = false;
  bool hex = true;
  for (char c : word) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (absl::ascii_isdigit(u)) {
      digits = true;
    } else {
      letters = true;
    }
    if (!absl::ascii_isxdigit(u)) hex = false;
  }
  if (!letters) return kNumberMask;
  if (digits && (word.size() >= 8 || (hex && word.size() >= 6))) return kIdMask;
  if (!digits && word.size() >= 32) return kIdMask;
  return word;
}

// The length of the UTF-8 sequence that starts with `lead` (1 for a byte
// that does not start one).
size_t Utf8Length(unsigned char lead) {
  if (lead >= 0xf0 && lead < 0xf8) return 4;
  if (lead >= 0xe0) return 3;
  if (lead >= 0xc0) return 2;
  return 1;
}

// `text` in pieces, masked (steps 2 to 5): each piece a URL, id or number
// mask, a word, or one other character (a whole UTF-8 sequence), with a
// leading space when blanks preceded it (none at the start; trailing blanks
// are dropped).
std::vector<std::string> Pieces(absl::string_view text) {
  std::vector<std::string> pieces;
  bool blank = false;
  auto add = [&](absl::string_view piece) {
    std::string out = blank && !pieces.empty() ? " " : "";
    out.append(piece.data(), piece.size());
    pieces.push_back(std::move(out));
    blank = false;
  };
  size_t i = 0;
  while (i < text.size()) {
    if (IsBlank(text[i])) {
      blank = true;
      ++i;
    } else if (const size_t url = UrlLength(text, i); url > 0) {
      add(kUrlMask);
      i += url;
    } else if (IsUuidAt(text, i)) {
      add(kIdMask);
      i += 36;
    } else if (IsAlnum(text, i)) {
      size_t end = i;
      while (IsAlnum(text, end)) ++end;
      add(MaskWord(text.substr(i, end - i)));
      i = end;
    } else {
      const size_t length = std::min(
          Utf8Length(static_cast<unsigned char>(text[i])), text.size() - i);
      add(text.substr(i, length));
      i += length;
    }
  }
  return pieces;
}

}  // namespace

std::string NormaliseFailureMessage(absl::string_view message) {
  // Scrubbed before and after masking: a mask never hides a secret, and the
  // masked text holds none that the scrubber would find.
  const std::string masked =
      ScrubSecrets(absl::StrJoin(Pieces(ScrubSecrets(message)), ""));
  const std::vector<std::string> pieces = Pieces(masked);
  std::string out;
  size_t total = 0;
  for (const std::string& piece : pieces) total += piece.size();
  if (total <= kMaxUnclassifiedMessageBytes) {
    out = absl::StrJoin(pieces, "");
  } else {
    for (const std::string& piece : pieces) {
      if (out.size() + piece.size() + kCut.size() >
          kMaxUnclassifiedMessageBytes) {
        break;
      }
      out += piece;
    }
    out.append(kCut.data(), kCut.size());
  }
  if (out.empty()) return std::string(kNoUnclassifiedMessage);
  return out;
}

}  // namespace tasktrail
