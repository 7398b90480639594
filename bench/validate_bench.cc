// Google Benchmark of parameter validation against the built-in catalog: the
// cost SubmitTask and ValidateTask pay before anything else.
//
//   build/bench/validate_bench --benchmark_min_time=1
#include "benchmark/benchmark.h"
#include "service/rules/catalog.h"
#include "service/rules/validator.h"

namespace tasktrail {
namespace {

v1::TaskParams ValidKlingParams() {
  v1::TaskParams params;
  params.set_prompt(
      "a lighthouse at dusk, waves crashing against the rocks, cinematic "
      "lighting, slow dolly in");
  params.set_aspect_ratio("16:9");
  params.set_resolution("1080p");
  params.set_duration_seconds(10);
  v1::ReferenceImage* image = params.add_reference_images();
  image->set_uri("https://cdn.example.com/uploads/ref-8812.png");
  image->set_mime_type("image/png");
  image->set_size_bytes(2 * 1024 * 1024);
  image->set_width(1920);
  image->set_height(1080);
  params.set_callback_url("https://api.example.com/hooks/video-done");
  return params;
}

void BM_ValidateValidKling(benchmark::State& state) {
  const auto catalog = Catalog::BuiltIn();
  const v1::TaskParams params = ValidKlingParams();
  for (auto _ : state) {
    ValidationResult result = ValidateTask(*catalog, "kling-v2-1", "default",
                                           GroupCheck::kAlways, params);
    benchmark::DoNotOptimize(result);
  }
}
BENCHMARK(BM_ValidateValidKling);

void BM_ValidateFourViolations(benchmark::State& state) {
  const auto catalog = Catalog::BuiltIn();
  v1::TaskParams params = ValidKlingParams();
  params.set_aspect_ratio("4:3");
  params.set_duration_seconds(7);
  params.mutable_reference_images(0)->set_size_bytes(12 * 1024 * 1024);
  params.set_callback_url("https://2130706433/cb");
  for (auto _ : state) {
    ValidationResult result = ValidateTask(*catalog, "kling-v2-1", "default",
                                           GroupCheck::kAlways, params);
    benchmark::DoNotOptimize(result);
  }
}
BENCHMARK(BM_ValidateFourViolations);

void BM_ValidateUnknownModelWithSuggestion(benchmark::State& state) {
  const auto catalog = Catalog::BuiltIn();
  const v1::TaskParams params = ValidKlingParams();
  for (auto _ : state) {
    ValidationResult result = ValidateTask(*catalog, "Kling_V2.1", "default",
                                           GroupCheck::kAlways, params);
    benchmark::DoNotOptimize(result);
  }
}
BENCHMARK(BM_ValidateUnknownModelWithSuggestion);

}  // namespace
}  // namespace tasktrail

BENCHMARK_MAIN();
