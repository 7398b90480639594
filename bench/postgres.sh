#!/usr/bin/env bash
# tasktraild on PostgreSQL, measured beside pgbench on the same throwaway
# cluster (initdb in a temp dir, a free loopback port, stopped at the end;
# run as the postgres user when this script runs as root).
#
#   bench/postgres.sh   in PG_ROUNDS (2) rounds, each on a fresh database:
#                       1. one tasktraild --postgres: PRELOAD (10,000) tasks
#                          preloaded, then submit, get and event at
#                          CONCURRENCY (64), DURATION (10) s each;
#                       2. pgbench, same concurrency and duration, running
#                          the transaction a submission needs at least (one
#                          dedup record, the task row, its first timeline
#                          entry; one transaction each), with rows of the
#                          sizes tasktraild wrote in step 1;
#                       3. two tasktraild replicas on that database, submit
#                          and get at CONCURRENCY/2 against each at once.
#                       Prints every run, then submit / pgbench (target
#                       >= 1.0) and two replicas / one per round, and the
#                       CPU time per call of tasktraild and of the
#                       PostgreSQL server (all its processes) in steps 1
#                       and 2: steadier than calls/s on a shared machine.
#
# Environment: BUILD_DIR (default ./build), DURATION, CONCURRENCY, PRELOAD,
# PG_ROUNDS, POOL (--postgres-pool of each replica; default: tasktraild's),
# KEEP_TMP=1 keeps the temp dir. Needs the Debian postgresql package.
#
# Exit status: 0 when every run completed without errors; 1 otherwise; 2 on
# a usage error. Speed never changes the exit status.
set -euo pipefail

if [[ $# -gt 0 ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
build="${BUILD_DIR:-$root/build}"
daemon="$build/service/tasktraild"
bench="$build/bench/tasktrail-bench"
duration="${DURATION:-10}"
conc="${CONCURRENCY:-64}"
preload="${PRELOAD:-10000}"
rounds="${PG_ROUNDS:-2}"
python=python3

for binary in "$daemon" "$bench"; do
  if [[ ! -x "$binary" ]]; then
    echo "missing $binary: build first (cmake --build $build)" >&2
    exit 1
  fi
done
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [[ -z "$pg_bin" || ! -x "$pg_bin/initdb" || ! -x "$pg_bin/pgbench" ]]; then
  echo "no PostgreSQL server with pgbench (Debian package postgresql)" >&2
  exit 1
fi

tmp=$(mktemp -d)
chmod 711 "$tmp"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -d "$tmp/data" ]]; then
    as_server "$pg_bin/pg_ctl" --pgdata="$tmp/data" --mode=immediate \
      stop >/dev/null 2>&1 || true
  fi
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then
    echo "kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

# Runs a PostgreSQL program as the server's user when root.
as_server() {
  if [[ $(id -u) == 0 ]]; then
    /usr/sbin/runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

mkdir -p "$tmp/data" "$tmp/socket" "$tmp/log"
if [[ $(id -u) == 0 ]]; then chown postgres "$tmp/data" "$tmp/socket" "$tmp/log"; fi
as_server "$pg_bin/initdb" --pgdata="$tmp/data" --username=tasktrail \
  --auth=trust --encoding=UTF8 --locale=C --no-instructions >/dev/null
pg_port=$(free_port)
as_server "$pg_bin/pg_ctl" --pgdata="$tmp/data" --log="$tmp/log/server.log" \
  --wait --timeout=60 \
  --options="-p $pg_port -k $tmp/socket -c listen_addresses=127.0.0.1 -c max_connections=300" \
  start >/dev/null

psql() {
  "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" \
    -U tasktrail "$@"
}
conninfo() { echo "host=127.0.0.1 port=$pg_port user=tasktrail dbname=$1"; }

# start_replica DB NAME: starts tasktraild on database DB; its port lands
# in $tmp/NAME.port.
start_replica() {
  local db="$1" name="$2"
  local portfile="$tmp/$name.port"
  rm -f "$portfile"
  # shellcheck disable=SC2086
  "$daemon" --listen 127.0.0.1:0 --port-file "$portfile" \
    --postgres "$(conninfo "$db")" ${POOL:+--postgres-pool $POOL} \
    >>"$tmp/log/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 6000); do
    [[ -s "$portfile" ]] && break
    sleep 0.01
  done
  if [[ ! -s "$portfile" ]]; then
    echo "tasktraild ($name) did not start; log:" >&2
    tail -20 "$tmp/log/$name.log" >&2
    exit 1
  fi
  "$bench" --server "127.0.0.1:$(cat "$portfile")" --probe --quiet --deadline 10
}

# cpu_ticks PID...: the CPU time, in clock ticks, the processes used so far,
# with their children that exited (a PostgreSQL backend's, once it ends).
cpu_ticks() {
  local pid total=0
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    # After the command: utime, stime, cutime and cstime at 11-14.
    read -r -a fields < <(sed 's/^.*) //' "/proc/$pid/stat")
    total=$((total + fields[11] + fields[12] + fields[13] + fields[14]))
  done
  echo "$total"
}

# The PostgreSQL server's processes: the postmaster and its children.
server_pids() {
  local postmaster
  postmaster=$(head -1 "$tmp/data/postmaster.pid")
  echo "$postmaster" $(pgrep -P "$postmaster" || true)
}

stop_replicas() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}

