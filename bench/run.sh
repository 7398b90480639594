#!/usr/bin/env bash
# Runs the tasktrail benchmark table against a tasktraild this script starts
# itself (127.0.0.1, a kernel-chosen port read from --port-file, a store in a
# temp dir), and stops it at the end.
#
#   bench/run.sh            the table: concurrency 64, DURATION (5) s per
#                           workload, 10,000 tasks preloaded, plus health and
#                           get at concurrency 1 and the store-level submit
#                           ceiling; prints each ratio against its target
#                           (PASS/BELOW, informational only). The workloads
#                           are measured in ROTATIONS (5) turns of
#                           DURATION/ROTATIONS s each, so that the two sides
#                           of a ratio share the same seconds. ROUNDS=N runs
#                           the whole table N times, each on fresh stores
#                           and a fresh server, and prints each ratio's
#                           median and range
#   bench/run.sh --smoke    every workload for ~1 s at concurrency 4, and an
#                           export stream parsed and unparsed for 0.5 s each;
#                           exits non-zero if any workload or stream reports
#                           an error or receives nothing, or a run's latency
#                           histogram does not give back its percentiles
#                           (for the test script)
#   bench/run.sh --large    10,000 vs LARGE_TASKS (1,000,000) preloaded tasks,
#                           each preloaded, restarted and left to finish its
#                           compactions; then get p99 and submit calls/s are
#                           measured after a warm-up, DURATION (20) s each, in
#                           LARGE_ROUNDS (3) rounds on fresh replicas of the
#                           two stores, alternating, and each ratio's median
#                           and range printed; server RSS max, restart and
#                           settle time
#   bench/run.sh --watchers writes to other tasks (event: RecordEvent polls
#                           on PRELOAD (1,000) preloaded tasks, concurrency
#                           WATCH_CONCURRENCY (16), DURATION (10) s a run)
#                           without and with WATCHERS (2,000) WatchTask
#                           streams on one hot task that receives WATCH_RATE
#                           (5) events a second, on one server, in
#                           WATCH_ROUNDS (3) rounds of A B B A (A without
#                           watchers, B with them), so that the machine's
#                           drift falls on both sides; prints every run, each
#                           side's median and range, and the with/without
#                           ratios per round (target: within 20 %)
#   bench/run.sh --export   ExportTasks on a store of EXPORT_TASKS
#                           (1,000,000) preloaded tasks (submit, queued, 3
#                           polls each), restarted and settled: one export
#                           stream alone for DURATION (10) s (bench
#                           --exporters 1: the stream's tasks/s, timelines
#                           included); `tasktrail export` of the whole store
#                           into a file, timed, without and with --auth-file
#                           (with it, every exported task is audited); get
#                           and submit at concurrency CONCURRENCY (64),
#                           DURATION s each, without and with one export
#                           stream running, in EXPORT_ROUNDS (2) rounds of
#                           A B B A on the same server; prints every run,
#                           the with / without p99 ratios per round and the
#                           p99 of every call of all rounds pooled, with
#                           over without (target: within 20 %). With GET_RATE and
#                           SUBMIT_RATE (calls/s), get and submit run open
#                           loop at those rates (tasktrail-bench --rate) and
#                           the B runs' export stream comes from a second
#                           tasktrail-bench process, at SCHED_IDLE, taking
#                           the tasks unparsed (a loader on another machine;
#                           EXPORTER_CPU=shared: at normal priority;
#                           EXPORTER_READS=parsed: parsing each task),
#                           and each round prints the CPU the server's
#                           export thread used per task the stream took.
#                           The CLI export also prints tasktraild's CPU
#                           per task. EXPORT_CONTROL=1: the B runs have no export
#                           stream either (an A/A run: the ratios' noise)
#   bench/run.sh --purge    retention purging beside foreground calls: one
#                           store of PRELOAD (10,000) unfinished tasks (the
#                           get set, never due) and PURGE_TASKS (100,000)
#                           finished ones, copied afresh for every run; get
#                           and submit at CONCURRENCY (64), DURATION (10) s
#                           each, in PURGE_ROUNDS (2) rounds of A B B A (A:
#                           the default retention, nothing due; B:
#                           --task-retention 1s, so that every finished task
#                           is due and the sweeper purges them during the
#                           run); prints every run with the tasks purged
#                           during it, the with / without p99 ratios per
#                           round and pooled over the rounds (target: within
#                           20 %), and the time to
#                           purge all of them on an idle server
#   bench/run.sh --retention-steady
#                           the store's size under a steady load with a short
#                           retention: `mixed` tasks (submit to completed) at
#                           concurrency 2 for STEADY_SECONDS (600) against
#                           --task-retention 60s --retention-sweep-interval
#                           5s; every 30 s prints the tasks purged so far,
#                           RocksDB's live data estimate and the store
#                           directory's size
#   bench/run.sh --metrics  the cost of --metrics-listen: get and submit at
#                           concurrency 64, DURATION (10) s each, on one store
#                           of PRELOAD (10,000) preloaded tasks (all
#                           unfinished), in METRICS_ROUNDS (3) rounds of
#                           A B B A (A: tasktraild without metrics, B: with
#                           --metrics-listen and /metrics scraped every
#                           second), the daemon restarted for every run on
#                           the same store; prints every run, each side's
#                           median and range, the with/without ratios per
#                           round of calls/s and of the server's CPU time
#                           per call (target: within 3 %) and the time of
#                           one scrape
#
# Environment: BUILD_DIR (default ./build; built when the binaries are
# missing), DURATION, CONCURRENCY, PRELOAD, ROUNDS, ROTATIONS, WATCHERS,
# WATCH_RATE, WATCH_ROUNDS, WATCH_CONCURRENCY, METRICS_ROUNDS, EXPORT_TASKS,
# EXPORT_ROUNDS, PURGE_TASKS, PURGE_ROUNDS, STEADY_SECONDS, LARGE_TASKS,
# LARGE_ROUNDS, SETTLE_MAX (longest wait for compactions, s; default 900),
# WARMUP (--large: unmeasured seconds before each run, default 10),
# SERVER_ARGS (extra tasktraild flags, e.g. "--write-threads 64"), KEEP_TMP=1
# keeps the temp dir.
#
# Exit status: 0 when every run completed without errors; 1 when a run
# reported errors or the server could not be started; 2 on a usage error.
# Speed never changes the exit status.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

