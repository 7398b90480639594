#!/usr/bin/env bash
# Installs the Debian 12 packages tasktrail builds and tests with. Uses sudo
# when not root (and sudo exists). Safe to run again: apt skips what is there.
# Quiet when it works; when apt-get fails, its whole output is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/run-logged.sh

packages=(
  cmake ninja-build g++ pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libjemalloc-dev libabsl-dev libssl-dev libspdlog-dev
  libcli11-dev prometheus-cpp-dev libpq-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
# --test: what scripts/test.sh, sanitize.sh and fuzz.sh need beyond the build
# (clang and libclang-rt for libFuzzer and LSan; prometheus, the server and
# promtool, which the metrics tests scrape with and the deploy test checks
# the alert rules with; the PostgreSQL server the tests start throwaway
# clusters of), then buf
# (scripts/install-buf.sh), which the e2e tests run against the daemon and
# scripts/lint-proto.sh lints with.
testing=false
if [[ "${1:-}" == "--test" ]]; then
  testing=true
  packages+=(python3-grpcio clang libclang-rt-14-dev openssl prometheus
    postgresql)
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$package")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  run_as_root=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      run_as_root=(sudo)
    else
      echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "install-deps: installing ${missing[*]}"
  run_logged "apt-get update" "${run_as_root[@]}" apt-get update
  run_logged "apt-get install ${missing[*]}" "${run_as_root[@]}" \
    env DEBIAN_FRONTEND=noninteractive apt-get install -y \
    --no-install-recommends "${missing[@]}"
fi
if [[ $testing == true ]]; then
  bash scripts/install-buf.sh
fi
