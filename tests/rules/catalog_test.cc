// Tests of the model catalog: the built-in catalog loads and its defaults are
// valid requests; `tasktrail models --json` output is a catalog file that
// loads back unchanged; versions identify content; broken catalog files are
// refused with the file and the offending field named; model-name suggestions;
// the holder's swap; and the parsing of ratios, sizes and resolution classes.

#include "service/rules/catalog.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "service/rules/media_shapes.h"
#include "service/rules/validator.h"
#include "tests/support/temp_dir.h"

namespace tasktrail {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::SizeIs;

std::shared_ptr<const Catalog> MustParse(const std::string& json) {
  absl::StatusOr<std::shared_ptr<const Catalog>> catalog =
      Catalog::FromJson(json, "test catalog");
  EXPECT_TRUE(catalog.ok()) << catalog.status() << "\n" << json;
  return catalog.ok() ? *catalog : nullptr;
}

// What `tasktrail models --json` prints for a catalog document.
std::string ModelsJson(const v1::ListModelsResponse& document) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  const auto status =
      google::protobuf::util::MessageToJsonString(document, &json, options);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return json;
}

struct KindCase {
  const char* name;
  v1::TaskKind kind;
};

TEST(CatalogTest, BuiltInHasTheSevenModels) {
  const std::shared_ptr<const Catalog> catalog = Catalog::BuiltIn();
  ASSERT_NE(catalog, nullptr);
  EXPECT_THAT(catalog->version(), Not(IsEmpty()));
  EXPECT_EQ(catalog->document().catalog_version(), catalog->version());
  const KindCase cases[] = {
      {"sora-2", v1::TASK_KIND_VIDEO},     {"sora-2-pro", v1::TASK_KIND_VIDEO},
      {"veo-3", v1::TASK_KIND_VIDEO},      {"kling-v2-1", v1::TASK_KIND_VIDEO},
      {"gen4_turbo", v1::TASK_KIND_VIDEO}, {"gpt-image-1", v1::TASK_KIND_IMAGE},
      {"dall-e-3", v1::TASK_KIND_IMAGE},
  };
  EXPECT_EQ(catalog->document().models_size(), std::size(cases));
  for (const KindCase& c : cases) {
    SCOPED_TRACE(c.name);
    const CompiledModel* model = catalog->Find(c.name);
    ASSERT_NE(model, nullptr);
    EXPECT_EQ(model->spec.name(), c.name);
    EXPECT_EQ(model->spec.kind(), c.kind);
  }
  EXPECT_EQ(catalog->Find("veo3"), nullptr);
  EXPECT_EQ(catalog->Find("VEO-3"), nullptr);
  EXPECT_EQ(catalog->Find(""), nullptr);
}

TEST(CatalogTest, BuiltInDefaultsAreValidRequests) {
  const std::shared_ptr<const Catalog> catalog = Catalog::BuiltIn();
  for (const v1::ModelSpec& spec : catalog->document().models()) {
    SCOPED_TRACE(spec.name());
    v1::TaskParams params;
    params.set_prompt("a red fox running through fresh snow");
    if (spec.reference_images().required()) {
      // An image-to-video model (gen4_turbo) has no default ratio either.
      ASSERT_THAT(spec.aspect_ratios(), Not(IsEmpty()));
      params.set_aspect_ratio(spec.aspect_ratios(0));
      v1::ReferenceImage* image = params.add_reference_images();
      image->set_uri("https://cdn.example.com/ref.png");
      image->set_mime_type("image/png");
      image->set_size_bytes(1000000);
      image->set_width(1280);
      image->set_height(720);
    }
    const ValidationResult result =
        ValidateTask(*catalog, spec.name(), "", GroupCheck::kAlways, params);
    for (const v1::FieldViolation& v : result.violations) {
      ADD_FAILURE() << v.field() << " " << v.reason() << ": "
                    << v.description();
    }
    EXPECT_NE(result.model, nullptr);
  }
}

TEST(CatalogTest, ModelsJsonOutputLoadsBackUnchanged) {
  const std::shared_ptr<const Catalog> built_in = Catalog::BuiltIn();
  const std::string json = ModelsJson(built_in->document());
  const std::shared_ptr<const Catalog> reloaded = MustParse(json);
  ASSERT_NE(reloaded, nullptr);
  std::string differences;
  MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&differences);
  EXPECT_TRUE(differencer.Compare(built_in->document(), reloaded->document()))
      << differences;
  EXPECT_EQ(reloaded->version(), built_in->version());
  // And once more: the printed form is stable.
  EXPECT_EQ(ModelsJson(reloaded->document()), json);
}

