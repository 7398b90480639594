// Tests of ValidateTask against the built-in catalog (and small inline ones):
// requests the vendors accept pass with the model's defaults filled in, and
// every rule that a vendor would refuse is reported up front, all at once,
// with a field path, a reason from the API vocabulary and a sentence naming
// what is allowed.

#include "service/rules/validator.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "service/rules/catalog.h"

namespace tasktrail {
namespace {

using ::google::protobuf::TextFormat;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAreArray;

using FieldReason = std::pair<std::string, std::string>;

// A public https reference image that every model's MIME list accepts.
constexpr char kImage[] =
    R"pb(reference_images {
           uri: "https://cdn.example.com/ref.png"
           mime_type: "image/png"
         })pb";

v1::TaskParams ParseParams(const std::string& text) {
  v1::TaskParams params;
  EXPECT_TRUE(TextFormat::ParseFromString(text, &params)) << text;
  return params;
}

// One line per violation, for failure messages.
std::string Describe(const ValidationResult& result) {
  std::vector<std::string> lines;
  for (const v1::FieldViolation& v : result.violations) {
    lines.push_back(absl::StrCat(v.field(), " ", v.reason(), ": \"",
                                 v.description(), "\""));
  }
  return absl::StrCat("violations:\n  ", absl::StrJoin(lines, "\n  "));
}

std::vector<FieldReason> FieldReasons(const ValidationResult& result) {
  std::vector<FieldReason> pairs;
  for (const v1::FieldViolation& v : result.violations) {
    pairs.emplace_back(v.field(), v.reason());
  }
  return pairs;
}

ValidationResult Validate(absl::string_view model, const std::string& params,
                          absl::string_view group = "",
                          GroupCheck check = GroupCheck::kIfGiven) {
  return ValidateTask(*Catalog::BuiltIn(), model, group, check,
                      ParseParams(params));
}

std::string Repeat(absl::string_view piece, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) absl::StrAppend(&out, piece);
  return out;
}

std::string Prompt(const std::string& text) {
  return absl::StrCat("prompt: \"", text, "\" ");
}

// A reference image with the given declared facts (0: not declared).
std::string Image(absl::string_view mime, int64_t bytes, int width, int height,
                  absl::string_view uri = "https://cdn.example.com/ref.png") {
  return absl::StrCat("reference_images { uri: \"", absl::CEscape(uri),
                      "\" mime_type: \"", mime, "\" size_bytes: ", bytes,
                      " width: ", width, " height: ", height, " } ");
}

struct ValidCase {
  std::string name;
  std::string model;
  std::string params;  // TaskParams in text format
};

