#!/usr/bin/env bash
# Lints the API protos with buf (npm @bufbuild/buf) against proto/buf.yaml:
# STANDARD and COMMENTS rules, minus the three the fixed API names break.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null 2>&1; then
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq npm >/dev/null
fi
tools=build/tools
if [[ ! -x "$tools/node_modules/.bin/buf" ]]; then
  mkdir -p "$tools"
  (cd "$tools" && npm install --silent --no-audit --no-fund @bufbuild/buf >/dev/null)
fi
(cd proto && "../$tools/node_modules/.bin/buf" lint)
echo "buf lint: ok"