TEST(CatalogTest, ContentVersionSurvivesTheRoundTrip) {
  // A catalog without an explicit version prints its computed one, and the
  // printed file loads with the same version.
  const std::shared_ptr<const Catalog> original = MustParse(
      R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO",
                      "durations": [5]}]})");
  ASSERT_NE(original, nullptr);
  const std::shared_ptr<const Catalog> reloaded =
      MustParse(ModelsJson(original->document()));
  ASSERT_NE(reloaded, nullptr);
  EXPECT_EQ(reloaded->version(), original->version());
  EXPECT_TRUE(
      MessageDifferencer::Equals(original->document(), reloaded->document()));
}

TEST(CatalogTest, VersionIdentifiesTheContent) {
  const std::shared_ptr<const Catalog> compact = MustParse(
      R"({"models":[{"name":"m","kind":"TASK_KIND_VIDEO","durations":[5],)"
      R"("reference_images":{"max_count":1,"min_aspect":0.4}}]})");
  // The same content, other whitespace, field order and field spelling.
  const std::shared_ptr<const Catalog> reordered = MustParse(R"({
    "models": [
      {
        "referenceImages": { "minAspect": 0.4, "maxCount": 1 },
        "durations": [ 5 ],
        "kind": "TASK_KIND_VIDEO",
        "audio_supported": false,
        "name": "m"
      }
    ]
  })");
  const std::shared_ptr<const Catalog> changed = MustParse(
      R"({"models":[{"name":"m","kind":"TASK_KIND_VIDEO","durations":[5,10],)"
      R"("reference_images":{"max_count":1,"min_aspect":0.4}}]})");
  const std::shared_ptr<const Catalog> explicit_version = MustParse(
      R"({"catalog_version":"2026-01-01.3",)"
      R"("models":[{"name":"m","kind":"TASK_KIND_VIDEO","durations":[5],)"
      R"("reference_images":{"max_count":1,"min_aspect":0.4}}]})");
  ASSERT_NE(compact, nullptr);
  ASSERT_NE(reordered, nullptr);
  ASSERT_NE(changed, nullptr);
  ASSERT_NE(explicit_version, nullptr);

  EXPECT_THAT(compact->version(), MatchesRegex("sha256:[0-9a-f]{16}"));
  EXPECT_EQ(reordered->version(), compact->version());
  EXPECT_THAT(changed->version(), MatchesRegex("sha256:[0-9a-f]{16}"));
  EXPECT_NE(changed->version(), compact->version());
  EXPECT_EQ(explicit_version->version(), "2026-01-01.3");
  EXPECT_EQ(explicit_version->document().catalog_version(), "2026-01-01.3");
}

struct BadCatalogCase {
  const char* name;
  const char* json;
  // The path or name the message must mention, besides the origin.
  const char* mentions;
};

