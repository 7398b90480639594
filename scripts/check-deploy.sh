#!/usr/bin/env bash
# Checks the operator files in deploy/ (the `deploy` test of ctest):
#   - the Prometheus alert rules load (promtool check rules) and behave as
#     their unit tests say (promtool test rules);
#   - the example Prometheus configuration loads, with its rule file
#     (promtool check config);
#   - the systemd unit passes `systemd-analyze verify` without a warning,
#     with ExecStart pointed at the tasktraild given (the unit names
#     /usr/local/bin/tasktraild, which need not exist here).
# promtool is required (Debian package `prometheus`): without it the check
# fails. systemd-analyze is used where it exists and can run; where it
# cannot (no systemd installed, or a container where it cannot load units),
# that step is skipped with a message.
#
# Usage: scripts/check-deploy.sh [PATH_TO_TASKTRAILD]
#   (default: build/service/tasktraild)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
daemon="${1:-$root/build/service/tasktraild}"
prometheus_dir="$root/deploy/prometheus"
unit="$root/deploy/systemd/tasktraild.service"

if ! command -v promtool >/dev/null 2>&1; then
  echo "check-deploy: promtool not found; install the Debian package" \
    "prometheus (scripts/install-deps.sh does)" >&2
  exit 1
fi

echo "== promtool check rules"
promtool check rules "$prometheus_dir/alerts.yml"
echo "== promtool test rules"
promtool test rules "$prometheus_dir/alerts_test.yml"
echo "== promtool check config"
promtool check config "$prometheus_dir/prometheus.yml"

echo "== systemd-analyze verify"
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "check-deploy: skipped: systemd-analyze is not installed"
  exit 0
fi
if [[ ! -x "$daemon" ]]; then
  echo "check-deploy: $daemon is not an executable tasktraild" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Can systemd-analyze verify a unit here at all? A unit that is certainly
# right tells.
printf '[Unit]\nDescription=probe\n[Service]\nExecStart=/bin/true\n' \
  >"$work/probe.service"
if ! probe="$(systemd-analyze verify "$work/probe.service" 2>&1)" ||
  [[ -n "$probe" ]]; then
  echo "check-deploy: skipped: systemd-analyze verify cannot run here:" \
    "$probe"
  exit 0
fi

grep -q '^ExecStart=/usr/local/bin/tasktraild ' "$unit" || {
  echo "check-deploy: $unit: ExecStart does not run /usr/local/bin/tasktraild" >&2
  exit 1
}
sed "s|/usr/local/bin/tasktraild|$daemon|" "$unit" >"$work/tasktraild.service"
# verify exits 0 on unknown keys and bad values (it warns and ignores
# them), so any output is a failure.
if ! output="$(systemd-analyze verify "$work/tasktraild.service" 2>&1)" ||
  [[ -n "$output" ]]; then
  echo "check-deploy: systemd-analyze verify $unit:" >&2
  echo "$output" >&2
  exit 1
fi
echo "$unit: ok"
