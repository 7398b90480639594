#!/usr/bin/env bash
# Installs what is missing, builds, and runs tasktraild on 127.0.0.1:50051
# with its embedded RocksDB under ./data. Extra arguments go to tasktraild.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh -DTASKTRAIL_BUILD_TESTS=OFF -DTASKTRAIL_BUILD_BENCH=OFF
exec build/service/tasktraild --listen 127.0.0.1:50051 --db ./data "$@"
