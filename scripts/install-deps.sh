#!/usr/bin/env bash
# Installs the Debian 12 packages tasktrail builds and tests with. Uses sudo
# when not root (and sudo exists). Safe to run again: apt skips what is there.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libjemalloc-dev libabsl-dev libssl-dev libspdlog-dev
  libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
# --test: what scripts/test.sh, sanitize.sh and fuzz.sh need beyond the build
# (clang and libclang-rt for libFuzzer and LSan).
if [[ "${1:-}" == "--test" ]]; then
  packages+=(python3-grpcio clang libclang-rt-14-dev openssl)
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

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
"${run_as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${run_as_root[@]}" apt-get install -y -qq \
  --no-install-recommends "${missing[@]}" >/dev/null