TEST(ValidatorTest, AcceptsWhatEachModelOffersUpToItsLimits) {
  const std::string p = Prompt("a red fox running through fresh snow");
  const std::vector<ValidCase> cases = {
      {"sora-2 prompt only", "sora-2", p},
      {"sora-2 1280x720", "sora-2", p + "resolution: \"1280x720\""},
      {"sora-2 16:9 and 720p", "sora-2",
       p + "aspect_ratio: \"16:9\" resolution: \"720p\""},
      {"sora-2 12 s with audio and image", "sora-2",
       p + "duration_seconds: 12 generate_audio: true " + kImage},
      {"sora-2-pro 1792x1024", "sora-2-pro", p + "resolution: \"1792x1024\""},
      {"sora-2-pro 1024x1792 with 4:7", "sora-2-pro",
       p + "resolution: \"1024x1792\" aspect_ratio: \"4:7\""},
      {"veo-3 prompt only", "veo-3", p},
      {"veo-3 1080p 9:16 audio max seed", "veo-3",
       p + "resolution: \"1080p\" aspect_ratio: \"9:16\" "
           "generate_audio: true seed: 4294967295"},
      {"veo-3 seed 0", "veo-3", p + "seed: 0"},
      {"veo-3 ratio with spaces, resolution upper case", "veo-3",
       p + "aspect_ratio: \"16 : 9\" resolution: \"1080P\""},
      {"veo-3 exact size of its 1080p class", "veo-3",
       p + "aspect_ratio: \"16:9\" resolution: \"1920x1080\""},
      {"veo-3 8 s", "veo-3", p + "duration_seconds: 8"},
      {"kling 5 s", "kling-v2-1", p + "duration_seconds: 5"},
      {"kling 10 s", "kling-v2-1", p + "duration_seconds: 10"},
      {"kling 1:1 1080p", "kling-v2-1",
       p + "aspect_ratio: \"1:1\" resolution: \"1080p\""},
      {"kling image exactly 10 MiB", "kling-v2-1",
       p + Image("image/png", 10485760, 1000, 1000)},
      {"kling image exactly 300x300", "kling-v2-1",
       p + Image("image/jpeg", 1000, 300, 300)},
      {"kling image aspect exactly 2.5", "kling-v2-1",
       p + Image("image/png", 1000, 750, 300)},
      {"kling image aspect exactly 0.4", "kling-v2-1",
       p + Image("image/png", 1000, 300, 750)},
      {"kling image/jpg means image/jpeg, any case", "kling-v2-1",
       p + Image("IMAGE/JPG", 1000, 300, 300)},
      {"kling prompt of exactly 2500 ASCII characters", "kling-v2-1",
       Prompt(std::string(2500, 'a'))},
      {"kling prompt of exactly 2500 two-byte characters", "kling-v2-1",
       Prompt(Repeat("\xC3\xA9", 2500))},
      {"kling prompt of exactly 2500 four-byte characters", "kling-v2-1",
       Prompt(Repeat("\xF0\x9F\x8E\xAC", 2500))},
      {"kling image_count 1 on a video model", "kling-v2-1",
       p + "image_count: 1"},
      {"kling watermark on", "kling-v2-1", p + "watermark: true"},
      {"kling callback", "kling-v2-1",
       p + "callback_url: \"https://hooks.example.com/cb?id=1\""},
      {"gen4_turbo 16:9 with image", "gen4_turbo",
       std::string("aspect_ratio: \"16:9\" ") + kImage},
      {"gen4_turbo catalog spelling 1584:672, 5 s", "gen4_turbo",
       std::string("aspect_ratio: \"1584:672\" duration_seconds: 5 ") + kImage},
      {"gen4_turbo exact size only", "gen4_turbo",
       std::string("resolution: \"960x960\" ") + kImage},
      {"gen4_turbo 7999 px side, aspect 0.5", "gen4_turbo",
       "aspect_ratio: \"1:1\" " + Image("image/webp", 5000000, 3999, 7998)},
      {"gen4_turbo aspect 2.0, seed", "gen4_turbo",
       "aspect_ratio: \"1:1\" seed: 123 " + Image("image/png", 0, 2000, 1000)},
      {"gpt-image-1 auto and 10 images", "gpt-image-1",
       p + "resolution: \"auto\" image_count: 10"},
      {"gpt-image-1 ratio derived from its sizes", "gpt-image-1",
       p + "aspect_ratio: \"3:2\""},
      {"gpt-image-1 1024x1536", "gpt-image-1", p + "resolution: \"1024x1536\""},
      {"gpt-image-1 16 reference images", "gpt-image-1",
       p + Repeat(kImage, 16)},
      {"dall-e-3 one image", "dall-e-3", p + "image_count: 1"},
      {"dall-e-3 1792x1024", "dall-e-3", p + "resolution: \"1792x1024\""},
      {"dall-e-3 ratio of an offered size", "dall-e-3",
       p + "aspect_ratio: \"7:4\""},
  };
  for (const ValidCase& c : cases) {
    SCOPED_TRACE(c.name);
    const ValidationResult result = Validate(c.model, c.params);
    EXPECT_THAT(result.violations, IsEmpty()) << Describe(result);
    ASSERT_NE(result.model, nullptr);
    EXPECT_EQ(result.model->spec.name(), c.model);
  }
}

