#include "service/rules/catalog.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "service/rules/digests.h"
#include "service/rules/operator_file.h"

namespace tasktrail {

extern const char kDefaultCatalogJson[];

namespace {

using v1::ModelSpec;

void CheckRange(const v1::IntRange& range, const std::string& path,
                DocumentChecker* checker) {
  if (range.min() > range.max()) {
    checker->Fail(
        path, absl::StrCat("min ", range.min(), " is above max ", range.max()));
  }
}

// Checks that the defaults are values the model accepts (a bad default would
// fail every request that leaves the field unset), and makes a single
// offered duration the default.
void CheckDefaults(const std::string& path, CompiledModel* model,
                   DocumentChecker* checker) {
  v1::ModelDefaults* defaults = model->spec.mutable_defaults();
  const std::string at = path + ".defaults";
  if (!defaults->aspect_ratio().empty()) {
    absl::optional<Ratio> ratio = ParseRatio(defaults->aspect_ratio());
    if (!ratio.has_value() ||
        std::find(model->ratios.begin(), model->ratios.end(), *ratio) ==
            model->ratios.end()) {
      checker->Fail(at + ".aspect_ratio", "is not one of the model's ratios");
    }
  }
  if (!defaults->resolution().empty() &&
      std::find(model->resolution_names.begin(), model->resolution_names.end(),
                NormalizeShapeText(defaults->resolution())) ==
          model->resolution_names.end()) {
    checker->Fail(at + ".resolution", "is not one of the model's resolutions");
  }
  const v1::ModelSpec& spec = model->spec;
  if (spec.durations_size() == 1 && defaults->duration_seconds() == 0) {
    defaults->set_duration_seconds(spec.durations(0));
  }
  const int32_t duration = defaults->duration_seconds();
  if (duration != 0 &&
      std::find(spec.durations().begin(), spec.durations().end(), duration) ==
          spec.durations().end() &&
      (duration < spec.duration_range().min() ||
       duration > spec.duration_range().max())) {
    checker->Fail(at + ".duration_seconds",
                  "is not one of the model's durations");
  }
  const int32_t count = defaults->image_count();
  if (count != 0 &&
      (count < spec.image_count().min() || count > spec.image_count().max())) {
    checker->Fail(at + ".image_count", "is outside the model's image_count");
  }
}

// Checks one spec and compiles its shapes.
CompiledModel Compile(const ModelSpec& spec, const std::string& path,
                      DocumentChecker* checker) {
  CompiledModel model;
  model.spec = spec;
  if (spec.name().empty()) checker->Fail(path + ".name", "is empty");
  if (spec.name() != absl::StripAsciiWhitespace(spec.name())) {
    checker->Fail(path + ".name", "has surrounding whitespace");
  }
  if (spec.kind() == v1::TASK_KIND_UNSPECIFIED) {
    checker->Fail(path + ".kind", "must be TASK_KIND_IMAGE or TASK_KIND_VIDEO");
  }
  for (int i = 0; i < spec.aspect_ratios_size(); ++i) {
    absl::optional<Ratio> ratio = ParseRatio(spec.aspect_ratios(i));
    if (!ratio.has_value()) {
      checker->Fail(absl::StrCat(path, ".aspect_ratios[", i, "]"),
                    absl::StrCat("\"", spec.aspect_ratios(i),
                                 "\" is not a ratio like 16:9"));
      continue;
    }
    if (std::find(model.ratios.begin(), model.ratios.end(), *ratio) ==
        model.ratios.end()) {
      model.ratios.push_back(*ratio);
      model.ratio_texts.push_back(spec.aspect_ratios(i));
    }
  }
  for (int i = 0; i < spec.resolutions_size(); ++i) {
    const v1::ResolutionSpec& resolution = spec.resolutions(i);
    const std::string at = absl::StrCat(path, ".resolutions[", i, "]");
    const std::string name = NormalizeShapeText(resolution.name());
    model.resolution_names.push_back(name);
    if (resolution.width() != 0 || resolution.height() != 0) {
      absl::optional<PixelSize> size = ParseSize(name);
      if (resolution.width() <= 0 || resolution.height() <= 0 ||
          !size.has_value() || size->width != resolution.width() ||
          size->height != resolution.height()) {
        checker->Fail(at,
                      "an exact size needs positive width and height and "
                      "the name \"WIDTHxHEIGHT\"");
        continue;
      }
      model.sizes.push_back(*size);
    } else if (ParseSize(name).has_value()) {
      checker->Fail(at, absl::StrCat("the exact size \"", resolution.name(),
                                     "\" needs width and height"));
    } else if (name == "auto") {
      model.accepts_auto_resolution = true;
    } else if (absl::optional<int64_t> side = ParseResolutionClass(name)) {
      model.classes.push_back(*side);
    } else {
      checker->Fail(at + ".name",
                    absl::StrCat("\"", resolution.name(),
                                 "\" is neither a class like 720p, an exact "
                                 "size like 1280x720, nor auto"));
    }
  }
  if (spec.aspect_ratios_size() == 0) {
    for (const PixelSize& size : model.sizes) {
      const Ratio ratio = Reduce(size.width, size.height);
      if (std::find(model.ratios.begin(), model.ratios.end(), ratio) ==
          model.ratios.end()) {
        model.ratios.push_back(ratio);
        model.ratio_texts.push_back(RatioText(ratio));
      }
    }
  }
  for (int i = 0; i < spec.durations_size(); ++i) {
    if (spec.durations(i) <= 0) {
      checker->Fail(absl::StrCat(path, ".durations[", i, "]"),
                    "must be positive");
    }
  }
  CheckRange(spec.duration_range(), path + ".duration_range", checker);
  const bool has_durations =
      spec.durations_size() > 0 || spec.duration_range().max() > 0;
  if (spec.kind() == v1::TASK_KIND_VIDEO && !has_durations) {
    checker->Fail(path + ".durations",
                  "a video model needs durations or duration_range");
  }
  if (spec.kind() == v1::TASK_KIND_IMAGE && has_durations) {
    checker->Fail(path + ".durations", "an image model takes no duration");
  }
  const v1::ReferenceImageSpec& images = spec.reference_images();
  if (images.max_count() < 0) {
    checker->Fail(path + ".reference_images.max_count", "is negative");
  }
  if (images.required() && images.max_count() < 1) {
    checker->Fail(path + ".reference_images.max_count",
                  "must be at least 1 when images are required");
  }
  if (images.min_aspect() < 0 || images.max_aspect() < 0 ||
      (images.max_aspect() > 0 && images.min_aspect() > images.max_aspect())) {
    checker->Fail(path + ".reference_images.min_aspect",
                  "aspect bounds must be non-negative with min <= max");
  }
  CheckDefaults(path, &model, checker);
  CheckRange(spec.seed_range(), path + ".seed_range", checker);
  CheckRange(spec.image_count(), path + ".image_count", checker);
  if (spec.kind() == v1::TASK_KIND_IMAGE && spec.image_count().max() < 1) {
    checker->Fail(path + ".image_count", "an image model needs max >= 1");
  }
  if (spec.max_prompt_chars() < 0) {
    checker->Fail(path + ".max_prompt_chars", "is negative");
  }
  return model;
}

// Lower case without separators: "Kling_V2.1 " -> "klingv21".
std::string Squash(absl::string_view name) {
  std::string squashed;
  for (char c : name) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c))) {
      squashed.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
    }
  }
  return squashed;
}

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Catalog>> Catalog::FromJson(
    absl::string_view json, absl::string_view origin) {
  v1::ListModelsResponse document;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &document,
      options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": not a catalog document: ", std::string(parsed.message())));
  }
  DocumentChecker checker(origin);
  if (document.models_size() == 0) checker.Fail("models", "is empty");
  std::shared_ptr<Catalog> catalog(new Catalog());
  for (int i = 0; i < document.models_size() && !checker.failed(); ++i) {
    const std::string path = absl::StrCat("models[", i, "]");
    CompiledModel model = Compile(document.models(i), path, &checker);
    const std::string name = model.spec.name();
    if (!catalog->models_.emplace(name, std::move(model)).second) {
      checker.Fail(path + ".name",
                   absl::StrCat("\"", name, "\" appears more than once"));
    }
  }
  if (checker.failed()) return checker.status();
  if (document.catalog_version().empty()) {
    document.set_catalog_version(ContentVersion(document));
  }
  catalog->document_ = std::move(document);
  return std::shared_ptr<const Catalog>(std::move(catalog));
}

