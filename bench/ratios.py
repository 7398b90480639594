"""Target ratios of bench/run.sh's reports.

Each ratio is computed per round and printed as the median of the rounds'
own values with their range, beside its target (informational only: speeds
never change run.sh's exit status).
"""

import json
import statistics


def load_runs(path):
    """The bench's JSON lines in `path`, keyed by (workload, concurrency)."""
    runs = {}
    with open(path) as lines:
        for line in lines:
            run = json.loads(line)
            runs[(run["workload"], run.get("concurrency"))] = run
    return runs


def verdict(value, op, target):
    """'target OP TARGET  PASS' or '... BELOW'; op is '<=', '>=' or '<'."""
    ok = {"<=": value <= target, ">=": value >= target, "<": value < target}[op]
    return f"target {op} {target:<4}  {'PASS' if ok else 'BELOW'}"


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