TEST(ValidatorTest, UndeclaredImageFactsSkipTheLimitsThatNeedThem) {
  // Far out of every limit, but declared as 0 ("not known").
  const std::string p = Prompt("a fox");
  EXPECT_THAT(
      Validate("kling-v2-1", p + Image("image/png", 0, 0, 0)).violations,
      IsEmpty());
  // Only the width is known: the width is checked, the aspect is not.
  EXPECT_THAT(
      Validate("kling-v2-1", p + Image("image/png", 0, 5000, 0)).violations,
      IsEmpty());
  EXPECT_THAT(
      FieldReasons(Validate("kling-v2-1", p + Image("image/png", 0, 200, 0))),
      UnorderedElementsAreArray(std::vector<FieldReason>{
          {"params.reference_images[0].width", "REFERENCE_IMAGE_TOO_SMALL"}}));
  EXPECT_THAT(
      FieldReasons(Validate("gen4_turbo", "aspect_ratio: \"1:1\" " +
                                              Image("image/png", 0, 0, 9000))),
      UnorderedElementsAreArray(std::vector<FieldReason>{
          {"params.reference_images[0].height", "REFERENCE_IMAGE_TOO_LARGE"}}));
}

struct EffectiveCase {
  std::string name;
  std::string model;
  std::string params;
  std::string aspect_ratio;
  std::string resolution;
  int duration_seconds;
  int image_count;
};

TEST(ValidatorTest, EffectiveParamsCarryDefaultsInTheCatalogsSpelling) {
  const std::string p = Prompt("a fox");
  const std::vector<EffectiveCase> cases = {
      {"veo-3 defaults", "veo-3", p, "16:9", "720p", 8, 0},
      {"ratio with spaces is normalised", "veo-3",
       p + "aspect_ratio: \"16 : 9\" resolution: \"1080P\"", "16:9", "1080p", 8,
       0},
      {"sora-2 default size follows the ratio", "sora-2",
       p + "aspect_ratio: \"16:9\"", "16:9", "1280x720", 4, 0},
      {"sora-2 defaults", "sora-2", p, "9:16", "720x1280", 4, 0},
      {"sora-2 ratio from the size", "sora-2", p + "resolution: \"1280X720\"",
       "16:9", "1280x720", 4, 0},
      {"gen4_turbo writes 16:9 as the catalog does", "gen4_turbo",
       std::string("aspect_ratio: \"16:9\" ") + kImage, "1280:720", "1280x720",
       10, 0},
      {"kling explicit duration kept", "kling-v2-1", p + "duration_seconds: 10",
       "16:9", "720p", 10, 0},
      {"dall-e-3 defaults", "dall-e-3", p, "1:1", "1024x1024", 0, 1},
      {"dall-e-3 default size follows the ratio", "dall-e-3",
       p + "aspect_ratio: \"4:7\"", "4:7", "1024x1792", 0, 1},
      {"gpt-image-1 defaults", "gpt-image-1", p, "", "auto", 0, 1},
      {"gpt-image-1 explicit count kept", "gpt-image-1", p + "image_count: 4",
       "", "auto", 0, 4},
  };
  for (const EffectiveCase& c : cases) {
    SCOPED_TRACE(c.name);
    const ValidationResult result = Validate(c.model, c.params);
    ASSERT_THAT(result.violations, IsEmpty()) << Describe(result);
    EXPECT_EQ(result.effective.aspect_ratio(), c.aspect_ratio);
    EXPECT_EQ(result.effective.resolution(), c.resolution);
    EXPECT_EQ(result.effective.duration_seconds(), c.duration_seconds);
    EXPECT_EQ(result.effective.image_count(), c.image_count);
    // What the caller wrote and the defaults do not touch is passed through.
    EXPECT_EQ(result.effective.prompt(), ParseParams(c.params).prompt());
    EXPECT_EQ(result.effective.reference_images_size(),
              ParseParams(c.params).reference_images_size());
  }
}

TEST(ValidatorTest, RatioDerivedFromAnExactSizeIsWrittenTheCatalogsWay) {
  // gen4_turbo's catalog (and Runway's API) writes ratios as "1280:720";
  // "16:9" is the same shape but not what the upstream takes.
  const ValidationResult result =
      Validate("gen4_turbo", std::string("resolution: \"1280x720\" ") + kImage);
  ASSERT_THAT(result.violations, IsEmpty()) << Describe(result);
  EXPECT_EQ(result.effective.aspect_ratio(), "1280:720");
}

