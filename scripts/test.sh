#!/usr/bin/env bash
# Installs what is missing, builds, and runs every check that proves the
# project works: unit, store, end-to-end and crash tests (ctest), a smoke run
# of the benchmarks, a short libFuzzer run of every fuzz target, and the whole
# test suite again under ASan+UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test
bash scripts/build.sh -DTASKTRAIL_BUILD_TESTS=ON -DTASKTRAIL_WERROR=ON
ctest --test-dir build --output-on-failure --timeout 300 -j2

# The API protos follow the style rules external clients rely on.
bash scripts/lint-proto.sh

# Benchmarks must run and report; their speeds are recorded in
# docs/PERFORMANCE.md, never asserted here.
build/bench/validate_bench --benchmark_min_time=0.01 >/dev/null
build/bench/dedup_bench --benchmark_min_time=0.01 >/dev/null
build/bench/fleet_bench 2000 100 2 >/dev/null
build/bench/route_cost_bench --benchmark_min_time=0.01 >/dev/null
bash bench/run.sh --smoke
# The PostgreSQL comparison, one short round (its throwaway cluster included).
PG_ROUNDS=1 DURATION=1 PRELOAD=50 CONCURRENCY=8 bash bench/postgres.sh >/dev/null
echo "benchmark smoke run: ok"

# Fuzz targets, 10 s each with a fixed seed (longer: bash scripts/fuzz.sh 600).
bash scripts/fuzz.sh 10

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer.
bash scripts/sanitize.sh
