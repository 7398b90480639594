"""Target ratios of bench/run.sh's reports.

Each ratio is computed per round and printed as the median of the rounds'
own values with their range, beside its target (informational only: speeds
never change run.sh's exit status). The A B B A comparisons (--watchers,
--export, --purge, --metrics) read their runs with abba_records and print
with round_ratios, print_round_ratio and print_sides.
"""

import json
import math
import re
import statistics


def load_runs(path):
    """The bench's JSON lines in `path`, keyed by (workload, concurrency)."""
    runs = {}
    with open(path) as lines:
        for line in lines:
            run = json.loads(line)
            runs[(run["workload"], run.get("concurrency"))] = run
    return runs


def outcome(value, op, target):
    """'PASS' when `value OP target` holds, else 'BELOW'; op is '<=', '>=' or '<'."""
    ok = {"<=": value <= target, ">=": value >= target, "<": value < target}[op]
    return "PASS" if ok else "BELOW"


def verdict(value, op, target):
    """'target OP TARGET  PASS' or '... BELOW'; op is '<=', '>=' or '<'."""
    return f"target {op} {target:<4}  {outcome(value, op, target)}"


def print_checks(checks, rounds, width=42):
    """Prints each check of `checks`, (name, ratio, op, target), over `rounds`.

    ratio(round) gives one round's value; op None means no target (the value
    is printed so that its cost stays visible).
    """
    if len(rounds) > 1:
        print(f"median of {len(rounds)} rounds (min-max of the rounds' own ratios)")
    for name, ratio, op, target in checks:
        values = [ratio(r) for r in rounds]
        value = statistics.median(values)
        spread = f"  ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""
        tail = "(no target)" if op is None else verdict(value, op, target)
        print(f"{name:<{width}} {value:8.2f}  {tail}{spread}")


# The file names of bench/run.sh's abba_rounds: NAME.ROUND.K.SIDE.jsonl.
_ABBA_FILE = re.compile(r"\.(\d+)\.\d+\.([AB])\.jsonl$")


def abba_records(paths):
    """(round, side, records) for each run of bench/run.sh's abba_rounds.

    `paths` are the runs' files in order; records are the JSON lines of one.
    Side A is the baseline, side B the variant.
    """
    for path in paths:
        match = _ABBA_FILE.search(path)
        with open(path) as lines:
            records = [json.loads(line) for line in lines]
        yield int(match.group(1)), match.group(2), records


def round_ratios(runs, value):
    """The B / A ratio of each round that has both sides, in round order.

    `runs` maps (round, side) to that side's runs in that round; a round's
    ratio is the mean of value(run) over its B runs divided by the mean over
    its A runs (at least 1).
    """
    ratios = []
    for rnd in sorted({rnd for rnd, _ in runs}):
        a, b = runs.get((rnd, "A")), runs.get((rnd, "B"))
        if a and b:
            ratios.append(statistics.mean(map(value, b)) /
                          max(statistics.mean(map(value, a)), 1))
    return ratios


def pooled_percentile(records, q):
    """The q-quantile of the latencies of every call of `records` together.

    Each record is a run's JSON line with its histogram ("latency_us":
    [[midpoint, count], ...]); the rule is LatencyHistogram::Percentile's
    (the midpoint of the bucket that holds the ceil(q * calls)-th smallest
    latency, never above the largest), so one record gives its own p99_us.
    None when the records hold no call.
    """
    counts = {}
    for record in records:
        for midpoint, count in record["latency_us"]:
            counts[midpoint] = counts.get(midpoint, 0) + count
    total = sum(counts.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    largest = max(record["max_us"] for record in records)
    seen = 0
    for midpoint in sorted(counts):
        seen += counts[midpoint]
        if seen >= rank:
            return min(midpoint, largest)
    return largest


def print_pooled_ratio(name, runs, q, op, target):
    """Prints the q-quantile of every B call over that of every A call.

    `runs` maps (round, side) to that side's runs in that round, as for
    round_ratios; all rounds are taken together, so that a stall that holds
    up a tenth of a percent of the calls moves no p99, however it falls
    across the rounds. Nothing when a side has no call.
    """
    def side(wanted):
        return pooled_percentile(
            [r for (_, s), records in runs.items() if s == wanted for r in records], q)

    a, b = side("A"), side("B")
    if not a or not b:
        return
    ratio = b / a
    print(f"{name}: {b / 1000:.2f} / {a / 1000:.2f} ms = {ratio:.2f}"
          f"  target {op} {target}: {outcome(ratio, op, target)}")


def print_round_ratio(name, ratios, op, target, digits=2):
    """Prints the median of the rounds' `ratios` against its target.

    'NAME: median M (rounds: R1, R2)  target OP TARGET: PASS' (or BELOW);
    nothing when there is no ratio. op is '<=', '>=' or '<'.
    """
    if not ratios:
        return
    med = statistics.median(ratios)
    rounds = ", ".join(f"{v:.{digits}f}" for v in ratios)
    print(f"{name}: median {med:{digits + 3}.{digits}f} (rounds: {rounds})"
          f"  target {op} {target}: {outcome(med, op, target)}")


def print_sides(name, without, with_, unit, with_label, digits=1):
    """Prints the median and range of a value without and with the variant."""
    if not without or not with_:
        return

    def side(values):
        return (f"median {statistics.median(values):8.{digits}f} {unit:<7}"
                f" (range {min(values):.0f}-{max(values):.0f})")

    print(f"{name:<17} without: {side(without)}   {with_label}: {side(with_)}")