mode=table
case "${1:-}" in
  "") ;;
  --smoke) mode=smoke ;;
  --large) mode=large ;;
  --watchers) mode=watchers ;;
  --metrics) mode=metrics ;;
  --export) mode=export ;;
  --purge) mode=purge ;;
  --retention-steady) mode=steady ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: $0 [--smoke|--large|--watchers|--metrics|--export|--purge|--retention-steady]" >&2
    exit 2
    ;;
esac

build="${BUILD_DIR:-$root/build}"
daemon="$build/service/tasktraild"
bench="$build/bench/tasktrail-bench"
cli="$build/cli/tasktrail"
if [[ ! -x "$daemon" || ! -x "$bench" || ! -x "$cli" ]]; then
  cmake -S "$root" -B "$build" -G Ninja >/dev/null
  ninja -C "$build" tasktraild tasktrail_bench tasktrail >/dev/null
fi
python=$(command -v /usr/bin/python3 || command -v python3)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tasktrail-bench.XXXXXX")
server_pid=""
port=""
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
cleanup() {
  stop_server
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then
    echo "kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

now() { date +%s.%N; }

# start_server DB_DIR [FLAGS...]: starts tasktraild (with FLAGS) and waits
# for its port file and a health check; sets server_pid, port and
# startup_seconds.
start_server() {
  local db="$1" portfile="$tmp/port" t0 t1
  shift
  rm -f "$portfile"
  t0=$(now)
  # shellcheck disable=SC2086
  "$daemon" --listen 127.0.0.1:0 --db "$db" --port-file "$portfile" \
    ${SERVER_ARGS:-} "$@" >>"$tmp/server.log" 2>&1 &
  server_pid=$!
  # Up to 60 s: with --metrics-listen the daemon counts the store's
  # unfinished tasks before it serves, and the metrics runs leave hundreds
  # of thousands of them.
  for _ in $(seq 1 6000); do
    [[ -s "$portfile" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "tasktraild exited during startup; log:" >&2
      tail -20 "$tmp/server.log" >&2
      exit 1
    fi
    sleep 0.01
  done
  if [[ ! -s "$portfile" ]]; then
    echo "tasktraild wrote no port file within 60 s" >&2
    exit 1
  fi
  port=$(cat "$portfile")
  "$bench" --server "127.0.0.1:$port" --probe --quiet --deadline 10 || {
    echo "tasktraild does not answer health checks" >&2
    exit 1
  }
  t1=$(now)
  startup_seconds=$("$python" -c "print(f'{$t1 - $t0:.3f}')")
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# cpu_ticks PID: user+system clock ticks the process has used.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# thread_cpu_ns PID NAME: nanoseconds the thread NAME of process PID has
# been on a CPU (its schedstat); 0 when it has no such thread.
# shellcheck disable=SC2317 # used by export_run, which abba_rounds runs
thread_cpu_ns() {
  local comm
  for comm in /proc/"$1"/task/*/comm; do
    if [[ "$(cat "$comm" 2>/dev/null)" == "$2" ]]; then
      cut -d' ' -f1 "${comm%comm}schedstat" 2>/dev/null || echo 0
      return
    fi
  done
  echo 0
}

# settle: waits until the server has used under 5 % of a core for 3 seconds
# in a row, at most SETTLE_MAX (900) s; prints how long that took, in s.
settle() {
  local t0 quiet=0 before after hz
  hz=$(getconf CLK_TCK)
  t0=$(now)
  before=$(cpu_ticks "$server_pid")
  for _ in $(seq 1 "${SETTLE_MAX:-900}"); do
    sleep 1
    after=$(cpu_ticks "$server_pid")
    if (((after - before) * 20 < hz)); then
      quiet=$((quiet + 1))
      ((quiet >= 3)) && break
    else
      quiet=0
    fi
    before=$after
  done
  "$python" -c "print(f'{$(now) - $t0:.1f}')"
}

# run_bench OUT_JSONL ARGS...: runs the bench against the server, appending
# its JSON lines to OUT_JSONL; returns the bench's exit status.
run_bench() {
  local out="$1"
  shift
  local status=0
  "$bench" --server "127.0.0.1:$port" --json --quiet "$@" >>"$out" || status=$?
  return $status
}

# The table of one or more JSONL files, printed readably.
print_table() {
  "$python" - "$@" <<'EOF'
import json, sys
print(f"{'workload':<13} {'conc':>4} {'calls/s':>10} {'calls':>9} {'p50 us':>8} "
      f"{'p90 us':>8} {'p99 us':>8} {'p999 us':>8} errors")
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line)
        if r["workload"] == "preload":
            print(f"{'preload':<13} {'':>4} {r['calls_per_second']:>10.0f} "
                  f"{r['calls']:>9} ({r['tasks']} tasks in {r['seconds']:.1f} s)"
                  f" errors={r['errors']}")
            continue
        errs = " ".join(f"{k}={v}" for k, v in r["errors_by_code"].items())
        print(f"{r['workload']:<13} {r['concurrency']:>4} "
              f"{r['calls_per_second']:>10.0f} {r['calls']:>9} {r['p50_us']:>8} "
              f"{r['p90_us']:>8} {r['p99_us']:>8} {r['p999_us']:>8} "
              f"{r['errors']} {errs}")
EOF
}

# abba_rounds NAME ROUNDS RUN: ROUNDS rounds of four runs in the order
# A B B A (A: the baseline, B: the variant), so that the machine's drift
# over the rounds falls on both sides of each ratio. Each run is
# `RUN OUT SIDE`, appending its JSON lines to OUT
# ($tmp/NAME.ROUND.K.SIDE.jsonl, K from 1 to 4: the names ratios.py's
# abba_records reads); sets abba_files to the OUTs in order.
abba_rounds() {
  local name="$1" rounds="$2" run="$3" round k side out
  abba_files=()
  for round in $(seq 1 "$rounds"); do
    k=0
    for side in A B B A; do
      k=$((k + 1))
      out="$tmp/$name.$round.$k.$side.jsonl"
      abba_files+=("$out")
      "$run" "$out" "$side"
      echo "round $round run $k ($side) done; load $(loadavg)" >&2
    done
  done
}

status=0
echo "load average before: $(loadavg)  (cores: $(nproc))"

if [[ "$mode" == smoke ]]; then
  out="$tmp/smoke.jsonl"
  start_server "$tmp/db"
  # Two rotations, as the table measures (each workload reported once).
  run_bench "$out" --workload \
    health,get,get-timeline,queue-status,event,submit,submit-dup,mixed,store-submit \
    --db "$tmp/store-db" --rotations 2 \
    --concurrency 4 --duration 1 --warmup 0.2 --preload 200 \
    --preload-concurrency 16 || status=1
  # The open loop (--rate), on its own.
  run_bench "$tmp/smoke.rate.jsonl" --workload health --rate 200 \
    --concurrency 4 --duration 1 --warmup 0.2 || status=1
  # One export stream parsing its tasks and one taking them unparsed.
  for reads in "" --raw-export; do
    # shellcheck disable=SC2086 # the empty value is no argument
    run_bench "$tmp/smoke.export.jsonl" --workload none --exporters 1 \
      $reads --duration 0.5 || status=1
  done
  stop_server
  print_table "$out" "$tmp/smoke.rate.jsonl"
  # Every workload must have run once, made calls and seen no errors.
  # The histogram each report carries gives back the report's own
  # percentiles, as the A B B A modes pool them (bench/ratios.py).
  PYTHONPATH="$root/bench" "$python" - "$out" "$tmp/smoke.rate.jsonl" \
    "$tmp/smoke.export.jsonl" <<'EOF' || status=1
import json, sys
from ratios import pooled_percentile
want = {"preload", "health", "get", "get-timeline", "queue-status", "event",
        "submit", "submit-dup", "mixed", "store-submit"}
seen, bad = set(), []
rate = [json.loads(line) for line in open(sys.argv[2])]
if len(rate) != 1 or rate[0]["errors"] or not rate[0]["calls"]:
    bad.append(f"health --rate: {rate}")
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["workload"] in seen:
        bad.append(f"{r['workload']}: reported more than once")
    seen.add(r["workload"])
    if r["errors"] or not r["calls"]:
        bad.append(f"{r['workload']}: calls={r['calls']} errors={r['errors']}")
    if "latency_us" in r:
        counted = sum(count for _, count in r["latency_us"])
        pooled = {key: pooled_percentile([r], q) for key, q in
                  (("p50_us", 0.5), ("p99_us", 0.99), ("p999_us", 0.999))}
        if counted != r["calls"] or any(r[k] != v for k, v in pooled.items()):
            bad.append(f"{r['workload']}: histogram of {counted} calls gives {pooled}")
exports = [json.loads(line) for line in open(sys.argv[3])]
if len(exports) != 2 or any(e["errors"] or not e["tasks"] for e in exports):
    bad.append(f"export streams, parsed then unparsed: {exports}")
missing = want - seen
if missing:
    bad.append("missing: " + ", ".join(sorted(missing)))
for b in bad:
    print("smoke FAILED:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
  if [[ $status -eq 0 ]]; then echo "smoke: OK"; else echo "smoke: FAILED" >&2; fi
  exit $status
fi

conc="${CONCURRENCY:-64}"

if [[ "$mode" == watchers ]]; then
  duration="${DURATION:-10}"
  preload="${PRELOAD:-1000}"
  watchers="${WATCHERS:-2000}"
  watch_rate="${WATCH_RATE:-5}"
  watch_rounds="${WATCH_ROUNDS:-3}"
  watch_conc="${WATCH_CONCURRENCY:-16}"
  start_server "$tmp/db"
  run_bench "$tmp/watch.preload.jsonl" --preload "$preload" \
    --save-tasks "$tmp/watch.ids" --workload none || status=1
  # watch_run OUT SIDE: events on the preloaded tasks; B with the watchers.
  # shellcheck disable=SC2317 # run by abba_rounds
  watch_run() {
    local args=(--load-tasks "$tmp/watch.ids" --workload event
      --concurrency "$watch_conc" --duration "$duration")
    if [[ "$2" == B ]]; then
      args+=(--watchers "$watchers" --watch-rate "$watch_rate")
    fi
    run_bench "$1" "${args[@]}" || status=1
  }
  abba_rounds watch "$watch_rounds" watch_run
  rss=$(rss_kb "$server_pid")
  stop_server
  echo "load average after:  $(loadavg)"
  echo "server RSS at the end: $((rss / 1024)) MB"
  echo
  PYTHONPATH="$root/bench" "$python" - "$watchers" "$watch_conc" \
    "${abba_files[@]}" <<'EOF'
import sys
from ratios import abba_records, print_round_ratio, print_sides, round_ratios
watchers, conc = sys.argv[1], sys.argv[2]
runs = {}  # (round, side) -> the event runs of that side in that round
for rnd, side, records in abba_records(sys.argv[3:]):
    event = next((r for r in records if r["workload"] == "event"), None)
    watch = next((r for r in records if r["workload"] == "watchers"), None)
    if event is None:
        print(f"round {rnd} {side}: no event run (see the errors above)")
        continue
    label = "with" if side == "B" else "without"
    extra = ""
    if watch:
        extra = (f"  watchers={watch['watchers']} hot events={watch['hot_events']}"
                 f" delivered={watch['delivered']} caught up={watch['caught_up']}")
    print(f"round {rnd} {label:<7} event c={conc}: {event['calls_per_second']:8.1f} calls/s"
          f"  p50={event['p50_us']}us p99={event['p99_us']}us errors={event['errors']}{extra}")
    runs.setdefault((rnd, side), []).append(event)
print()
for key, unit in (("calls_per_second", "calls/s"), ("p50_us", "us"), ("p99_us", "us")):
    def side(s):
        return [r[key] for (rnd, sd), rs in sorted(runs.items()) if sd == s for r in rs]
    print_sides(key, side("A"), side("B"), unit, f"with {watchers} watchers")
print()
print_round_ratio("event calls/s with / without watchers",
                  round_ratios(runs, lambda r: r["calls_per_second"]), ">=", 0.8)
print_round_ratio("event p50 with / without watchers",
                  round_ratios(runs, lambda r: r["p50_us"]), "<=", 1.2)
EOF
  exit $status
fi

# purged_since LINE: the tasks the retention sweeps logged as purged in the
# server log from line LINE on.
purged_since() {
  tail -n +"$1" "$tmp/server.log" | grep -o 'purged=[0-9]*' |
    awk -F= '{n += $2} END {print n + 0}'
}

if [[ "$mode" == purge ]]; then
  duration="${DURATION:-10}"
  preload="${PRELOAD:-10000}"
  purge_tasks="${PURGE_TASKS:-100000}"
  purge_rounds="${PURGE_ROUNDS:-2}"
  due=(--task-retention 1s --unfinished-retention 3650d
    --retention-sweep-interval 1s)
  start_server "$tmp/base"
  run_bench "$tmp/purge.preload.jsonl" --preload "$preload" \
    --save-tasks "$tmp/purge.ids" --workload none || status=1
  run_bench "$tmp/purge.finished.jsonl" --preload "$purge_tasks" \
    --preload-finished --save-tasks "$tmp/purge.finished.ids" \
    --workload none || status=1
  stop_server
  echo "store of $preload unfinished and $purge_tasks finished tasks:" \
    "$(du -sm "$tmp/base" | cut -f1) MB" >&2
  fresh_copy() {
    rm -rf "$tmp/db"
    cp -a "$tmp/base" "$tmp/db"
  }
  # purge_run OUT SIDE: get and submit on a fresh copy of the store; B with
  # every finished task due, purged during the run.
  # shellcheck disable=SC2317 # run by abba_rounds
  purge_run() {
    local first_line
    fresh_copy
    first_line=$(($(wc -l <"$tmp/server.log") + 1))
    if [[ "$2" == B ]]; then
      start_server "$tmp/db" "${due[@]}"
    else
      start_server "$tmp/db"
    fi
    run_bench "$1" --load-tasks "$tmp/purge.ids" --workload get,submit \
      --concurrency "$conc" --duration "$duration" || status=1
    echo "{\"purged\": $(purged_since "$first_line")}" >>"$1"
    stop_server
  }
  abba_rounds purge "$purge_rounds" purge_run
  # The whole purge on an otherwise idle server.
  fresh_copy
  first_line=$(($(wc -l <"$tmp/server.log") + 1))
  t0=$(now)
  start_server "$tmp/db" "${due[@]}"
  while (($(purged_since "$first_line") < purge_tasks)); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "tasktraild exited while purging" >&2
      exit 1
    fi
    sleep 0.2
  done
  t1=$(now)
  last=$(head -1 "$tmp/purge.finished.ids")
  if "$cli" --server "127.0.0.1:$port" get "$last" >/dev/null 2>&1; then
    echo "a purged task is still there: $last" >&2
    status=1
  fi
  stop_server
  echo "load average after: $(loadavg)"
  PYTHONPATH="$root/bench" "$python" - "$conc" "$purge_tasks" "$t0" "$t1" \
    "${abba_files[@]}" <<'EOF'
import sys
from ratios import abba_records, print_pooled_ratio, print_round_ratio, round_ratios
conc, total, t0, t1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
runs = {}  # workload -> (round, side) -> runs
for rnd, side, records in abba_records(sys.argv[5:]):
    label = "purging" if side == "B" else "idle"
    purged = next((r["purged"] for r in records if "purged" in r), 0)
    for r in records:
        if "workload" not in r:
            continue
        print(f"round {rnd} {label:<7} {r['workload']:<6} c={conc}: {r['calls_per_second']:8.1f} calls/s"
              f"  p50={r['p50_us']}us p99={r['p99_us']}us errors={r['errors']}")
        runs.setdefault(r["workload"], {}).setdefault((rnd, side), []).append(r)
    print(f"round {rnd} {label:<7} tasks purged during the run: {purged}")
print()
for workload in ("get", "submit"):
    print_round_ratio(f"{workload} p99 while purging / without",
                      round_ratios(runs.get(workload, {}), lambda r: r["p99_us"]),
                      "<=", 1.2)
for workload in ("get", "submit"):
    print_pooled_ratio(f"{workload} p99 of every call of the rounds, purging / without",
                       runs.get(workload, {}), 0.99, "<=", 1.2)
print(f"all {total} due tasks purged on an idle server in {t1 - t0:.1f} s "
      f"(start-up included): {total / (t1 - t0):.0f} tasks/s")
EOF
  exit $status
fi

if [[ "$mode" == steady ]]; then
  steady_seconds="${STEADY_SECONDS:-600}"
  metrics_port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  touch "$tmp/server.log"
  first_line=$(($(wc -l <"$tmp/server.log") + 1))
  start_server "$tmp/db" --task-retention 60s --retention-sweep-interval 5s \
    --metrics-listen "127.0.0.1:$metrics_port"
  live_mb() {
    "$python" -c 'import sys, urllib.request
for line in urllib.request.urlopen(sys.argv[1], timeout=10).read().decode().splitlines():
    if line.startswith("tasktrail_rocksdb_live_data_bytes "):
        print(f"{float(line.split()[1]) / 1e6:.1f}")' "http://127.0.0.1:$metrics_port/metrics"
  }
  "$bench" --server "127.0.0.1:$port" --workload mixed --concurrency 2 \
    --duration "$steady_seconds" --quiet --json >"$tmp/steady.jsonl" &
  load_pid=$!
  t0=$(now)
  printf '%8s %10s %14s %10s\n' "seconds" "purged" "live data MB" "dir MB"
  while kill -0 "$load_pid" 2>/dev/null; do
    sleep 30
    elapsed=$("$python" -c "print(int($(now) - $t0))")
    printf '%8s %10s %14s %10s\n' "$elapsed" "$(purged_since "$first_line")" \
      "$(live_mb)" "$(du -sm "$tmp/db" | cut -f1)"
  done
  wait "$load_pid" || status=1
  "$python" -c 'import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("load: %s c=%s: %.0f calls/s, errors %s" % (r["workload"], r["concurrency"], r["calls_per_second"], r["errors"]))' "$tmp/steady.jsonl"
  stop_server
  exit $status
fi

if [[ "$mode" == export ]]; then
  duration="${DURATION:-10}"
  export_tasks="${EXPORT_TASKS:-1000000}"
  export_rounds="${EXPORT_ROUNDS:-2}"
  admin_token="bench-export-admin"
  printf 'admin bench %s\n' \
    "$(printf %s "$admin_token" | sha256sum | cut -d' ' -f1)" >"$tmp/auth"
  start_server "$tmp/db"
  run_bench "$tmp/export.preload.jsonl" --preload "$export_tasks" \
    --preload-concurrency 128 --save-tasks "$tmp/export.ids" \
    --workload none || status=1
  stop_server
  start_server "$tmp/db"
  echo "settled after $(settle) s" >&2
  # One stream alone.
  run_bench "$tmp/export.alone.jsonl" --workload none --exporters 1 \
    --duration "$duration" || status=1
  # timed_export LABEL [GLOBAL CLI FLAGS...]: the whole store through the
  # CLI, into a file; also the CPU seconds the CLI and the server used
  # (user + system), which a machine shared with other work does not
  # inflate as it does the wall time.
  timed_export() {
    local label="$1" t0 t1 lines bytes cpu ticks0 ticks1
    shift
    ticks0=$(cpu_ticks "$server_pid")
    t0=$(now)
    "$python" -c 'import resource, subprocess, sys
with open(sys.argv[1], "wb") as out:
    code = subprocess.call(sys.argv[3:], stdout=out)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[2], "w") as cpu:
    cpu.write(f"{usage.ru_utime + usage.ru_stime:.2f}")
sys.exit(code)' "$tmp/export.ndjson" "$tmp/export.cpu" \
      "$cli" --server "127.0.0.1:$port" "$@" export || status=1
    t1=$(now)
    ticks1=$(cpu_ticks "$server_pid")
    lines=$(wc -l <"$tmp/export.ndjson")
    bytes=$(stat -c %s "$tmp/export.ndjson")
    cpu=$(cat "$tmp/export.cpu")
    "$python" -c "print(f'tasktrail export ($label): $lines tasks in {$t1 - $t0:.1f} s, {$lines / ($t1 - $t0):.0f} tasks/s, {$bytes / 1e6:.0f} MB of NDJSON; the CLI used $cpu CPU s ({$lines / max($cpu, 0.01):.0f} tasks per CPU second); tasktraild used {($ticks1 - $ticks0) / $(getconf CLK_TCK):.2f} CPU s ({($ticks1 - $ticks0) / $(getconf CLK_TCK) * 1e6 / max($lines, 1):.1f} us per task)')"
    rm -f "$tmp/export.ndjson" "$tmp/export.cpu"
  }
  timed_export "no access control"
  # export_run OUT SIDE: get and submit; B with one export stream running.
  # shellcheck disable=SC2317 # run by abba_rounds
  export_run() {
    local args=(--load-tasks "$tmp/export.ids" --concurrency "$conc"
      --duration "$duration")
    local exporting=0
    if [[ "$2" == B && "${EXPORT_CONTROL:-0}" != 1 ]]; then exporting=1; fi
    if [[ -z "${GET_RATE:-}${SUBMIT_RATE:-}" ]]; then
      if [[ $exporting == 1 ]]; then args+=(--exporters 1); fi
      run_bench "$1" "${args[@]}" --workload get,submit || status=1
      return
    fi
    # Open loop; the export stream from a process of its own, running
    # through both foreground runs (each a warm-up and DURATION s). That
    # process stands for a warehouse loader on another machine: unless
    # EXPORTER_CPU=shared, it runs at SCHED_IDLE, on the CPU the server
    # and the load generator leave idle, and unless EXPORTER_READS=parsed
    # it takes the tasks as bytes without parsing them, so that p99 shows
    # what the server's export costs its other calls rather than a third
    # process competing for the same 2 cores.
    local exporter="" sched=(chrt --idle 0) reads=(--raw-export) export_ns0=0
    if [[ "${EXPORTER_CPU:-idle}" == shared ]]; then sched=(); fi
    if [[ "${EXPORTER_READS:-raw}" == parsed ]]; then reads=(); fi
    if [[ $exporting == 1 ]]; then
      export_ns0=$(thread_cpu_ns "$server_pid" tt-export)
      "${sched[@]}" "$bench" --server "127.0.0.1:$port" --json --quiet \
        --workload none --exporters 1 "${reads[@]}" \
        --duration "$("$python" -c "print(2 * ($duration + 1) + 1)")" \
        >>"$1.exporter" &
      exporter=$!
    fi
    run_bench "$1" "${args[@]}" --workload get --rate "${GET_RATE:?}" ||
      status=1
    run_bench "$1" "${args[@]}" --workload submit --rate "${SUBMIT_RATE:?}" ||
      status=1
    if [[ -n "$exporter" ]]; then
      wait "$exporter" || status=1
      # The CPU the server's export thread used while the stream ran.
      sed "s/}\$/, \"export_thread_ns\": $(($(thread_cpu_ns "$server_pid" \
        tt-export) - export_ns0))}/" "$1.exporter" >>"$1"
    fi
  }
  abba_rounds export "$export_rounds" export_run
  rss=$(rss_kb "$server_pid")
  stop_server
  start_server "$tmp/db" --auth-file "$tmp/auth"
  timed_export "--auth-file, every task audited" --token "$admin_token"
  first=$(head -1 "$tmp/export.ids")
  if ! "$cli" --server "127.0.0.1:$port" --token "$admin_token" audit \
    "$first" | grep -q ExportTasks; then
    echo "the export was not audited on $first" >&2
    status=1
  fi
  stop_server
  echo "load average after:  $(loadavg)"
  echo "server RSS after the rounds: $((rss / 1024)) MB"
  echo "store: $(du -sm "$tmp/db" | cut -f1) MB"
  echo
  PYTHONPATH="$root/bench" "$python" - "$conc" "$tmp/export.alone.jsonl" \
    "${abba_files[@]}" <<'EOF'
import json, sys
from ratios import abba_records, print_pooled_ratio, print_round_ratio, round_ratios
conc = sys.argv[1]
for line in open(sys.argv[2]):
    r = json.loads(line)
    if r["workload"] == "exporters":
        print(f"one export stream alone: {r['tasks_per_second']:.0f} tasks/s "
              f"({r['bytes'] / r['seconds'] / 1e6:.1f} MB/s), whole passes "
              f"{r['passes']} ({r['pass_seconds']:.1f} s each, {r['pass_tasks']} tasks)")
runs = {}  # workload -> (round, side) -> runs
export_ns = [0, 0]  # the export thread's CPU ns and the tasks it read, all rounds
for rnd, side, records in abba_records(sys.argv[3:]):
    label = "with" if side == "B" else "without"
    for r in records:
        if r["workload"] == "exporters":
            thread = ""
            if r.get("export_thread_ns") and r["tasks"]:
                thread = f"; the server's export thread {r['export_thread_ns'] / 1e3 / r['tasks']:.1f} us of CPU per task"
                export_ns[0] += r["export_thread_ns"]
                export_ns[1] += r["tasks"]
            print(f"round {rnd} {label:<7} export stream: {r['tasks_per_second']:8.0f} tasks/s{thread}")
            continue
        print(f"round {rnd} {label:<7} {r['workload']:<6} c={conc}: {r['calls_per_second']:8.1f} calls/s"
              f"  p50={r['p50_us']}us p99={r['p99_us']}us errors={r['errors']}")
        runs.setdefault(r["workload"], {}).setdefault((rnd, side), []).append(r)
if export_ns[1]:
    print(f"the server's export thread, all rounds: {export_ns[0] / 1e3 / export_ns[1]:.1f} us of CPU per task ({export_ns[1]} tasks)")
print()
for workload in ("get", "submit"):
    print_round_ratio(f"{workload} p99 with / without an export stream",
                      round_ratios(runs.get(workload, {}), lambda r: r["p99_us"]),
                      "<=", 1.2)
for workload in ("get", "submit"):
    print_pooled_ratio(f"{workload} p99 of every call of the rounds, with / without an export stream",
                       runs.get(workload, {}), 0.99, "<=", 1.2)
EOF
  exit $status
fi

if [[ "$mode" == metrics ]]; then
  duration="${DURATION:-10}"
  preload="${PRELOAD:-10000}"
  metrics_rounds="${METRICS_ROUNDS:-3}"
  metrics_port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  metrics_url="http://127.0.0.1:$metrics_port/metrics"
  fetch='import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())'
  # One Python process scrapes every second, as a Prometheus server would
  # (its scrape_interval is 15 s to 1 min in most setups).
  scraper_loop='import sys, time, urllib.request
while True:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=10).read()
    except Exception:
        pass
    time.sleep(1)'
  # The mean time of N scrapes by one client, in ms.
  scrape_ms='import sys, time, urllib.request
n = int(sys.argv[2])
urllib.request.urlopen(sys.argv[1], timeout=10).read()
t0 = time.monotonic()
for _ in range(n):
    urllib.request.urlopen(sys.argv[1], timeout=10).read()
print(f"{(time.monotonic() - t0) / n * 1000:.1f}")'
  start_server "$tmp/db"
  run_bench "$tmp/metrics.preload.jsonl" --preload "$preload" \
    --save-tasks "$tmp/metrics.ids" --workload none || status=1
  stop_server
  echo "load average before: $(loadavg)"
  # metrics_run OUT SIDE: get and submit on a restarted daemon; B with
  # --metrics-listen and /metrics scraped every second.
  # shellcheck disable=SC2317 # run by abba_rounds
  metrics_run() {
    local out="$1" scraper="" workload before
    if [[ "$2" == B ]]; then
      start_server "$tmp/db" --metrics-listen "127.0.0.1:$metrics_port"
      "$python" -c "$scraper_loop" "$metrics_url" &
      scraper=$!
    else
      start_server "$tmp/db"
    fi
    # One workload at a time, so that the server's CPU time (user +
    # system, from /proc) can be told per call of each.
    for workload in get submit; do
      before=$(cpu_ticks "$server_pid")
      run_bench "$out" --load-tasks "$tmp/metrics.ids" --workload "$workload" \
        --concurrency "$conc" --duration "$duration" || status=1
      echo "$workload $(($(cpu_ticks "$server_pid") - before))" >>"$out.cpu"
    done
    if [[ -n "$scraper" ]]; then
      kill "$scraper" 2>/dev/null || true
      wait "$scraper" 2>/dev/null || true
    fi
    stop_server
  }
  abba_rounds metrics "$metrics_rounds" metrics_run
  # The time of one scrape (a Python client's fetch included), on the store
  # as the runs left it.
  start_server "$tmp/db" --metrics-listen "127.0.0.1:$metrics_port"
  ms=$("$python" -c "$scrape_ms" "$metrics_url" 20)
  unfinished=$("$python" -c "$fetch" "$metrics_url" |
    awk '/^tasktrail_tasks_unfinished\{/ {sum += $NF} END {print sum}')
  stop_server
  echo "load average after:  $(loadavg)"
  echo "one scrape with $unfinished unfinished tasks: $ms ms (mean of 20)"
  echo
  PYTHONPATH="$root/bench" "$python" - "$(getconf CLK_TCK)" \
    "${abba_files[@]}" <<'EOF'
import sys
from ratios import abba_records, print_round_ratio, print_sides, round_ratios
hz = int(sys.argv[1])
runs = {}  # workload -> (round, side) -> runs, with the server's CPU us per call
for (rnd, side, records), path in zip(abba_records(sys.argv[2:]), sys.argv[2:]):
    ticks = dict((w, int(t)) for w, t in (l.split() for l in open(path + ".cpu")))
    for r in records:
        if r["workload"] in ("get", "submit"):
            label = "with" if side == "B" else "without"
            r["server_cpu_us"] = ticks[r["workload"]] / hz * 1e6 / max(r["calls"], 1)
            print(f"round {rnd} {label:<7} {r['workload']:<6} c={r['concurrency']}: "
                  f"{r['calls_per_second']:8.0f} calls/s  p50={r['p50_us']}us "
                  f"p99={r['p99_us']}us errors={r['errors']}  server CPU {r['server_cpu_us']:6.1f} us/call")
            runs.setdefault(r["workload"], {}).setdefault((rnd, side), []).append(r)
print()
for workload in ("get", "submit"):
    by_round = runs.get(workload, {})
    def side(s):
        return [r["calls_per_second"] for (rnd, sd), rs in by_round.items() if sd == s for r in rs]
    print_sides(workload, side("A"), side("B"), "calls/s", "with metrics", digits=0)
    print_round_ratio(f"{workload} calls/s with / without metrics",
                      round_ratios(by_round, lambda r: r["calls_per_second"]),
                      ">=", 0.97, digits=3)
    # CPU per call is what throughput costs on a saturated machine, and it
    # drifts less with other load than calls/s do.
    print_round_ratio(f"{workload} server CPU per call with / without metrics",
                      round_ratios(by_round, lambda r: r["server_cpu_us"]),
                      "<=", 1.03, digits=3)
EOF
  exit $status
fi

if [[ "$mode" == table ]]; then
  duration="${DURATION:-5}"
  preload="${PRELOAD:-10000}"
  rounds="${ROUNDS:-1}"
  rotations="${ROTATIONS:-5}"
  files=()
  for round in $(seq 1 "$rounds"); do
    out="$tmp/table.$round.jsonl"
    files+=("$out")
    # A fresh server and store for the service's workloads; the store-level
    # ceiling runs inside the load generator on a store of its own, while
    # the server idles, in the same rotations as the service's workloads.
    start_server "$tmp/db.$round"
    workloads="health@1,get@1,get-timeline@1,store-submit,submit,health,get"
    workloads+=",get-timeline,queue-status,event,submit-dup,mixed"
    run_bench "$out" --preload "$preload" --duration "$duration" \
      --rotations "$rotations" --db "$tmp/store-db.$round" \
      --concurrency "$conc" --workload "$workloads" || status=1
    rss=$(rss_kb "$server_pid")
    stop_server
    rm -rf "$tmp/db.$round" "$tmp/store-db.$round"
  done
  echo "load average after:  $(loadavg)"
  echo "each workload measured in $rotations rotations of" \
    "$("$python" -c "print($duration / $rotations)") s"
  print_table "${files[@]}"
  echo "server RSS after the table: $((rss / 1024)) MB"
  echo
  PYTHONPATH="$root/bench" "$python" - "$conc" "${files[@]}" <<'EOF'
import sys
from ratios import load_runs, print_checks
c = int(sys.argv[1])
rounds = [load_runs(path) for path in sys.argv[2:]]
def rate(r, w, n=c): return r[(w, n)]["calls_per_second"]
def p99(r, w, n): return r[(w, n)]["p99_us"]
checks = [
    (f"get calls/s / health calls/s (c={c})",
     lambda r: rate(r, "get") / rate(r, "health"), ">=", 0.7),
    (f"queue-status / health (c={c})",
     lambda r: rate(r, "queue-status") / rate(r, "health"), ">=", 0.7),
    (f"submit / store-submit ceiling (c={c})",
     lambda r: rate(r, "submit") / rate(r, "store-submit"), ">=", 0.6),
    (f"event / store-submit ceiling (c={c})",
     lambda r: rate(r, "event") / rate(r, "store-submit"), ">=", 0.6),
    ("get p99 / health p99 (c=1)",
     lambda r: p99(r, "get", 1) / max(p99(r, "health", 1), 1), "<=", 3.0),
    ("get-timeline p99 / health p99 (c=1)",
     lambda r: p99(r, "get-timeline", 1) / max(p99(r, "health", 1), 1), "<=", 3.0),
    # No target: support's read carries the whole timeline (a reply ~10x a
    # health answer); reported so that its cost stays visible.
    (f"get-timeline / health (c={c})",
     lambda r: rate(r, "get-timeline") / rate(r, "health"), None, None),
]
print_checks(checks, rounds)
EOF
  exit $status
fi

# --large: the same procedure on a 10,000-task store and on a LARGE_TASKS
# store: preload, stop the server, start it again (timed), wait until its
# background work (flushes, compactions) has finished. A store of that size
# is grown over days, not in minutes: measuring right after a bulk load
# would measure the compaction of the load, so that is reported separately
# as the settle time. The settled stores are then measured in LARGE_ROUNDS
# rounds, the two stores alternating (10k first in odd rounds, last in even
# ones), each round on fresh replicas of the settled stores (their immutable
# files hard-linked, as a RocksDB checkpoint does) served by a fresh
# tasktraild: every round starts from the same two stores, and the machine's
# drift over the run falls on both sides of each ratio.
large="${LARGE_TASKS:-1000000}"
# Longer than the table's runs: a 5 s submit run on the large store can fall
# between two of its compactions, or into one.
duration="${DURATION:-20}"
warmup="${WARMUP:-10}"
large_rounds="${LARGE_ROUNDS:-3}"


# track_rss NAME: the resident-memory sampler follows this server when NAME
# is the large store (only its servers count towards the memory target).
track_rss() {
  if [[ "$1" == large ]]; then echo "$server_pid" >"$tmp/server.pid"; fi
}

# prepare_store NAME TASKS: preloads $tmp/db-NAME with TASKS tasks (their ids
# in $tmp/NAME.ids), restarts the server on it (timed) and waits for its
# background work; sets load_rss_kb, shutdown_seconds, restart_seconds,
# settle_seconds.
prepare_store() {
  local name="$1" tasks="$2" t_term
  start_server "$tmp/db-$name"
  track_rss "$name"
  run_bench "$tmp/$name.preload.jsonl" --preload "$tasks" \
    --preload-concurrency 128 --save-tasks "$tmp/$name.ids" \
    --workload none || status=1
  load_rss_kb=$(rss_kb "$server_pid")
  t_term=$(now)
  stop_server
  shutdown_seconds=$("$python" -c "print(f'{$(now) - $t_term:.3f}')")
  start_server "$tmp/db-$name"
  track_rss "$name"
  restart_seconds=$startup_seconds
  settle_seconds=$(settle)
  echo "$name: restart ${restart_seconds} s, settled after ${settle_seconds} s" >&2
  stop_server
  rm -f "$tmp/server.pid"
}

# replicate SRC DST: DST becomes a store with SRC's contents; SST files are
# immutable and hard-linked, every other file (MANIFEST, CURRENT, OPTIONS,
# WAL) is copied, so that SRC is left as it was.
replicate() {
  local src="$1" dst="$2" file
  rm -rf "$dst"
  mkdir "$dst"
  for file in "$src"/*; do
    case "$file" in
      *.sst) ln "$file" "$dst/" ;;
      *) cp -pr "$file" "$dst/" ;;
    esac
  done
  sync
}

# measure_round NAME ROUND: serves a replica of the settled store NAME with a
# fresh server and measures the reads and submit on it into
# $tmp/NAME.ROUND.jsonl. A freshly started server has an empty block cache:
# each run is preceded by WARMUP s of the same calls, unmeasured, as on a
# server that has been up for a while (the same for both stores).
measure_round() {
  local name="$1" round="$2" replica="$tmp/replica"
  replicate "$tmp/db-$name" "$replica"
  start_server "$replica"
  track_rss "$name"
  settle >/dev/null
  run_bench "$tmp/$name.$round.jsonl" --load-tasks "$tmp/$name.ids" \
    --duration "$duration" --warmup "$warmup" \
    --workload "get,get@1,get-timeline,get-timeline@1,submit" \
    --concurrency "$conc" || status=1
  stop_server
  rm -f "$tmp/server.pid"
  rm -rf "$replica"
}

# The large store's server's resident memory, sampled every second.
rss_log="$tmp/rss.log"
: >"$rss_log"
(
  while sleep 1; do
    pid=$(cat "$tmp/server.pid" 2>/dev/null || true)
    [[ -n "$pid" ]] && rss_kb "$pid" >>"$rss_log"
  done
) &
sampler=$!

prepare_store base 10000
# Prepared last, so what prepare_store sets is the large store's.
prepare_store large "$large"
# The sampler's last sample may precede the preload's end by up to 1 s.
echo "$load_rss_kb" >>"$rss_log"
base_files=()
large_files=()
for round in $(seq 1 "$large_rounds"); do
  if ((round % 2)); then order="base large"; else order="large base"; fi
  for name in $order; do
    measure_round "$name" "$round"
    echo "round $round: $name measured" >&2
  done
  base_files+=("$tmp/base.$round.jsonl")
  large_files+=("$tmp/large.$round.jsonl")
done
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
rss_max=$(sort -n "$rss_log" | tail -1)
du_db=$(du -sm "$tmp/db-large" | cut -f1)
echo "load average after:  $(loadavg)"

echo "== 10,000 tasks ($large_rounds rounds)"
print_table "$tmp/base.preload.jsonl" "${base_files[@]}"
echo "== $large tasks ($large_rounds rounds)"
print_table "$tmp/large.preload.jsonl" "${large_files[@]}"
echo
echo "store size: ${du_db} MB; server RSS max $((rss_max / 1024)) MB" \
  "(at the end of the preload $((load_rss_kb / 1024)) MB)"
echo "shutdown (TERM to exit): ${shutdown_seconds} s; restart (start to" \
  "port file + health SERVING): ${restart_seconds} s; background work" \
  "after the restart finished in ${settle_seconds} s"
echo
PYTHONPATH="$root/bench" "$python" - "$conc" "$rss_max" "$restart_seconds" \
  "$tmp/large.preload.jsonl" "${base_files[@]}" "${large_files[@]}" <<'EOF'
import sys
from ratios import load_runs, print_checks, verdict
c = int(sys.argv[1])
rss_mb = int(sys.argv[2]) / 1024
restart = float(sys.argv[3])
pre = load_runs(sys.argv[4])[("preload", None)]
files = sys.argv[5:]
n = len(files) // 2
# One round: the 10,000-task store's runs and the large store's.
pairs = list(zip(map(load_runs, files[:n]), map(load_runs, files[n:])))
print(f"preload: {pre['tasks']} tasks, {pre['calls']} calls in {pre['seconds']:.0f} s "
      f"({pre['calls_per_second']:.0f} calls/s, {pre['tasks'] / pre['seconds']:.0f} tasks/s)")
def p99_ratio(w, n):
    return lambda pair: pair[1][(w, n)]["p99_us"] / pair[0][(w, n)]["p99_us"]
def rate_ratio(w, n):
    return lambda pair: (pair[1][(w, n)]["calls_per_second"] /
                         pair[0][(w, n)]["calls_per_second"])
checks = [
    (f"get p99 large / 10k (c={c})", p99_ratio("get", c), "<=", 1.2),
    ("get p99 large / 10k (c=1)", p99_ratio("get", 1), "<=", 1.2),
    # No target of its own (the issue's is on get); reported so that the
    # timeline read's cost stays visible.
    (f"get-timeline p99 large / 10k (c={c})", p99_ratio("get-timeline", c), None, None),
    ("get-timeline p99 large / 10k (c=1)", p99_ratio("get-timeline", 1), None, None),
    (f"submit calls/s large / 10k (c={c})", rate_ratio("submit", c), ">=", 0.8),
]
print_checks(checks, pairs, width=38)
for name, value, op, target in [("server RSS max, MB", rss_mb, "<=", 300),
                                ("restart, s", restart, "<", 3)]:
    print(f"{name:<38} {value:8.2f}  {verdict(value, op, target)}")
EOF
exit $status
