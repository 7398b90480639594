#!/usr/bin/env bash
# Checks that every #include follows the dependency direction of the rooms:
#   base <- service/rules, base <- cli (base includes nothing of the project)
#   proto <- service/rules <- store <- service/tracker <- service/server
#   proto <- cli
# (A <- B: B may include A.) Inside store/, the seam (task_store.h, keys.h,
# records.h) is below both stores, store/rocksdb/ and store/postgres/, which
# do not include each other; the domain (service/tracker) knows the seam
# alone, so only the daemon's main picks a store. Prints each include that points the wrong way and
# exits 1 if there is one. Run by ctest as the `layering` test.
set -euo pipefail
cd "$(dirname "$0")/.."

# room:forbidden-pattern (an extended regex on the quoted include path)
rules=(
  'base:^"(proto/|tasktrail/|google/|service/|store/|cli/|grpcpp/|grpc/)|\.pb\.h"'
  'service/rules:^"(store/|service/tracker/|service/server/|cli/|grpcpp/|grpc/)|\.grpc\.pb\.h"'
  'store:^"(service/tracker/|service/server/|cli/|grpcpp/|grpc/)|\.grpc\.pb\.h"'
  'store/rocksdb:^"store/postgres/'
  'store/postgres:^"store/rocksdb/'
  'service/tracker:^"(service/server/|cli/|grpcpp/|grpc/|store/rocksdb/|store/postgres/)|\.grpc\.pb\.h"'
  'service/server:^"(cli/)'
  'cli:^"(service/|store/)'
)
bad=0
for rule in "${rules[@]}"; do
  room=${rule%%:*}
  pattern=${rule#*:}
  while IFS= read -r line; do
    file=${line%%:*}
    include=$(sed -E 's/.*#include[[:space:]]+//' <<<"${line#*:}")
    if grep -Eq "$pattern" <<<"$include"; then
      echo "layering: $file includes $include (not allowed in $room/)" >&2
      bad=1
    fi
  done < <(grep -H '^#include "' $(git ls-files "$room/*.h" "$room/*.cc" 2>/dev/null ||
           find "$room" -name '*.h' -o -name '*.cc') || true)
done
if [[ $bad -ne 0 ]]; then
  exit 1
fi
echo "layering: ok"
