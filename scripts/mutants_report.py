#!/usr/bin/env python3
"""The mutation scores in the docs, generated from recorded runs, never typed.

    mutants_report.py record OUTCOMES_JSON LABEL SHARD COMMIT > RECORD_JSON
        one run of scripts/mutants.sh (which calls this) as a record: its
        counts, score, time and the names of the mutants that survived;
    mutants_report.py add RECORD_JSON...
        appends records to docs/mutants/runs.jsonl, then writes the block
        between <!-- mutants:begin/end --> in docs/RELIABILITY.md and
        BENCHMARKS.md from it;
    mutants_report.py write
        writes that block again (after docs/mutants/reasons.tsv changes);
    mutants_report.py block
        prints it;
    mutants_report.py plan < "SCOPE COUNT" lines
        (scripts/mutants.sh plan) the shards that keep each scope's runs near
        SHARD_MINUTES, at the minutes per mutant its recorded runs took.

docs/mutants/reasons.tsv says what became of each survivor: a test that now
kills it, or why it cannot matter. A survivor is keyed by its name without its
line and column (`src/spec.rs: replace / with * in soak_spec`), so one line
covers it in every run. A survivor with no line there shows as "no test yet"; a
line that says **no test yet** itself (for one of several mutants sharing a
name) counts one such survivor too.

Each run's last column weighs its survivors by their fates: a survivor a test
now kills counts as caught, an equivalent one (or one whose code is gone) leaves
the count, and one that matters only for speed or layout stays missed. A line
may give its fates in a third column (`killed equivalent`), for a name that
covers mutants with different fates; where a run has fewer of them than the
line names, the least favourable are counted.
"""
import datetime
import json
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
RUNS = os.path.join(ROOT, "docs/mutants/runs.jsonl")
REASONS = os.path.join(ROOT, "docs/mutants/reasons.tsv")
DOCS = [os.path.join(ROOT, "docs/RELIABILITY.md"), os.path.join(ROOT, "BENCHMARKS.md")]


def key(name):
    """A mutant's name without its line and column."""
    return re.sub(r":\d+:\d+:", ":", name, count=1)


def record(outcomes_path, label, shard, commit):
    doc = json.load(open(outcomes_path))
    counts, survivors = {}, []
    for o in doc["outcomes"]:
        if o["scenario"] == "Baseline":
            continue
        counts[o["summary"]] = counts.get(o["summary"], 0) + 1
        if o["summary"] == "MissedMutant":
            survivors.append(o["scenario"]["Mutant"]["name"])
    caught, missed = counts.get("CaughtMutant", 0), counts.get("MissedMutant", 0)
    timeouts, unviable = counts.get("Timeout", 0), counts.get("Unviable", 0)
    start = datetime.datetime.fromisoformat(doc["start_time"][:19])
    # A run stopped before its end has no end time: count to now.
    end = (
        datetime.datetime.fromisoformat(doc["end_time"][:19])
        if doc.get("end_time")
        else datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    )
    return {
        "label": label,
        "shard": shard,
        "commit": commit,
        "date": doc["start_time"][:10],
        "minutes": round((end - start).total_seconds() / 60),
        "viable": caught + missed + timeouts,
        "caught": caught,
        "timeouts": timeouts,
        "missed": missed,
        "unviable": unviable,
        "survivors": survivors,
        "note": "",
    }


def score(r):
    return 100.0 * (r["caught"] + r["timeouts"]) / r["viable"] if r["viable"] else 0.0


def row(r, reasons=None):
    reasons = load_reasons() if reasons is None else reasons
    if r["missed"] and len(r.get("survivors") or []) != r["missed"]:
        after = "?"  # the run did not keep its survivors' names
    else:
        caught, viable = weighed(r, reasons)
        after = f"{100.0 * caught / viable:.1f} %" if viable else "–"
    name = r["label"] + (" " + r["shard"] if r["shard"] else "")
    if r.get("note"):
        name += f" ({r['note']})"
    minutes = f"{r['minutes']}" if r.get("minutes") is not None else "?"
    return (
        f"| {name} | {r['commit']} | {r['date']} | {minutes} | {r['viable']} | {r['caught']} "
        f"| {r['timeouts']} | {r['missed']} | {r['unviable']} | {score(r):.1f} % | {after} |"
    )


def load_runs():
    if not os.path.exists(RUNS):
        return []
    return [json.loads(line) for line in open(RUNS) if line.strip()]


def load_reasons():
    """{key: (reason, [fates] or None)}."""
    reasons = {}
    if os.path.exists(REASONS):
        for line in open(REASONS):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            k, why, *fates = line.split("\t")
            reasons[k.strip()] = (why.strip(), fates[0].split() if fates else None)
    return reasons


# A reason's first word, as a fate; the order is from least to most favourable.
FATES = ["none", "justified", "equivalent", "killed"]
FIRST_WORD = {
    "killed": "killed",
    "moved": "killed",  # the code moved and its new place is tested
    "equivalent": "equivalent",
    "gone": "equivalent",  # the code it mutated is no longer there
    "speed": "justified",
    "timing": "justified",
    "poll": "justified",
    "layout": "justified",
}