TEST(CatalogTest, BrokenCatalogsAreRefusedNamingTheFileAndField) {
  const BadCatalogCase cases[] = {
      {"not JSON", R"({"models": [)", "not a catalog document"},
      {"not an object", R"(["veo-3"])", "not a catalog document"},
      {"unknown field",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO",
                       "durations": [5], "colour": "red"}]})",
       "colour"},
      {"unknown kind",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_AUDIO",
                       "durations": [5]}]})",
       "TASK_KIND_AUDIO"},
      {"no kind", R"({"models": [{"name": "m", "durations": [5]}]})",
       "models[0].kind"},
      {"empty models list", R"({"models": []})", "models"},
      {"default ratio not offered",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO",
          "aspect_ratios": ["16:9"], "durations": [5],
          "defaults": {"aspect_ratio": "4:3"}}]})",
       "models[0].defaults.aspect_ratio"},
      {"default duration not offered",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO",
          "durations": [5, 10], "defaults": {"duration_seconds": 7}}]})",
       "models[0].defaults.duration_seconds"},
      {"default resolution not offered",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO",
          "resolutions": [{"name": "720p"}], "durations": [5],
          "defaults": {"resolution": "1080p"}}]})",
       "models[0].defaults.resolution"},
      {"no models at all", R"({"catalog_version": "v1"})", "models"},
      {"duplicate name",
       R"({"models": [
           {"name": "m", "kind": "TASK_KIND_VIDEO", "durations": [5]},
           {"name": "m", "kind": "TASK_KIND_VIDEO", "durations": [10]}]})",
       "models[1].name"},
      {"empty name",
       R"({"models": [{"name": "", "kind": "TASK_KIND_VIDEO",
                       "durations": [5]}]})",
       "models[0].name"},
      {"name with a trailing space",
       R"({"models": [{"name": "m ", "kind": "TASK_KIND_VIDEO",
                       "durations": [5]}]})",
       "models[0].name"},
      {"name with a leading tab",
       R"({"models": [{"name": "\tm", "kind": "TASK_KIND_VIDEO",
                       "durations": [5]}]})",
       "models[0].name"},
      {"ratio 16-9",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO",
                       "durations": [5], "aspect_ratios": ["16-9"]}]})",
       "models[0].aspect_ratios[0]"},
      {"bad ratio in the second model",
       R"({"models": [
           {"name": "a", "kind": "TASK_KIND_VIDEO", "durations": [5]},
           {"name": "b", "kind": "TASK_KIND_VIDEO", "durations": [5],
            "aspect_ratios": ["16:9", "16:0"]}]})",
       "models[1].aspect_ratios[1]"},
      {"resolution named huge",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO",
                       "durations": [5],
                       "resolutions": [{"name": "huge"}]}]})",
       "models[0].resolutions[0].name"},
      {"exact size whose name disagrees",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO",
                       "durations": [5],
                       "resolutions": [{"name": "720p"},
                         {"name": "100x100", "width": 200,
                          "height": 100}]}]})",
       "models[0].resolutions[1]"},
      {"exact size without height",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO",
                       "durations": [5],
                       "resolutions": [{"name": "100x100",
                                        "width": 100}]}]})",
       "models[0].resolutions[0]"},
      {"video model without durations",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO"}]})",
       "models[0].durations"},
      {"non-positive duration",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO",
                       "durations": [5, 0]}]})",
       "models[0].durations[1]"},
      {"duration range min above max",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO",
                       "duration_range": {"min": "10", "max": "5"}}]})",
       "models[0].duration_range"},
      {"image model with durations",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_IMAGE",
                       "image_count": {"min": "1", "max": "1"},
                       "durations": [5]}]})",
       "models[0].durations"},
      {"image model without an image count",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_IMAGE"}]})",
       "models[0].image_count"},
      {"seed range min above max",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO",
                       "durations": [5],
                       "seed_range": {"min": "10", "max": "1"}}]})",
       "models[0].seed_range"},
      {"required image with max_count 0",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO",
                       "durations": [5],
                       "reference_images": {"required": true}}]})",
       "models[0].reference_images.max_count"},
      {"image aspect bounds reversed",
       R"({"models": [{"name": "m", "kind": "TASK_KIND_VIDEO",
                       "durations": [5],
                       "reference_images": {"max_count": 1, "min_aspect": 2,
                                            "max_aspect": 0.5}}]})",
       "models[0].reference_images"},
  };
  for (const BadCatalogCase& c : cases) {
    SCOPED_TRACE(c.name);
    const absl::StatusOr<std::shared_ptr<const Catalog>> catalog =
        Catalog::FromJson(c.json, "/etc/tasktrail/catalog.json");
    ASSERT_FALSE(catalog.ok()) << c.json;
    EXPECT_EQ(catalog.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(catalog.status().message(),
                HasSubstr("/etc/tasktrail/catalog.json"));
    EXPECT_THAT(catalog.status().message(), HasSubstr(c.mentions));
  }
}

class CatalogFileTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& text) {
    return dir_.Write(name, text);
  }

  testing::TempDir dir_{"catalog-test"};
};

TEST_F(CatalogFileTest, ReadsAFileAndNamesItInErrors) {
  const std::string good =
      Write("good.json", ModelsJson(Catalog::BuiltIn()->document()));
  const auto loaded = Catalog::FromFile(good);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->version(), Catalog::BuiltIn()->version());

  const std::string bad = Write("bad.json", R"({"models": []})");
  const auto refused = Catalog::FromFile(bad);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr(bad));

  const auto missing = Catalog::FromFile(dir_.File("missing.json"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("missing.json"));
}

