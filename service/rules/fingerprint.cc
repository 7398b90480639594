#include "service/rules/fingerprint.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "service/rules/digests.h"
#include "service/rules/media_shapes.h"

namespace tasktrail {
namespace {

// The part names, in their on-disk order. Never reorder; append only.
constexpr absl::string_view kFields[] = {
    "model",
    "endpoint",
    "params.prompt",
    "params.negative_prompt",
    "params.aspect_ratio",
    "params.resolution",
    "params.duration_seconds",
    "params.reference_images",
    "params.generate_audio",
    "params.seed",
    "params.watermark",
    "params.callback_url",
    "params.image_count",
};
constexpr size_t kFieldCount = sizeof(kFields) / sizeof(kFields[0]);
constexpr size_t kShapeBytesPerPart = 8;

std::string CanonicalRatio(absl::string_view text) {
  absl::optional<Ratio> ratio = ParseRatio(text);
  return ratio.has_value() ? RatioText(*ratio) : NormalizeShapeText(text);
}

void AppendLengthPrefixed(absl::string_view part, std::string* out) {
  absl::StrAppend(out, part.size(), ":", part);
}

}  // namespace

std::string CollapseWhitespace(absl::string_view text) {
  std::string out;
  bool pending_space = false;
  for (char c : text) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::vector<CanonicalPart> CanonicalParts(absl::string_view model,
                                          absl::string_view endpoint,
                                          const v1::TaskParams& params) {
  std::string images;
  for (const v1::ReferenceImage& image : params.reference_images()) {
    AppendLengthPrefixed(absl::StripAsciiWhitespace(image.uri()), &images);
    absl::StrAppend(&images, image.size_bytes(), ";");
  }
  std::vector<std::string> texts = {
      std::string(model),
      std::string(endpoint),
      CollapseWhitespace(params.prompt()),
      CollapseWhitespace(params.negative_prompt()),
      CanonicalRatio(params.aspect_ratio()),
      NormalizeShapeText(params.resolution()),
      absl::StrCat(params.duration_seconds()),
      images,
      params.generate_audio() ? "1" : "0",
      params.has_seed() ? absl::StrCat(params.seed()) : "unset",
      params.has_watermark() ? (params.watermark() ? "1" : "0") : "unset",
      std::string(absl::StripAsciiWhitespace(params.callback_url())),
      absl::StrCat(params.image_count()),
  };
  std::vector<CanonicalPart> parts;
  parts.reserve(kFieldCount);
  for (size_t i = 0; i < kFieldCount; ++i) {
    parts.push_back(CanonicalPart{kFields[i], std::move(texts[i])});
  }
  return parts;
}

std::string ContentFingerprint(absl::string_view account_id,
                               const std::vector<CanonicalPart>& parts) {
  std::string bytes;
  AppendLengthPrefixed(account_id, &bytes);
  for (const CanonicalPart& part : parts)
    AppendLengthPrefixed(part.text, &bytes);
  return Sha256(bytes);
}

std::string RequestShape(const std::vector<CanonicalPart>& parts) {
  std::string shape;
  shape.reserve(parts.size() * kShapeBytesPerPart);
  for (const CanonicalPart& part : parts) {
    shape.append(Sha256(part.text).substr(0, kShapeBytesPerPart));
  }
  return shape;
}

std::vector<std::string> DifferingFields(absl::string_view shape_a,
                                         absl::string_view shape_b) {
  std::vector<std::string> fields;
  for (size_t i = 0; i < kFieldCount; ++i) {
    const size_t at = i * kShapeBytesPerPart;
    const bool in_a = shape_a.size() >= at + kShapeBytesPerPart;
    const bool in_b = shape_b.size() >= at + kShapeBytesPerPart;
    if (!in_a && !in_b) break;
    if (in_a != in_b || shape_a.substr(at, kShapeBytesPerPart) !=
                            shape_b.substr(at, kShapeBytesPerPart)) {
      fields.emplace_back(kFields[i]);
    }
  }
  return fields;
}

}  // namespace tasktrail
