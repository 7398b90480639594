// Parsing of the shapes callers write: aspect ratios ("16:9", "16 : 9",
// "1280:720"), exact sizes ("1280x720", "1920X1080") and resolution classes
// ("720p", "1080P"). Ratios are kept in reduced form, so "1280:720" equals
// "16:9".
//
// Thread safety: all functions are pure.
#ifndef TASKTRAIL_SERVICE_RULES_MEDIA_SHAPES_H_
#define TASKTRAIL_SERVICE_RULES_MEDIA_SHAPES_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace tasktrail {

// A width:height ratio in lowest terms. Both parts are positive.
struct Ratio {
  int64_t width = 0;
  int64_t height = 0;
  bool operator==(const Ratio& other) const {
    return width == other.width && height == other.height;
  }
};

// An exact size in pixels.
struct PixelSize {
  int64_t width = 0;
  int64_t height = 0;
};

// Returns the reduced ratio of positive `width` and `height`.
Ratio Reduce(int64_t width, int64_t height);

// Parses "W:H" (spaces around the parts allowed) with positive integer parts
// of at most 6 digits; nullopt otherwise.
absl::optional<Ratio> ParseRatio(absl::string_view text);

// Parses "WxH" (either case of x, spaces allowed) with positive parts of at
// most 6 digits; nullopt otherwise.
absl::optional<PixelSize> ParseSize(absl::string_view text);

// Parses a resolution class "720p" (either case): returns the short side.
absl::optional<int64_t> ParseResolutionClass(absl::string_view text);

// "16:9".
std::string RatioText(const Ratio& ratio);

// Lower-cases and removes all spaces: the canonical form in which resolution
// names are compared ("1920 X 1080" -> "1920x1080", "720P" -> "720p").
std::string NormalizeShapeText(absl::string_view text);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_MEDIA_SHAPES_H_
