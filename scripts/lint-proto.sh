#!/usr/bin/env bash
# Lints the API protos with buf (npm @bufbuild/buf, installed into build/tools
# by scripts/install-buf.sh) against proto/buf.yaml: STANDARD and COMMENTS
# rules, minus the three the fixed API names break.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-buf.sh
(cd proto && ../build/tools/node_modules/.bin/buf lint)
echo "buf lint: ok"
