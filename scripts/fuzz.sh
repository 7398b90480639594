#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (ASan + UBSan + libFuzzer,
# the project's libraries instrumented the same way) into ./build-fuzz and
# runs each for SECONDS_PER_TARGET seconds (default 10) with a fixed seed.
# Every target first replays its saved regressions (fuzz/regressions/<target>/)
# and its seed corpus (fuzz/corpus/<target>/); new corpus entries go to
# build-fuzz/corpus/<target>/, crash reproducers to
# build-fuzz/artifacts/<target>/. Exits non-zero if any target crashes, leaks
# or breaks an invariant.
#
# Usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET]   (longer: scripts/fuzz.sh 600)
#        FUZZ_TARGETS="keys catalog" bash scripts/fuzz.sh 30
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds="${1:-10}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [SECONDS_PER_TARGET]" >&2
  exit 2
fi
targets=(${FUZZ_TARGETS:-validator catalog failure_rules keys scrubber snapshot})

# The project's dependencies with the test tools, which include clang and
# its sanitizer/libFuzzer runtimes.
bash scripts/install-deps.sh --test

build=build-fuzz
start=$(date +%s)
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTASKTRAIL_FUZZ=ON \
  -DTASKTRAIL_SANITIZE=ON -DTASKTRAIL_BUILD_TESTS=OFF \
  -DTASKTRAIL_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target fuzz
echo "fuzz: build took $(( $(date +%s) - start )) s"

export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"

failed=()
for target in "${targets[@]}"; do
  binary="$build/fuzz/fuzz_$target"
  corpus="$build/corpus/$target"
  artifacts="$build/artifacts/$target"
  log="$build/logs/$target.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  # The built-in catalog seeds the catalog target from its one source.
  if [[ "$target" == catalog ]]; then
    cp service/rules/default_catalog.json "$corpus/default_catalog.json"
  fi
  inputs=("$corpus")
  for dir in "fuzz/corpus/$target" "fuzz/regressions/$target"; do
    [[ -d "$dir" ]] && inputs+=("$dir")
  done
  echo "fuzz: $target for ${seconds}s (corpus ${inputs[*]})"
  # -timeout: one input taking longer than 25 s counts as a hang (a crash).
  if "$binary" -seed=1 -max_total_time="$seconds" -timeout=25 \
      -rss_limit_mb=2560 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "${inputs[@]}" >"$log" 2>&1; then
    grep -E "^(Done|stat::number_of_executed_units|#[0-9]+ +DONE)" "$log" |
      sed "s/^/fuzz: $target: /" || true
  else
    echo "fuzz: $target FAILED; log $log, reproducers in $artifacts:" >&2
    grep -E -A40 "^==[0-9]+==ERROR|runtime error|SUMMARY|Test unit written" \
      "$log" | head -80 >&2 || tail -40 "$log" >&2
    failed+=("$target")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ok (${targets[*]}, ${seconds}s each, $(( $(date +%s) - start )) s total)"
