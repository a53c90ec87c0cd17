#!/usr/bin/env python3
"""Formats `scalelab soak` / `scalelab faults` JSON (on stdin) as Markdown for BENCHMARKS.md."""
import json
import sys

v = json.load(sys.stdin)
if sys.argv[1] == "soak":
    print("| | threads | fds | children | RSS (KiB) |")
    print("|---|---|---|---|---|")
    for name, r in (
        ("after the first run", v["after_first_run"]),
        ("after the first round (every backend x workload once)", v["after_first_round"]),
        ("halfway", v["halfway"]),
        (f"after {v['runs']} runs", v["after_soak"]),
    ):
        print(f"| {name} | {r['threads']} | {r['fds']} | {r['children']} | {r['rss_kib']} |")
    print()
    print(
        f"Failures: {len(v['failures'])}; resident memory grew "
        f"{v['rss_growth_second_half_percent']:.1f} % over the second half (a leak keeps growing there), "
        f"{v['rss_growth_percent']:.1f} % since the first round ({v['rss_growth_since_first_run_percent']:.1f} % since the very first run, "
        "which comes before libzmq and tokio first initialise themselves)."
    )
else:
    print(
        f"{v['cases']} cases: {v['ok']} ok with the right sums, {v['cancelled']} cancelled, "
        f"{v['failed']} failed with a reason; {v['workers_killed']} worker processes killed; "
        f"slowest ending {v['slowest_ending_ms']:.0f} ms; cases that broke the promise: {len(v['bad'])}."
    )
