#!/usr/bin/env bash
# Installs buf (npm @bufbuild/buf) into build/tools, the one place from which
# scripts/lint-proto.sh lints the protos and the e2e tests run
# build/tools/node_modules/.bin/buf as a client nobody here wrote. Installs
# Debian's npm first when it is missing (through sudo when not root). Quiet
# when it succeeds; when a step fails it prints that step's whole output and
# exits non-zero. Safe to run again: does nothing when buf is there.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/run-logged.sh

tools=build/tools
if [[ -x "$tools/node_modules/.bin/buf" ]]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  run_as_root=()
  [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 && run_as_root=(sudo)
  run_logged "apt-get update" "${run_as_root[@]}" apt-get update
  run_logged "apt-get install npm" "${run_as_root[@]}" \
    env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends npm
fi
mkdir -p "$tools"
(cd "$tools" && run_logged "npm install @bufbuild/buf" \
  npm install --no-audit --no-fund @bufbuild/buf)
if [[ ! -x "$tools/node_modules/.bin/buf" ]]; then
  echo "install-buf: npm install succeeded but $tools/node_modules/.bin/buf" \
    "is missing" >&2
  exit 1
fi