absl::StatusOr<std::shared_ptr<const Catalog>> Catalog::FromFile(
    const std::string& path) {
  absl::StatusOr<std::string> text = ReadOperatorFile(path, "catalog");
  if (!text.ok()) return text.status();
  return FromJson(*text, path);
}

std::shared_ptr<const Catalog> Catalog::BuiltIn() {
  static const auto* const kBuiltIn = [] {
    absl::StatusOr<std::shared_ptr<const Catalog>> catalog =
        FromJson(kDefaultCatalogJson, "built-in catalog");
    // The built-in catalog is checked by the tests; a broken one is a build
    // defect, not a runtime condition.
    if (!catalog.ok()) abort();
    return new std::shared_ptr<const Catalog>(*std::move(catalog));
  }();
  return *kBuiltIn;
}

const CompiledModel* Catalog::Find(absl::string_view name) const {
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : &it->second;
}

std::vector<std::string> Catalog::Suggest(absl::string_view name) const {
  const std::string squashed = Squash(name);
  const std::string lower =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(name));
  std::vector<std::pair<size_t, std::string>> candidates;
  for (const auto& [model_name, unused] : models_) {
    size_t distance = 0;
    if (!squashed.empty() && Squash(model_name) == squashed) {
      distance = 0;  // differs only in case, separators or spaces
    } else {
      distance = 1 + EditDistance(lower, absl::AsciiStrToLower(model_name));
      const size_t limit = std::max<size_t>(2, model_name.size() / 3) + 1;
      if (distance > limit) continue;
    }
    candidates.emplace_back(distance, model_name);
  }
  std::sort(candidates.begin(), candidates.end());
  std::vector<std::string> names;
  for (size_t i = 0; i < candidates.size() && i < 3; ++i) {
    names.push_back(candidates[i].second);
  }
  return names;
}

}  // namespace tasktrail