TEST(ValidatorTest, ExactSizeWithoutARatioIsNotBlamedOnTheDefaultRatio) {
  // The caller asked for a portrait (or square) size of an offered class and
  // no ratio; the model's default ratio (16:9) must not be held against it.
  struct Case {
    std::string name;
    std::string model;
    std::string params;
    std::string aspect_ratio;
  };
  const std::vector<Case> cases = {
      {"veo-3 portrait 1080p", "veo-3",
       "prompt: \"a fox\" resolution: \"1080x1920\"", "9:16"},
      {"kling square 1080p", "kling-v2-1",
       "prompt: \"a fox\" resolution: \"1080x1080\"", "1:1"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const ValidationResult result = Validate(c.model, c.params);
    EXPECT_THAT(result.violations, IsEmpty()) << Describe(result);
    EXPECT_EQ(result.effective.aspect_ratio(), c.aspect_ratio);
  }
}

TEST(ValidatorTest, UnsupportedRatioIsNotBlamedOnTheDefaultResolution) {
  // The caller set only an unsupported ratio; the one problem is the ratio.
  const ValidationResult result =
      Validate("dall-e-3", "prompt: \"a fox\" aspect_ratio: \"16:9\"");
  const std::vector<FieldReason> expected = {
      {"params.aspect_ratio", "RATIO_UNSUPPORTED"}};
  EXPECT_THAT(FieldReasons(result), UnorderedElementsAreArray(expected));
}

struct InvalidCase {
  std::string name;
  std::string model;
  std::string params;
  std::vector<FieldReason> expected;
  // Facts the descriptions (joined) must mention.
  std::vector<std::string> mentions = {};
};

TEST(ValidatorTest, EachRuleIsReportedOnItsField) {
  const std::string p = Prompt("a fox");
  const std::string img0 = "params.reference_images[0]";
  const std::vector<InvalidCase> cases = {
      {"unknown model", "no-such-model", p, {{"model", "MODEL_UNKNOWN"}}},
      {"empty model", "", p, {{"model", "FIELD_REQUIRED"}}},
      {"no prompt", "veo-3", "", {{"params.prompt", "FIELD_REQUIRED"}}},
      {"prompt of 2501 characters",
       "kling-v2-1",
       Prompt(std::string(2501, 'a')),
       {{"params.prompt", "PROMPT_TOO_LONG"}},
       {"2501", "2500"}},
      {"prompt of 2501 two-byte characters",
       "kling-v2-1",
       Prompt(Repeat("\xC3\xA9", 2501)),
       {{"params.prompt", "PROMPT_TOO_LONG"}},
       {"2501", "2500"}},
      {"4:3 on kling",
       "kling-v2-1",
       p + "aspect_ratio: \"4:3\"",
       {{"params.aspect_ratio", "RATIO_UNSUPPORTED"}},
       {"4:3", "16:9", "9:16", "1:1"}},
      {"not a ratio",
       "kling-v2-1",
       p + "aspect_ratio: \"banana\"",
       {{"params.aspect_ratio", "RATIO_UNSUPPORTED"}},
       {"banana", "16:9"}},
      {"16:9 on gpt-image-1 (sizes give 1:1, 3:2, 2:3)",
       "gpt-image-1",
       p + "aspect_ratio: \"16:9\"",
       {{"params.aspect_ratio", "RATIO_UNSUPPORTED"}},
       {"1:1", "3:2", "2:3"}},
      {"480p on veo-3",
       "veo-3",
       p + "resolution: \"480p\"",
       {{"params.resolution", "RESOLUTION_UNSUPPORTED"}},
       {"720p", "1080p"}},
      {"1920x1080 on sora-2",
       "sora-2",
       p + "resolution: \"1920x1080\"",
       {{"params.resolution", "RESOLUTION_UNSUPPORTED"}},
       {"1280x720", "720x1280"}},
      {"auto on dall-e-3",
       "dall-e-3",
       p + "resolution: \"auto\"",
       {{"params.resolution", "RESOLUTION_UNSUPPORTED"}},
       {"1024x1024"}},
      {"sora-2 landscape size with a portrait ratio",
       "sora-2",
       p + "resolution: \"1280x720\" aspect_ratio: \"9:16\"",
       {{"params.resolution", "RESOLUTION_RATIO_MISMATCH"}},
       {"16:9", "9:16"}},
      {"veo-3 1920x1080 (1080p class) with 9:16",
       "veo-3",
       p + "resolution: \"1920x1080\" aspect_ratio: \"9:16\"",
       {{"params.resolution", "RESOLUTION_RATIO_MISMATCH"}}},
      {"kling 7 s",
       "kling-v2-1",
       p + "duration_seconds: 7",
       {{"params.duration_seconds", "DURATION_UNSUPPORTED"}},
       {"7", "5", "10"}},
      {"veo-3 4 s",
       "veo-3",
       p + "duration_seconds: 4",
       {{"params.duration_seconds", "DURATION_UNSUPPORTED"}},
       {"8"}},
      {"negative duration",
       "veo-3",
       p + "duration_seconds: -8",
       {{"params.duration_seconds", "DURATION_UNSUPPORTED"}}},
      {"duration on an image model",
       "dall-e-3",
       p + "duration_seconds: 5",
       {{"params.duration_seconds", "DURATION_UNSUPPORTED"}}},
      {"gen4_turbo without an image",
       "gen4_turbo",
       "aspect_ratio: \"16:9\"",
       {{"params.reference_images", "REFERENCE_IMAGE_REQUIRED"}}},
      {"two images on kling",
       "kling-v2-1",
       p + kImage + kImage,
       {{"params.reference_images", "REFERENCE_IMAGE_TOO_MANY"}},
       {"2", "1"}},
      {"any image on dall-e-3",
       "dall-e-3",
       p + kImage,
       {{"params.reference_images", "REFERENCE_IMAGE_TOO_MANY"}}},
      {"17 images on gpt-image-1",
       "gpt-image-1",
       p + Repeat(kImage, 17),
       {{"params.reference_images", "REFERENCE_IMAGE_TOO_MANY"}},
       {"16"}},
      {"gif on kling",
       "kling-v2-1",
       p + Image("image/gif", 1000, 500, 500),
       {{img0 + ".mime_type", "REFERENCE_IMAGE_FORMAT"}},
       {"image/gif", "image/jpeg", "image/png"}},
      {"one byte over 10 MiB on kling",
       "kling-v2-1",
       p + Image("image/png", 10485761, 500, 500),
       {{img0 + ".size_bytes", "REFERENCE_IMAGE_TOO_LARGE"}},
       {"10 MB"}},
      {"12 MB on kling",
       "kling-v2-1",
       p + Image("image/png", 12 * 1024 * 1024, 500, 500),
       {{img0 + ".size_bytes", "REFERENCE_IMAGE_TOO_LARGE"}},
       {"12 MB", "10 MB"}},
      {"8000 px wide on gen4_turbo",
       "gen4_turbo",
       "aspect_ratio: \"16:9\" " + Image("image/png", 0, 8000, 5000),
       {{img0 + ".width", "REFERENCE_IMAGE_TOO_LARGE"}},
       {"8000", "7999"}},
      {"299 px wide on kling",
       "kling-v2-1",
       p + Image("image/png", 1000, 299, 300),
       {{img0 + ".width", "REFERENCE_IMAGE_TOO_SMALL"}},
       {"299", "300"}},
      {"299 px high on kling",
       "kling-v2-1",
       p + Image("image/png", 1000, 300, 299),
       {{img0 + ".height", "REFERENCE_IMAGE_TOO_SMALL"}}},
      {"kling 300x800 is narrower than 0.4",
       "kling-v2-1",
       p + Image("image/png", 1000, 300, 800),
       {{img0, "REFERENCE_IMAGE_ASPECT"}},
       {"300x800", "0.4", "2.5"}},
      {"gen4_turbo 1000x400 is wider than 2.0",
       "gen4_turbo",
       "aspect_ratio: \"16:9\" " + Image("image/png", 0, 1000, 400),
       {{img0, "REFERENCE_IMAGE_ASPECT"}},
       {"0.5", "2"}},
      {"data: URI",
       "kling-v2-1",
       p + Image("image/png", 0, 0, 0, "data:image/png;base64,iVBORw0KGgo="),
       {{img0 + ".uri", "REFERENCE_IMAGE_URI"}},
       {"upload", "https"}},
      {"http image",
       "kling-v2-1",
       p + Image("image/png", 0, 0, 0, "http://cdn.example.com/a.png"),
       {{img0 + ".uri", "REFERENCE_IMAGE_URI"}},
       {"https"}},
      {"image on a loopback address",
       "kling-v2-1",
       p + Image("image/png", 0, 0, 0, "https://127.0.0.1/x.png"),
       {{img0 + ".uri", "REFERENCE_IMAGE_URI"}},
       {"127.0.0.1"}},
      {"image without a URI",
       "kling-v2-1",
       p + Image("image/png", 0, 0, 0, ""),
       {{img0 + ".uri", "FIELD_REQUIRED"}}},
      {"negative image size",
       "kling-v2-1",
       p + Image("image/png", -1, 0, 0),
       {{img0, "FIELD_OUT_OF_RANGE"}}},
      {"problem on the second image is reported on index 1",
       "gpt-image-1",
       p + kImage + Image("image/gif", 0, 0, 0),
       {{"params.reference_images[1].mime_type", "REFERENCE_IMAGE_FORMAT"}}},
      {"http callback",
       "veo-3",
       p + "callback_url: \"http://hooks.example.com/cb\"",
       {{"params.callback_url", "CALLBACK_URL_INVALID"}},
       {"https"}},
      {"localhost callback",
       "veo-3",
       p + "callback_url: \"https://localhost/cb\"",
       {{"params.callback_url", "CALLBACK_URL_INVALID"}},
       {"localhost"}},
      {"decimal IPv4 callback",
       "veo-3",
       p + "callback_url: \"https://2130706433/\"",
       {{"params.callback_url", "CALLBACK_URL_INVALID"}},
       {"IP address"}},
      {"IPv4-mapped IPv6 callback",
       "veo-3",
       p + "callback_url: \"https://[::ffff:127.0.0.1]/\"",
       {{"params.callback_url", "CALLBACK_URL_INVALID"}},
       {"IP address"}},
      {"audio on kling",
       "kling-v2-1",
       p + "generate_audio: true",
       {{"params.generate_audio", "AUDIO_UNSUPPORTED"}}},
      {"seed -1 on veo-3",
       "veo-3",
       p + "seed: -1",
       {{"params.seed", "SEED_OUT_OF_RANGE"}},
       {"0", "4294967295"}},
      {"seed 2^32 on veo-3",
       "veo-3",
       p + "seed: 4294967296",
       {{"params.seed", "SEED_OUT_OF_RANGE"}},
       {"4294967295"}},
      {"any seed on kling, even 0",
       "kling-v2-1",
       p + "seed: 0",
       {{"params.seed", "SEED_OUT_OF_RANGE"}}},
      {"watermark off where it cannot be",
       "veo-3",
       p + "watermark: false",
       {{"params.watermark", "WATERMARK_REQUIRED"}}},
      {"two images from dall-e-3",
       "dall-e-3",
       p + "image_count: 2",
       {{"params.image_count", "IMAGE_COUNT_OUT_OF_RANGE"}},
       {"1"}},
      {"11 images from gpt-image-1",
       "gpt-image-1",
       p + "image_count: 11",
       {{"params.image_count", "IMAGE_COUNT_OUT_OF_RANGE"}},
       {"10"}},
      {"negative image count",
       "gpt-image-1",
       p + "image_count: -1",
       {{"params.image_count", "IMAGE_COUNT_OUT_OF_RANGE"}}},
      {"image_count 2 on a video model",
       "kling-v2-1",
       p + "image_count: 2",
       {{"params.image_count", "IMAGE_COUNT_OUT_OF_RANGE"}}},
      {"gen4_turbo without ratio or resolution",
       "gen4_turbo",
       kImage,
       {{"params.aspect_ratio", "FIELD_REQUIRED"}},
       {"1280:720", "960:960"}},
      {"sora-2 resolution class without a ratio",
       "sora-2",
       p + "resolution: \"720p\"",
       {{"params.aspect_ratio", "FIELD_REQUIRED"}},
       {"16:9", "9:16"}},
  };
  for (const InvalidCase& c : cases) {
    SCOPED_TRACE(c.name);
    const ValidationResult result = Validate(c.model, c.params);
    EXPECT_THAT(FieldReasons(result), UnorderedElementsAreArray(c.expected))
        << Describe(result);
    std::string descriptions;
    for (const v1::FieldViolation& v : result.violations) {
      EXPECT_THAT(v.description(), Not(IsEmpty()));
      absl::StrAppend(&descriptions, v.description(), "\n");
    }
    for (const std::string& fact : c.mentions) {
      EXPECT_THAT(descriptions, HasSubstr(fact));
    }
  }
}

TEST(ValidatorTest, EverythingWrongIsReportedAtOnce) {
  const ValidationResult result =
      Validate("kling-v2-1",
               "prompt: \"a fox\" aspect_ratio: \"4:3\" "
               "duration_seconds: 7 generate_audio: true " +
                   Image("image/gif", 0, 0, 0));
  EXPECT_THAT(
      FieldReasons(result),
      UnorderedElementsAreArray(std::vector<FieldReason>{
          {"params.aspect_ratio", "RATIO_UNSUPPORTED"},
          {"params.duration_seconds", "DURATION_UNSUPPORTED"},
          {"params.generate_audio", "AUDIO_UNSUPPORTED"},
          {"params.reference_images[0].mime_type", "REFERENCE_IMAGE_FORMAT"}}))
      << Describe(result);
}

// A catalog whose only model is enabled for the "pro" group.
std::shared_ptr<const Catalog> GroupCatalog() {
  auto catalog = Catalog::FromJson(R"json({
    "models": [{
      "name": "pro-video",
      "kind": "TASK_KIND_VIDEO",
      "groups": ["pro", "enterprise"],
      "defaults": {"duration_seconds": 5},
      "durations": [5]
    }]
  })json",
                                   "group test");
  EXPECT_TRUE(catalog.ok()) << catalog.status();
  return catalog.ok() ? *catalog : nullptr;
}

