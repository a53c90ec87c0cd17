#!/usr/bin/env python3
"""Formats `scalelab soak` / `scalelab faults` JSON (on stdin) as Markdown for BENCHMARKS.md."""
import json
import sys

v = json.load(sys.stdin)
if sys.argv[1] == "soak":
    a, b = v["after_first_run"], v["after_soak"]
    print("| | threads | fds | children | RSS (KiB) |")
    print("|---|---|---|---|---|")
    for name, r in (("after the first run", a), (f"after {v['runs']} runs", b)):
        print(f"| {name} | {r['threads']} | {r['fds']} | {r['children']} | {r['rss_kib']} |")
    print()
    print(f"Failures: {len(v['failures'])}; resident memory grew {v['rss_growth_percent']:.1f} %.")
else:
    print(
        f"{v['cases']} cases: {v['ok']} ok with the right sums, {v['cancelled']} cancelled, "
        f"{v['failed']} failed with a reason; {v['workers_killed']} worker processes killed; "
        f"slowest ending {v['slowest_ending_ms']:.0f} ms; cases that broke the promise: {len(v['bad'])}."
    )