struct SuggestCase {
  const char* input;
  const char* first;  // "" when nothing should be suggested
};

TEST(CatalogTest, SuggestFindsTheIntendedModel) {
  const SuggestCase cases[] = {
      {"veo3", "veo-3"},
      {"VEO-3", "veo-3"},
      {"veo-4", "veo-3"},
      {"kling v2.1", "kling-v2-1"},
      {"Kling_V2_1", "kling-v2-1"},
      {"klingv21", "kling-v2-1"},
      {"gen4-turbo", "gen4_turbo"},
      {"Gen4Turbo", "gen4_turbo"},
      {"dalle3", "dall-e-3"},
      {"dall-e-2", "dall-e-3"},
      {"gpt-image-2", "gpt-image-1"},
      {"gpt_image_1", "gpt-image-1"},
      {"sora2", "sora-2"},
      {"sora-2-pr", "sora-2-pro"},
      {"sora2pro", "sora-2-pro"},
      {"V E O 3", "veo-3"},
      {"midjourney", ""},
      {"stable-diffusion-xl", ""},
      {"", ""},
  };
  const std::shared_ptr<const Catalog> catalog = Catalog::BuiltIn();
  for (const SuggestCase& c : cases) {
    SCOPED_TRACE(c.input);
    const std::vector<std::string> suggestions = catalog->Suggest(c.input);
    EXPECT_THAT(suggestions, SizeIs(::testing::Le(3)));
    if (std::string(c.first).empty()) {
      EXPECT_THAT(suggestions, IsEmpty());
    } else {
      ASSERT_THAT(suggestions, Not(IsEmpty()));
      EXPECT_EQ(suggestions.front(), c.first);
    }
    for (const std::string& name : suggestions) {
      EXPECT_NE(catalog->Find(name), nullptr) << name;
    }
  }
}

TEST(CatalogTest, SuggestReturnsAtMostThreeClosestFirst) {
  const std::shared_ptr<const Catalog> catalog = MustParse(R"({"models": [
      {"name": "m-1", "kind": "TASK_KIND_VIDEO", "durations": [5]},
      {"name": "m-2", "kind": "TASK_KIND_VIDEO", "durations": [5]},
      {"name": "m-3", "kind": "TASK_KIND_VIDEO", "durations": [5]},
      {"name": "m-4", "kind": "TASK_KIND_VIDEO", "durations": [5]},
      {"name": "m-5", "kind": "TASK_KIND_VIDEO", "durations": [5]}]})");
  ASSERT_NE(catalog, nullptr);
  // All five are one edit away.
  EXPECT_THAT(catalog->Suggest("m-0"), SizeIs(3));
  // Only case differs from m-4: it comes first.
  const std::vector<std::string> suggestions = catalog->Suggest("M-4");
  ASSERT_THAT(suggestions, SizeIs(3));
  EXPECT_EQ(suggestions.front(), "m-4");
}

TEST(CatalogTest, SuggestRanksSeparatorAndCaseSlipsAboveTypos) {
  // "veo3" is one edit from both names, but veo_3 is what the caller meant.
  const std::shared_ptr<const Catalog> catalog = MustParse(R"({"models": [
      {"name": "veo4", "kind": "TASK_KIND_VIDEO", "durations": [5]},
      {"name": "veo_3", "kind": "TASK_KIND_VIDEO", "durations": [5]}]})");
  ASSERT_NE(catalog, nullptr);
  EXPECT_THAT(catalog->Suggest("veo3"), ElementsAre("veo_3", "veo4"));
  EXPECT_THAT(catalog->Suggest("VEO-3"), ElementsAre("veo_3", "veo4"));
}

TEST(CatalogTest, HolderSwapsAndOldCatalogsStayUsable) {
  CatalogHolder holder(MustParse(
      R"({"models": [{"name": "a", "kind": "TASK_KIND_VIDEO",
                      "durations": [5]}]})"));
  // A request in flight took the catalog before the reload.
  const std::shared_ptr<const Catalog> in_use = holder.Get();
  ASSERT_NE(in_use, nullptr);
  EXPECT_NE(in_use->Find("a"), nullptr);

  const std::shared_ptr<const Catalog> reloaded = MustParse(
      R"({"models": [{"name": "b", "kind": "TASK_KIND_VIDEO",
                      "durations": [5]}]})");
  ASSERT_NE(reloaded, nullptr);
  holder.Set(reloaded);
  EXPECT_EQ(holder.Get(), reloaded);
  EXPECT_EQ(holder.Get()->Find("a"), nullptr);
  EXPECT_NE(holder.Get()->Find("b"), nullptr);

  // The holder let go of the old catalog; the request still has it, whole.
  EXPECT_EQ(in_use.use_count(), 1);
  EXPECT_NE(in_use->Find("a"), nullptr);
  EXPECT_EQ(in_use->document().models(0).name(), "a");
}