struct GroupCase {
  std::string name;
  std::string group;
  GroupCheck check;
  bool violation;
};

TEST(ValidatorTest, GroupRestrictedModelsRefuseOtherGroups) {
  const std::shared_ptr<const Catalog> catalog = GroupCatalog();
  ASSERT_NE(catalog, nullptr);
  const std::vector<GroupCase> cases = {
      {"allowed group", "pro", GroupCheck::kIfGiven, false},
      {"second allowed group", "enterprise", GroupCheck::kAlways, false},
      {"other group", "free", GroupCheck::kIfGiven, true},
      {"other group, always", "free", GroupCheck::kAlways, true},
      {"group is case-sensitive", "Pro", GroupCheck::kIfGiven, true},
      {"no group on ValidateTask", "", GroupCheck::kIfGiven, false},
      {"no group on SubmitTask", "", GroupCheck::kAlways, true},
  };
  const v1::TaskParams params = ParseParams("prompt: \"a fox\"");
  for (const GroupCase& c : cases) {
    SCOPED_TRACE(c.name);
    const ValidationResult result =
        ValidateTask(*catalog, "pro-video", c.group, c.check, params);
    if (!c.violation) {
      EXPECT_THAT(result.violations, IsEmpty()) << Describe(result);
      continue;
    }
    ASSERT_THAT(FieldReasons(result),
                UnorderedElementsAreArray(std::vector<FieldReason>{
                    {"group", "MODEL_NOT_ENABLED_FOR_GROUP"}}))
        << Describe(result);
    EXPECT_THAT(result.violations[0].description(), HasSubstr("pro"));
    EXPECT_THAT(result.violations[0].description(), HasSubstr("enterprise"));
  }
}

