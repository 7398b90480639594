#include "service/rules/validator.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "service/rules/errors.h"
#include "service/rules/url_rules.h"

namespace tasktrail {
namespace {

using v1::ModelSpec;
using v1::TaskParams;

// Joins choices for a sentence: "a", "a or b", "a, b or c".
std::string Choices(const std::vector<std::string>& items) {
  if (items.empty()) return "none";
  if (items.size() == 1) return items.front();
  std::vector<std::string> head(items.begin(), items.end() - 1);
  return absl::StrCat(absl::StrJoin(head, ", "), " or ", items.back());
}

// "10 MB" for whole megabytes (of 1024 x 1024 bytes, as vendors write
// them), else the exact byte count too: "10485761 bytes (10.00 MB)".
std::string Megabytes(int64_t bytes) {
  constexpr int64_t kMegabyte = 1024 * 1024;
  if (bytes % kMegabyte == 0) return absl::StrCat(bytes / kMegabyte, " MB");
  return absl::StrFormat("%d bytes (%.2f MB)", bytes,
                         static_cast<double>(bytes) / kMegabyte);
}

size_t CharacterCount(absl::string_view text) {
  return static_cast<size_t>(std::count_if(
      text.begin(), text.end(),
      [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// The invisible characters that copy and paste brings along.
struct Invisible {
  absl::string_view bytes;
  absl::string_view name;
};
constexpr Invisible kInvisibles[] = {
    {"\xC2\xA0", "U+00A0 (no-break space)"},
    {"\xE2\x80\x8B", "U+200B (zero-width space)"},
    {"\xE2\x80\x8C", "U+200C (zero-width non-joiner)"},
    {"\xE2\x80\x8D", "U+200D (zero-width joiner)"},
    {"\xE2\x81\xA0", "U+2060 (word joiner)"},
    {"\xEF\xBB\xBF", "U+FEFF (byte order mark)"},
};

// Removes ASCII whitespace, control characters and kInvisibles; names what
// it removed in `found` ("a trailing space", "U+200B (zero-width space)").
std::string StripInvisible(absl::string_view text,
                           std::vector<std::string>* found) {
  std::string out;
  std::vector<size_t> spaces_at;  // out.size() when each space was removed
  auto note = [found](const std::string& what) {
    if (std::find(found->begin(), found->end(), what) == found->end()) {
      found->push_back(what);
    }
  };
  for (size_t i = 0; i < text.size();) {
    bool skipped = false;
    for (const Invisible& invisible : kInvisibles) {
      if (text.substr(i, invisible.bytes.size()) == invisible.bytes) {
        note(std::string(invisible.name));
        i += invisible.bytes.size();
        skipped = true;
        break;
      }
    }
    if (skipped) continue;
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == ' ') {
      spaces_at.push_back(out.size());
    } else if (c < 0x20 || c == 0x7F) {
      note(absl::StrFormat("a control character (0x%02X)", c));
    } else {
      out.push_back(text[i]);
    }
    ++i;
  }
  for (size_t at : spaces_at) {
    note(at == 0            ? "a leading space"
         : at == out.size() ? "a trailing space"
                            : "a space inside");
  }
  return out;
}

class Rules {
 public:
  Rules(const CompiledModel& model, const TaskParams& params,
        ValidationResult* result)
      : model_(model),
        spec_(model.spec),
        params_(params),
        result_(result),
        effective_(&result->effective) {
    *effective_ = params;
  }

  void CheckAll() {
    CheckPrompt();
    CheckShape();
    CheckDuration();
    CheckReferenceImages();
    CheckOptions();
    CheckImageCount();
  }

 private:
  void Add(absl::string_view field, absl::string_view reason,
           absl::string_view description) {
    result_->violations.push_back(Violation(field, reason, description));
  }

  const std::string& name() const { return spec_.name(); }

  void CheckPrompt() {
    if (absl::StripAsciiWhitespace(params_.prompt()).empty() &&
        !spec_.prompt_optional()) {
      Add("params.prompt", "FIELD_REQUIRED",
          absl::StrCat(name(), " needs a prompt"));
    }
    const size_t characters = CharacterCount(params_.prompt());
    if (spec_.max_prompt_chars() > 0 &&
        characters > static_cast<size_t>(spec_.max_prompt_chars())) {
      Add("params.prompt", "PROMPT_TOO_LONG",
          absl::StrCat("prompt is ", characters, " characters; ", name(),
                       " accepts at most ", spec_.max_prompt_chars()));
    }
  }

  // Aspect ratio and resolution, and their agreement. Defaults never blame
  // the caller: an exact size given without a ratio carries its own ratio,
  // and a defaulted resolution follows the requested ratio.
  void CheckShape() {
    const bool ratio_given = !params_.aspect_ratio().empty();
    const bool resolution_given = !params_.resolution().empty();
    const bool exact_size_given =
        resolution_given &&
        ParseSize(NormalizeShapeText(params_.resolution())).has_value();
    const std::string ratio_text =
        ratio_given ? params_.aspect_ratio()
                    : (exact_size_given ? "" : spec_.defaults().aspect_ratio());
    absl::optional<Ratio> ratio;
    if (!ratio_text.empty()) ratio = CheckRatio(ratio_text);
    const bool ratio_ok = ratio_text.empty() || ratio.has_value();

    const std::string resolution_text =
        resolution_given ? params_.resolution() : DefaultResolution(ratio);
    if (resolution_text.empty()) {
      if (!ratio_text.empty() || model_.ratios.empty()) return;
      Add("params.aspect_ratio", "FIELD_REQUIRED",
          absl::StrCat(
              name(), " needs an aspect ratio: ", Choices(model_.ratio_texts)));
      return;
    }
    const std::string normalized = NormalizeShapeText(resolution_text);
    effective_->set_resolution(normalized);
    if (model_.resolution_names.empty()) {
      Add("params.resolution", "RESOLUTION_UNSUPPORTED",
          absl::StrCat(name(), " takes no resolution; leave it empty"));
      return;
    }
    auto unsupported = [&] {
      Add("params.resolution", "RESOLUTION_UNSUPPORTED",
          absl::StrCat("resolution ", resolution_text, " is not offered by ",
                       name(), "; use ", Choices(model_.resolution_names)));
    };
    if (normalized == "auto") {
      if (!model_.accepts_auto_resolution) unsupported();
      return;
    }
    if (absl::optional<PixelSize> size = ParseSize(normalized)) {
      CheckExactSize(*size, normalized, ratio, resolution_given,
                     ratio_text.empty(), unsupported);
      return;
    }
    absl::optional<int64_t> side = ParseResolutionClass(normalized);
    if (!side.has_value() ||
        std::find(model_.classes.begin(), model_.classes.end(), *side) ==
            model_.classes.end()) {
      unsupported();
      return;
    }
    if (ratio_text.empty() && ratio_ok && !model_.ratios.empty()) {
      Add("params.aspect_ratio", "FIELD_REQUIRED",
          absl::StrCat(name(), " needs an aspect ratio with ", normalized, ": ",
                       Choices(model_.ratio_texts)));
    }
  }

  // An exact size: one of the model's sizes, or a size in one of its classes
  // (1920x1080 is 1080p) with an offered ratio.
  template <typename Unsupported>
  void CheckExactSize(const PixelSize& size, const std::string& normalized,
                      const absl::optional<Ratio>& ratio, bool resolution_given,
                      bool derive_ratio, const Unsupported& unsupported) {
    const bool exact = std::any_of(
        model_.sizes.begin(), model_.sizes.end(), [&](const PixelSize& s) {
          return s.width == size.width && s.height == size.height;
        });
    const Ratio size_ratio = Reduce(size.width, size.height);
    auto offered =
        std::find(model_.ratios.begin(), model_.ratios.end(), size_ratio);
    const bool in_class =
        std::find(model_.classes.begin(), model_.classes.end(),
                  std::min(size.width, size.height)) != model_.classes.end() &&
        offered != model_.ratios.end();
    if (!exact && !in_class) {
      unsupported();
      return;
    }
    if (ratio.has_value() && !(size_ratio == *ratio) && resolution_given) {
      Add("params.resolution", "RESOLUTION_RATIO_MISMATCH",
          absl::StrCat("resolution ", normalized, " is ", RatioText(size_ratio),
                       " but the aspect ratio is ", RatioText(*ratio),
                       "; make them agree"));
    }
    if (derive_ratio) {
      effective_->set_aspect_ratio(
          offered != model_.ratios.end()
              ? model_.ratio_texts[offered - model_.ratios.begin()]
              : RatioText(size_ratio));
    }
  }

  // The resolution used when the caller gives none: the model's default,
  // unless a ratio is asked for that the default does not have; then the
  // first exact size with that ratio, else the default (or first) class.
  std::string DefaultResolution(const absl::optional<Ratio>& ratio) const {
    const std::string& fallback = spec_.defaults().resolution();
    if (!ratio.has_value()) return fallback;
    absl::optional<PixelSize> size = ParseSize(fallback);
    if (size.has_value() && Reduce(size->width, size->height) == *ratio) {
      return fallback;
    }
    for (const PixelSize& candidate : model_.sizes) {
      if (Reduce(candidate.width, candidate.height) == *ratio) {
        return absl::StrCat(candidate.width, "x", candidate.height);
      }
    }
    if (ParseResolutionClass(fallback).has_value()) return fallback;
    if (!model_.classes.empty()) {
      return absl::StrCat(model_.classes.front(), "p");
    }
    return fallback;
  }

  // Checks `text` against the model's ratios; returns it (reduced) when it
  // parses, whether or not it is offered.
  absl::optional<Ratio> CheckRatio(const std::string& text) {
    absl::optional<Ratio> ratio = ParseRatio(text);
    if (!ratio.has_value()) {
      Add("params.aspect_ratio", "RATIO_UNSUPPORTED",
          absl::StrCat("aspect ratio \"", text, "\" is not a ratio like 16:9; ",
                       name(), " offers ", Choices(model_.ratio_texts)));
      return absl::nullopt;
    }
    if (model_.ratios.empty()) {
      Add("params.aspect_ratio", "RATIO_UNSUPPORTED",
          absl::StrCat(name(), " takes no aspect ratio; leave it empty"));
      return ratio;
    }
    auto found = std::find(model_.ratios.begin(), model_.ratios.end(), *ratio);
    if (found == model_.ratios.end()) {
      Add("params.aspect_ratio", "RATIO_UNSUPPORTED",
          absl::StrCat("aspect ratio ", RatioText(*ratio),
                       " is not offered by ", name(), "; use ",
                       Choices(model_.ratio_texts)));
      return ratio;
    }
    effective_->set_aspect_ratio(
        model_.ratio_texts[found - model_.ratios.begin()]);
    return ratio;
  }

  void CheckDuration() {
    const int32_t requested = params_.duration_seconds();
    if (spec_.kind() == v1::TASK_KIND_IMAGE) {
      if (requested != 0) {
        Add("params.duration_seconds", "DURATION_UNSUPPORTED",
            absl::StrCat(name(),
                         " makes images; leave duration_seconds unset"));
      }
      return;
    }
    const int32_t duration =
        requested != 0 ? requested : spec_.defaults().duration_seconds();
    effective_->set_duration_seconds(duration);
    std::vector<std::string> allowed;
    bool ok = false;
    if (spec_.durations_size() > 0) {
      for (int32_t d : spec_.durations()) {
        allowed.push_back(absl::StrCat(d));
        ok = ok || d == duration;
      }
    } else {
      ok = duration >= spec_.duration_range().min() &&
           duration <= spec_.duration_range().max();
      allowed.push_back(absl::StrCat(spec_.duration_range().min(), " to ",
                                     spec_.duration_range().max()));
    }
    if (duration == 0) {
      Add("params.duration_seconds", "FIELD_REQUIRED",
          absl::StrCat(name(), " needs a duration: ", Choices(allowed), " s"));
    } else if (!ok) {
      Add("params.duration_seconds", "DURATION_UNSUPPORTED",
          absl::StrCat("duration ", duration, " s is not offered by ", name(),
                       "; use ", Choices(allowed), " s"));
    }
  }

  void CheckReferenceImages() {
    const v1::ReferenceImageSpec& rules = spec_.reference_images();
    const int count = params_.reference_images_size();
    if (count == 0) {
      if (rules.required()) {
        Add("params.reference_images", "REFERENCE_IMAGE_REQUIRED",
            absl::StrCat(name(),
                         " generates from a reference image; add one "
                         "(an https URL)"));
      }
      return;
    }
    if (count > rules.max_count()) {
      Add("params.reference_images", "REFERENCE_IMAGE_TOO_MANY",
          rules.max_count() == 0
              ? absl::StrCat(name(), " takes no reference images")
              : absl::StrCat(count, " reference images given; ", name(),
                             " takes at most ", rules.max_count()));
    }
    for (int i = 0; i < count; ++i) CheckImage(i, params_.reference_images(i));
  }

  void CheckImage(int index, const v1::ReferenceImage& image) {
    const v1::ReferenceImageSpec& rules = spec_.reference_images();
    const std::string at = absl::StrCat("params.reference_images[", index, "]");
    if (image.uri().empty()) {
      Add(at + ".uri", "FIELD_REQUIRED", "a reference image needs its URI");
    } else if (absl::optional<std::string> problem =
                   CheckPublicHttpsUrl(image.uri(), UrlUse::kReferenceImage)) {
      Add(at + ".uri", "REFERENCE_IMAGE_URI", *problem);
    }
    if (!image.mime_type().empty() && rules.mime_types_size() > 0) {
      std::string mime = absl::AsciiStrToLower(image.mime_type());
      if (mime == "image/jpg") mime = "image/jpeg";
      if (std::find(rules.mime_types().begin(), rules.mime_types().end(),
                    mime) == rules.mime_types().end()) {
        Add(at + ".mime_type", "REFERENCE_IMAGE_FORMAT",
            absl::StrCat("reference image type ", image.mime_type(),
                         " is not accepted by ", name(), "; use ",
                         Choices({rules.mime_types().begin(),
                                  rules.mime_types().end()})));
      }
    }
    if (image.size_bytes() < 0 || image.width() < 0 || image.height() < 0) {
      Add(at, "FIELD_OUT_OF_RANGE",
          "size_bytes, width and height must not be negative (0: not known)");
      return;
    }
    if (rules.max_bytes() > 0 && image.size_bytes() > rules.max_bytes()) {
      Add(at + ".size_bytes", "REFERENCE_IMAGE_TOO_LARGE",
          absl::StrCat("reference image is ", Megabytes(image.size_bytes()),
                       "; ", name(), " allows at most ",
                       Megabytes(rules.max_bytes())));
    }
    CheckSide(at + ".width", "width", image.width());
    CheckSide(at + ".height", "height", image.height());
    if (image.width() > 0 && image.height() > 0 &&
        (rules.min_aspect() > 0 || rules.max_aspect() > 0)) {
      const double aspect = static_cast<double>(image.width()) /
                            static_cast<double>(image.height());
      constexpr double kSlack = 1e-9;
      if ((rules.min_aspect() > 0 && aspect < rules.min_aspect() - kSlack) ||
          (rules.max_aspect() > 0 && aspect > rules.max_aspect() + kSlack)) {
        Add(at, "REFERENCE_IMAGE_ASPECT",
            absl::StrFormat("reference image is %dx%d (aspect %.2f); %s "
                            "accepts width/height between %g and %g",
                            image.width(), image.height(), aspect, name(),
                            rules.min_aspect(), rules.max_aspect()));
      }
    }
  }

  void CheckSide(const std::string& field, absl::string_view side,
                 int32_t pixels) {
    const v1::ReferenceImageSpec& rules = spec_.reference_images();
    if (pixels == 0) return;
    if (rules.min_side_px() > 0 && pixels < rules.min_side_px()) {
      Add(field, "REFERENCE_IMAGE_TOO_SMALL",
          absl::StrCat("reference image ", side, " is ", pixels, " px; ",
                       name(), " needs at least ", rules.min_side_px(), " px"));
    }
    if (rules.max_side_px() > 0 && pixels > rules.max_side_px()) {
      Add(field, "REFERENCE_IMAGE_TOO_LARGE",
          absl::StrCat("reference image ", side, " is ", pixels, " px; ",
                       name(), " accepts at most ", rules.max_side_px(),
                       " px"));
    }
  }

  void CheckOptions() {
    if (!params_.callback_url().empty()) {
      if (!spec_.callback_url_allowed()) {
        Add("params.callback_url", "CALLBACK_URL_INVALID",
            absl::StrCat(name(),
                         " does not call back; leave callback_url "
                         "empty"));
      } else if (absl::optional<std::string> problem = CheckPublicHttpsUrl(
                     params_.callback_url(), UrlUse::kCallback)) {
        Add("params.callback_url", "CALLBACK_URL_INVALID", *problem);
      }
    }
    if (params_.generate_audio() && !spec_.audio_supported()) {
      Add("params.generate_audio", "AUDIO_UNSUPPORTED",
          absl::StrCat(name(),
                       " cannot generate audio; set generate_audio "
                       "to false"));
    }
    if (params_.has_seed()) {
      const v1::IntRange& range = spec_.seed_range();
      if (range.min() == 0 && range.max() == 0) {
        Add("params.seed", "SEED_OUT_OF_RANGE",
            absl::StrCat(name(), " takes no seed; leave it unset"));
      } else if (params_.seed() < range.min() || params_.seed() > range.max()) {
        Add("params.seed", "SEED_OUT_OF_RANGE",
            absl::StrCat("seed ", params_.seed(), " is outside ", range.min(),
                         " to ", range.max(), " accepted by ", name()));
      }
    }
    if (params_.has_watermark() && !params_.watermark() &&
        !spec_.watermark_optional()) {
      Add("params.watermark", "WATERMARK_REQUIRED",
          absl::StrCat(name(),
                       " always adds a watermark; it cannot be "
                       "turned off"));
    }
  }

  void CheckImageCount() {
    const int32_t requested = params_.image_count();
    if (spec_.kind() == v1::TASK_KIND_VIDEO) {
      if (requested < 0 || requested > 1) {
        Add("params.image_count", "IMAGE_COUNT_OUT_OF_RANGE",
            absl::StrCat(name(),
                         " makes one video per request; leave "
                         "image_count unset"));
      }
      return;
    }
    const int32_t count =
        requested != 0 ? requested : spec_.defaults().image_count();
    effective_->set_image_count(count);
    const v1::IntRange& range = spec_.image_count();
    if (count < range.min() || count > range.max()) {
      Add("params.image_count", "IMAGE_COUNT_OUT_OF_RANGE",
          range.min() == range.max()
              ? absl::StrCat(name(), " makes exactly ", range.min(),
                             " image per request; image_count is ", count)
              : absl::StrCat("image_count ", count, " is outside ", range.min(),
                             " to ", range.max(), " accepted by ", name()));
    }
  }

  const CompiledModel& model_;
  const ModelSpec& spec_;
  const TaskParams& params_;
  ValidationResult* result_;
  TaskParams* effective_;
};

}  // namespace

v1::FieldViolation UnknownModelViolation(const Catalog& catalog,
                                         absl::string_view model) {
  std::vector<std::string> found;
  const std::string cleaned = StripInvisible(model, &found);
  const std::string what =
      found.empty() ? "" : absl::StrCat(" (", absl::StrJoin(found, ", "), ")");
  if (cleaned != model && catalog.Find(cleaned) != nullptr) {
    return Violation(
        "model", "MODEL_UNKNOWN",
        absl::StrCat("model name contains spaces or invisible characters", what,
                     ", often from copy and paste; the catalog has \"", cleaned,
                     "\""));
  }
  std::vector<std::string> suggestions = catalog.Suggest(cleaned);
  std::string sentence =
      absl::StrCat("model \"", cleaned, "\" is not in the catalog");
  if (!suggestions.empty()) {
    absl::StrAppend(&sentence, "; did you mean ", Choices(suggestions), "?");
  }
  if (cleaned != model) {
    absl::StrAppend(&sentence,
                    " The name also contains spaces or invisible "
                    "characters",
                    what, ".");
  }
  return Violation("model", "MODEL_UNKNOWN", sentence);
}

ValidationResult ValidateTask(const Catalog& catalog, absl::string_view model,
                              absl::string_view group, GroupCheck group_check,
                              const TaskParams& params) {
  ValidationResult result;
  if (model.empty()) {
    result.violations.push_back(
        Violation("model", "FIELD_REQUIRED", "model is required"));
    return result;
  }
  result.model = catalog.Find(model);
  if (result.model == nullptr) {
    result.violations.push_back(UnknownModelViolation(catalog, model));
    return result;
  }
  const ModelSpec& spec = result.model->spec;
  const bool check_group = !group.empty() || group_check == GroupCheck::kAlways;
  if (check_group && spec.groups_size() > 0 &&
      std::find(spec.groups().begin(), spec.groups().end(), group) ==
          spec.groups().end()) {
    result.violations.push_back(Violation(
        "group", "MODEL_NOT_ENABLED_FOR_GROUP",
        absl::StrCat("model ", spec.name(), " is not enabled for ",
                     group.empty() ? std::string("requests without a group")
                                   : absl::StrCat("group ", group),
                     "; it is enabled for ",
                     Choices({spec.groups().begin(), spec.groups().end()}))));
  }
  Rules(*result.model, params, &result).CheckAll();
  return result;
}

}  // namespace tasktrail
