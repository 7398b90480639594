#!/usr/bin/env bash
# Builds the whole project and test suite with AddressSanitizer +
# UndefinedBehaviorSanitizer (g++, RelWithDebInfo) into ./build-asan and runs
# every test. The e2e tests spawn tasktraild and tasktrail from the same build,
# so those are sanitized too.
#
# How a report surfaces: every sanitized process (test binaries, the daemon,
# the CLI) writes its report to build-asan/sanitizer-logs/{asan,ubsan}.<pid>
# (log_path), because the e2e tests keep the daemon's stderr in a temp dir
# that is deleted with the test. The faulting process also exits non-zero
# (ASan/UBSan: 1, LeakSanitizer: 23), which fails the test that checks it.
# After ctest this script prints every report and exits 1 if there is any,
# even when the process that reported it was not checked (a daemon that is
# killed later, a CLI whose exit code a test ignores).
#
# Usage: bash scripts/sanitize.sh [extra ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/install-deps.sh --test

build=build-asan
logs="$root/$build/sanitizer-logs"
rm -rf "$logs"
mkdir -p "$logs"

# halt_on_error: the first report ends the process. detect_leaks: LSan at
# exit. LSAN suppressions: only one-time global allocations in Debian's
# gRPC/protobuf/abseil, each justified in tests/lsan.supp.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0:strict_init_order=1:check_initialization_order=1:detect_stack_use_after_return=1:log_path=$logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"

start=$(date +%s)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTASKTRAIL_SANITIZE=ON -DTASKTRAIL_BUILD_TESTS=ON \
  -DTASKTRAIL_BUILD_BENCH=OFF -DTASKTRAIL_FUZZ=OFF >/dev/null
cmake --build "$build"
built=$(date +%s)
echo "sanitize: build took $((built - start)) s"

status=0
ctest --test-dir "$build" -j2 --output-on-failure --timeout 600 "$@" ||
  status=$?
echo "sanitize: tests took $(( $(date +%s) - built )) s (ctest exit $status)"

shopt -s nullglob
reports=("$logs"/*)
if [[ ${#reports[@]} -gt 0 ]]; then
  for report in "${reports[@]}"; do
    echo "===== sanitizer report: $report"
    cat "$report"
  done
  echo "sanitize: ${#reports[@]} sanitizer report(s) above" >&2
  status=1
fi
if [[ $status -ne 0 ]]; then
  echo "sanitize: FAILED" >&2
  exit "$status"
fi
echo "sanitize: ok (no sanitizer reports)"