// --- media_shapes ---

struct RatioCase {
  const char* text;
  int64_t width;  // 0: rejected
  int64_t height;
};

TEST(MediaShapesTest, ParseRatio) {
  const RatioCase cases[] = {
      {"16:9", 16, 9},     {" 16 : 9 ", 16, 9}, {"1280:720", 16, 9},
      {"960:960", 1, 1},   {"9:16", 9, 16},     {"999999:1", 999999, 1},
      {"16:0", 0, 0},      {"0:9", 0, 0},       {"-16:9", 0, 0},
      {"+16:9", 0, 0},     {"16:9:1", 0, 0},    {"a:b", 0, 0},
      {"1234567:1", 0, 0}, {"16/9", 0, 0},      {"16", 0, 0},
      {"1.5:1", 0, 0},     {":", 0, 0},         {"", 0, 0},
  };
  for (const RatioCase& c : cases) {
    SCOPED_TRACE(c.text);
    const absl::optional<Ratio> ratio = ParseRatio(c.text);
    if (c.width == 0) {
      EXPECT_FALSE(ratio.has_value());
      continue;
    }
    ASSERT_TRUE(ratio.has_value());
    EXPECT_EQ(ratio->width, c.width);
    EXPECT_EQ(ratio->height, c.height);
  }
  EXPECT_EQ(*ParseRatio("1280:720"), *ParseRatio("16:9"));
  EXPECT_EQ(RatioText(*ParseRatio("1280:720")), "16:9");
  EXPECT_EQ(Reduce(1920, 1080), (Ratio{16, 9}));
}

TEST(MediaShapesTest, ParseSize) {
  const RatioCase cases[] = {
      {"1280x720", 1280, 720},
      {"1280X720", 1280, 720},
      {" 1280 x 720 ", 1280, 720},
      {"720x1280", 720, 1280},
      {"1280x", 0, 0},
      {"x720", 0, 0},
      {"1280*720", 0, 0},
      {"1280x720x1", 0, 0},
      {"0x720", 0, 0},
      {"1280x-720", 0, 0},
      {"1280\xC3\x97"
       "720",
       0, 0},  // the multiplication sign
      {"1080p", 0, 0},
      {"", 0, 0},
  };
  for (const RatioCase& c : cases) {
    SCOPED_TRACE(c.text);
    const absl::optional<PixelSize> size = ParseSize(c.text);
    if (c.width == 0) {
      EXPECT_FALSE(size.has_value());
      continue;
    }
    ASSERT_TRUE(size.has_value());
    EXPECT_EQ(size->width, c.width);
    EXPECT_EQ(size->height, c.height);
  }
}

struct ClassCase {
  const char* text;
  int64_t side;  // 0: rejected
};

TEST(MediaShapesTest, ParseResolutionClass) {
  const ClassCase cases[] = {
      {"720p", 720}, {"1080P", 1080}, {" 480p ", 480}, {"p", 0},    {"720", 0},
      {"720px", 0},  {"0p", 0},       {"-720p", 0},    {"auto", 0}, {"", 0},
  };
  for (const ClassCase& c : cases) {
    SCOPED_TRACE(c.text);
    const absl::optional<int64_t> side = ParseResolutionClass(c.text);
    if (c.side == 0) {
      EXPECT_FALSE(side.has_value());
    } else {
      EXPECT_EQ(side, c.side);
    }
  }
}

TEST(MediaShapesTest, NormalizeShapeText) {
  struct Case {
    const char* text;
    const char* normalized;
  };
  const Case cases[] = {
      {"1920 X 1080", "1920x1080"}, {"720P", "720p"},       {" Auto ", "auto"},
      {"16 : 9", "16:9"},           {"\t1080p\n", "1080p"}, {"", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(NormalizeShapeText(c.text), c.normalized);
  }
}

}  // namespace
}  // namespace tasktrail
