#include "service/rules/media_shapes.h"

#include <numeric>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tasktrail {
namespace {

// Parses a positive integer of 1 to 6 digits (surrounding spaces allowed).
absl::optional<int64_t> ParsePart(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text.empty() || text.size() > 6) return absl::nullopt;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return absl::nullopt;
    }
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value <= 0) return absl::nullopt;
  return value;
}

}  // namespace

Ratio Reduce(int64_t width, int64_t height) {
  const int64_t divisor = std::gcd(width, height);
  return Ratio{width / divisor, height / divisor};
}

absl::optional<Ratio> ParseRatio(absl::string_view text) {
  const size_t colon = text.find(':');
  if (colon == absl::string_view::npos) return absl::nullopt;
  absl::optional<int64_t> width = ParsePart(text.substr(0, colon));
  absl::optional<int64_t> height = ParsePart(text.substr(colon + 1));
  if (!width.has_value() || !height.has_value()) return absl::nullopt;
  return Reduce(*width, *height);
}

absl::optional<PixelSize> ParseSize(absl::string_view text) {
  const size_t x = text.find_first_of("xX");
  if (x == absl::string_view::npos) return absl::nullopt;
  absl::optional<int64_t> width = ParsePart(text.substr(0, x));
  absl::optional<int64_t> height = ParsePart(text.substr(x + 1));
  if (!width.has_value() || !height.has_value()) return absl::nullopt;
  return PixelSize{*width, *height};
}

absl::optional<int64_t> ParseResolutionClass(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text.size() < 2 || absl::ascii_tolower(text.back()) != 'p') {
    return absl::nullopt;
  }
  return ParsePart(text.substr(0, text.size() - 1));
}

std::string RatioText(const Ratio& ratio) {
  return absl::StrCat(ratio.width, ":", ratio.height);
}

std::string NormalizeShapeText(absl::string_view text) {
  std::string normalized;
  normalized.reserve(text.size());
  for (char c : text) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) {
      normalized.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
    }
  }
  return normalized;
}

}  // namespace tasktrail