TEST(ValidatorTest, GroupProblemIsReportedWithParameterProblems) {
  const std::shared_ptr<const Catalog> catalog = GroupCatalog();
  ASSERT_NE(catalog, nullptr);
  const ValidationResult result =
      ValidateTask(*catalog, "pro-video", "free", GroupCheck::kIfGiven,
                   ParseParams("duration_seconds: 6"));
  EXPECT_THAT(FieldReasons(result),
              UnorderedElementsAreArray(std::vector<FieldReason>{
                  {"group", "MODEL_NOT_ENABLED_FOR_GROUP"},
                  {"params.prompt", "FIELD_REQUIRED"},
                  {"params.duration_seconds", "DURATION_UNSUPPORTED"}}))
      << Describe(result);
}

TEST(ValidatorTest, ModelWithoutDefaultsNeedsTheParameter) {
  // No default duration and a range: an unset duration must be asked for.
  auto catalog = Catalog::FromJson(R"json({
    "models": [{
      "name": "ranged",
      "kind": "TASK_KIND_VIDEO",
      "duration_range": {"min": "2", "max": "10"},
      "prompt_optional": true
    }]
  })json",
                                   "range test");
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  struct Case {
    std::string name;
    std::string params;
    std::vector<FieldReason> expected;
  };
  const std::vector<Case> cases = {
      {"unset", "", {{"params.duration_seconds", "FIELD_REQUIRED"}}},
      {"low bound", "duration_seconds: 2", {}},
      {"high bound", "duration_seconds: 10", {}},
      {"below",
       "duration_seconds: 1",
       {{"params.duration_seconds", "DURATION_UNSUPPORTED"}}},
      {"above",
       "duration_seconds: 11",
       {{"params.duration_seconds", "DURATION_UNSUPPORTED"}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const ValidationResult result = ValidateTask(
        **catalog, "ranged", "", GroupCheck::kIfGiven, ParseParams(c.params));
    EXPECT_THAT(FieldReasons(result), UnorderedElementsAreArray(c.expected))
        << Describe(result);
    for (const v1::FieldViolation& v : result.violations) {
      EXPECT_THAT(v.description(), HasSubstr("2 to 10"));
    }
  }
}

struct ModelNameCase {
  std::string name;
  std::string model;
  // Facts the MODEL_UNKNOWN description must mention.
  std::vector<std::string> mentions;
  // Facts it must not mention.
  std::vector<std::string> absent = {};
};

TEST(ValidatorTest, UnknownModelNamesGetAHelpfulSuggestion) {
  const std::vector<ModelNameCase> cases = {
      {"missing dash", "veo3", {"veo3", "did you mean veo-3"}},
      {"wrong case", "Kling-V2-1", {"did you mean kling-v2-1"}},
      {"underscores", "kling_v2_1", {"did you mean kling-v2-1"}},
      {"missing dash, sora", "sora2", {"did you mean sora-2"}},
      {"typo", "dall-e-2", {"did you mean dall-e-3"}},
      {"trailing space",
       "veo-3 ",
       {"spaces or invisible characters", "\"veo-3\""}},
      {"leading space",
       " veo-3",
       {"spaces or invisible characters", "\"veo-3\"", "a leading space"}},
      {"trailing tab",
       "veo-3\t",
       {"spaces or invisible characters", "\"veo-3\""}},
      {"zero-width space",
       "veo-3\xE2\x80\x8B",
       {"spaces or invisible characters", "\"veo-3\"",
        "U+200B (zero-width space)"}},
      {"no-break space",
       "veo-3\xC2\xA0",
       {"spaces or invisible characters", "\"veo-3\""}},
      {"byte order mark",
       "\xEF\xBB\xBFveo-3",
       {"spaces or invisible characters", "\"veo-3\""}},
      {"space and wrong case",
       "Veo-3 ",
       {"did you mean veo-3", "spaces or invisible characters"}},
      {"unrelated name",
       "midjourney",
       {"midjourney", "not in the catalog"},
       {"did you mean", "veo-3", "sora", "kling", "gen4", "dall-e", "gpt"}},
  };
  for (const ModelNameCase& c : cases) {
    SCOPED_TRACE(c.name);
    const ValidationResult result = Validate(c.model, "prompt: \"a fox\"");
    EXPECT_EQ(result.model, nullptr);
    ASSERT_THAT(FieldReasons(result),
                UnorderedElementsAreArray(
                    std::vector<FieldReason>{{"model", "MODEL_UNKNOWN"}}))
        << Describe(result);
    for (const std::string& fact : c.mentions) {
      EXPECT_THAT(result.violations[0].description(), HasSubstr(fact));
    }
    for (const std::string& fact : c.absent) {
      EXPECT_THAT(result.violations[0].description(), Not(HasSubstr(fact)));
    }
  }
}

}  // namespace
}  // namespace tasktrail