status=0
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)  (cores: $(nproc))"
echo "PostgreSQL: $("$pg_bin/postgres" --version)"
for round in $(seq 1 "$rounds"); do
  db="bench$round"
  psql -d postgres -c "CREATE DATABASE $db"

  # 1. One replica.
  start_replica "$db" one
  one="127.0.0.1:$(cat "$tmp/one.port")"
  "$bench" --server "$one" --json --quiet --preload "$preload" \
    --save-tasks "$tmp/ids.$round" --workload none >/dev/null || status=1
  for workload in submit get event; do
    server_before=$(cpu_ticks $(server_pids))
    daemon_before=$(cpu_ticks "${pids[0]}")
    "$bench" --server "$one" --json --quiet --load-tasks "$tmp/ids.$round" \
      --workload "$workload" --concurrency "$conc" \
      --duration "$duration" >>"$tmp/one.$round.jsonl" || status=1
    echo "$workload $(($(cpu_ticks "${pids[0]}") - daemon_before))" \
      "$(($(cpu_ticks $(server_pids)) - server_before))" >>"$tmp/cpu.$round.txt"
  done
  stop_replicas

  # 2. pgbench, with rows the size of those tasktraild wrote.
  read -r snapshot_bytes event_bytes < <(psql -d "$db" -At -F ' ' -c \
    "SELECT (SELECT avg(length(snapshot))::int FROM tasktrail.tasks),
            (SELECT avg(length(event))::int FROM tasktrail.task_events
              WHERE seq = 1)")
  cat >"$tmp/submit.sql" <<EOF
\\set k random(1, 9000000000000000000)
BEGIN;
INSERT INTO tasktrail.dedup_records (dedup_key, task_id)
  VALUES (int8send(:k), 'pgb-' || :k) ON CONFLICT DO NOTHING;
INSERT INTO tasktrail.tasks (task_id, account_id, model, state, request_id,
    create_time, update_time, last_seq, retention_unix_micros, snapshot)
  VALUES ('pgb-' || :k, 'acct-' || (:k % 1000), 'veo-3', 1, 'req-' || :k,
    now(), now(), 1, 0, decode(repeat('ab', $snapshot_bytes), 'hex'))
  ON CONFLICT DO NOTHING;
INSERT INTO tasktrail.task_events (task_id, seq, event)
  VALUES ('pgb-' || :k, 1, decode(repeat('cd', $event_bytes), 'hex'))
  ON CONFLICT DO NOTHING;
COMMIT;
EOF
  server_before=$(cpu_ticks $(server_pids))
  "$pg_bin/pgbench" -n -h 127.0.0.1 -p "$pg_port" -U tasktrail \
    -c "$conc" -j 2 -T "$duration" -f "$tmp/submit.sql" "$db" \
    >"$tmp/pgbench.$round.txt" 2>&1 || status=1
  echo "pgbench 0 $(($(cpu_ticks $(server_pids)) - server_before))" \
    >>"$tmp/cpu.$round.txt"
  echo "round $round pgbench: rows of $snapshot_bytes + $event_bytes bytes" >&2

  # 3. Two replicas on the same database, half the calls each.
  start_replica "$db" a
  start_replica "$db" b
  half=$(((conc + 1) / 2))
  for workload in submit get; do
    clients=()
    for name in a b; do
      "$bench" --server "127.0.0.1:$(cat "$tmp/$name.port")" --json --quiet \
        --load-tasks "$tmp/ids.$round" --workload "$workload" \
        --concurrency "$half" --duration "$duration" \
        >>"$tmp/two.$round.$name.jsonl" &
      clients+=($!)
    done
    for client in "${clients[@]}"; do wait "$client" || status=1; done
  done
  stop_replicas
  echo "round $round done; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done

"$python" - "$tmp" "$rounds" "$(getconf CLK_TCK)" <<'EOF'
import json, re, statistics, sys
tmp, rounds, tick_us = sys.argv[1], int(sys.argv[2]), 1e6 / int(sys.argv[3])

def runs(path):
    with open(path) as lines:
        return {r["workload"]: r for r in map(json.loads, lines)}

def cpu(path):
    with open(path) as lines:
        return {w: (int(d), int(s)) for w, d, s in map(str.split, lines)}

submit_ratio, two_submit, two_get, server_cpu_ratio = [], [], [], []
for rnd in range(1, rounds + 1):
    one = runs(f"{tmp}/one.{rnd}.jsonl")
    ticks = cpu(f"{tmp}/cpu.{rnd}.txt")
    for w in ("submit", "get", "event"):
        r = one[w]
        calls = r["calls"]
        daemon, server = ticks[w]
        per_call = (f"  CPU/call: tasktraild {daemon * tick_us / calls:5.0f}us "
                    f"PostgreSQL {server * tick_us / calls:5.0f}us"
                    if calls else "")
        print(f"round {rnd} one replica  {w:<6} c={r['concurrency']}: "
              f"{r['calls_per_second']:8.0f} calls/s  p50={r['p50_us']}us "
              f"p99={r['p99_us']}us errors={r['errors']}{per_call}")
    text = open(f"{tmp}/pgbench.{rnd}.txt").read()
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text)
    lat = re.search(r"latency average = ([0-9.]+) ms", text)
    done = re.search(r"number of transactions actually processed: ([0-9]+)", text)
    pg = float(tps.group(1)) if tps else 0.0
    pg_tx = int(done.group(1)) if done else 0
    pg_cpu = ticks["pgbench"][1] * tick_us / pg_tx if pg_tx else 0.0
    print(f"round {rnd} pgbench      submit transaction: {pg:8.0f} tx/s "
          f"latency average {lat.group(1) if lat else '?'} ms  "
          f"CPU/tx: PostgreSQL {pg_cpu:5.0f}us")
    if pg:
        submit_ratio.append(one["submit"]["calls_per_second"] / pg)
    submit_calls = one["submit"]["calls"]
    if pg_cpu and submit_calls:
        server_cpu_ratio.append(
            ticks["submit"][1] * tick_us / submit_calls / pg_cpu)
    a, b = runs(f"{tmp}/two.{rnd}.a.jsonl"), runs(f"{tmp}/two.{rnd}.b.jsonl")
    for w, into in (("submit", two_submit), ("get", two_get)):
        total = a[w]["calls_per_second"] + b[w]["calls_per_second"]
        errors = a[w]["errors"] + b[w]["errors"]
        print(f"round {rnd} two replicas {w:<6} c={a[w]['concurrency']}+"
              f"{b[w]['concurrency']}: {total:8.0f} calls/s  p50={a[w]['p50_us']}/"
              f"{b[w]['p50_us']}us p99={a[w]['p99_us']}/{b[w]['p99_us']}us "
              f"errors={errors}")
        into.append(total / one[w]["calls_per_second"])

def line(name, values, target=None):
    text = (f"{name}: median {statistics.median(values):.2f} (rounds: "
            f"{', '.join(f'{v:.2f}' for v in values)})")
    if target is not None:
        ok = statistics.median(values) >= target
        text += f"  target >= {target}: {'PASS' if ok else 'BELOW'}"
    print(text)

print()
if submit_ratio:
    line("submit through tasktraild / pgbench's submit transaction",
         submit_ratio, 1.0)
if server_cpu_ratio:
    line("PostgreSQL CPU per submit through tasktraild / per pgbench "
         "transaction", server_cpu_ratio)
line("submit, two replicas / one", two_submit)
line("get, two replicas / one", two_get)
EOF
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