def fates_of(reason, n):
    """The fates of n survivors that share one reason line."""
    if reason is None or "**no test yet**" in reason[0]:
        return ["none"] * n
    why, listed = reason
    if listed is None:
        first = re.match(r"[a-z]+", why)
        fate = FIRST_WORD.get(first.group(0) if first else "", "none")
        return [fate] * n
    listed = sorted(listed, key=FATES.index)
    if n <= len(listed):
        return listed[:n]
    return listed + [listed[-1]] * (n - len(listed))


def weighed(r, reasons):
    """(caught, viable) once the run's survivors' fates are counted."""
    caught, viable = r["caught"] + r["timeouts"], r["viable"]
    counts = {}
    for s in r.get("survivors") or []:
        counts[key(s)] = counts.get(key(s), 0) + 1
    for k, n in counts.items():
        for fate in fates_of(reasons.get(k), n):
            if fate == "killed":
                caught += 1
            elif fate == "equivalent":
                viable -= 1
    return caught, viable


def block():
    runs, reasons = load_runs(), load_reasons()
    out = [
        "Generated by `scripts/mutants_report.py` from the runs `scripts/mutants.sh` recorded "
        "(docs/mutants/runs.jsonl) and what became of each survivor (docs/mutants/reasons.tsv). "
        "Each run is `scripts/mutants.sh SCOPE [K/N] [--file PATH] --in-place` at the commit shown, "
        "on this project's 2-core machine; a rerun is `cargo mutants --in-place --re ...` on the "
        "survivors' functions, with the scope's tests. A timeout counts as caught, as cargo-mutants "
        "counts it: the mutant made the tests run past 3 × the baseline. The last column counts "
        "what became of the run's survivors: those a test now kills as caught, equivalent ones "
        "out of the count, those that matter only for speed or layout as missed.",
        "",
        "| run | commit | date | minutes | viable | caught | timeouts | missed | unviable "
        "| caught or timed out | with its survivors' fates |",
        "|:--|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    out += [row(r, reasons) for r in runs]
    unexplained = 0
    listed = [r for r in runs if r.get("survivors")]
    if listed:
        out += ["", "Survivors of the runs that kept their names, and what became of each:"]
    for r in listed:
        name = r["label"] + (" " + r["shard"] if r["shard"] else "")
        out += ["", f"- **{name}** at {r['commit']}:"]
        seen = {}
        for s in r["survivors"]:
            seen[key(s)] = seen.get(key(s), 0) + 1
        for k, n in seen.items():
            why = reasons.get(k, (None,))[0]
            if why is None:
                unexplained += n
                why = "**no test yet**"
            elif "**no test yet**" in why:
                # Mutants that share a name, of which one still has no test.
                unexplained += 1
            times = f" (× {n})" if n > 1 else ""
            out.append(f"  - `{k}`{times}: {why}")
    out += [
        "",
        f"Survivors with neither a test nor a reason: {unexplained}. The runs before the spec "
        "scope's did not keep their survivors' names: see \"Earlier runs' survivors\" in "
        "docs/RELIABILITY.md.",
    ]
    return "\n".join(out)


SHARD_MINUTES = 40


def pace(runs, scope):
    """Median minutes per mutant (unviable ones included: each is a build)
    over the scope's recorded runs that kept their time (every scope's when
    `scope` is None)."""
    rates = sorted(
        r["minutes"] / (r["viable"] + r["unviable"])
        for r in runs
        if (scope is None or r["label"].split(" ")[0].rstrip(",") == scope)
        and r.get("minutes")
        and r["viable"] + r["unviable"] >= 5
    )
    return rates[len(rates) // 2] if rates else None


def plan(lines):
    runs = load_runs()
    out = [
        f"| scope | mutants | minutes per mutant (median of its runs) | shards of about {SHARD_MINUTES} min |",
        "|:--|--:|--:|--:|",
    ]
    for line in lines:
        scope, count = line.split()
        count = int(count)
        p, said = pace(runs, scope), ""
        if p is None:
            # No timed run of its own: every scope's median.
            p, said = pace(runs, None), " (every scope's)"
        shards = max(1, -(-round(count * p) // SHARD_MINUTES))
        out.append(f"| {scope} | {count} | {p:.2f}{said} | {shards} |")
    return "\n".join(out)


def write_docs():
    text = block()
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts/record.py"), "mutants", *DOCS],
        input=text, text=True, check=True,
    )


def main(argv):
    if len(argv) >= 5 and argv[0] == "record":
        print(json.dumps(record(argv[1], argv[2], argv[3], argv[4])))
    elif len(argv) >= 2 and argv[0] == "add":
        os.makedirs(os.path.dirname(RUNS), exist_ok=True)
        with open(RUNS, "a") as f:
            for path in argv[1:]:
                r = json.load(open(path))
                f.write(json.dumps(r) + "\n")
                print(row(r))
        write_docs()
    elif argv == ["write"]:
        write_docs()
    elif argv == ["block"]:
        print(block())
    elif argv == ["plan"]:
        print(plan([line for line in sys.stdin if line.strip()]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
