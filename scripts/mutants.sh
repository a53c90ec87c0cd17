#!/usr/bin/env bash
# Mutation testing of scalelab's core with cargo-mutants: plants small bugs in
# the code, one at a time, and checks that some test fails for each.
#
# The core is split into scopes, each with the tests that should catch its
# bugs (running the whole suite per mutant would take days on 2 cores):
#
#   kernel    src/workload/               unit tests
#   io        src/workload/io.rs, src/backends/task_exec.rs (the task plan)
#                                         unit tests, backends
#   wire      src/wire.rs                 unit tests, wire property tests, bus
#   report    src/report/ src/metrics/    unit tests, backends, gui_app (exports, history)
#   engine    src/engine/                 unit tests, backends, cancel, models
#   spec      src/spec.rs (every check of a run spec: the CLI's, the form's, the API's)
#                                         unit tests, input_props, backends, serve_api
#   backends  src/backends/ (ledger, bus) unit tests, backends, bus, bus_curve, cancel, models
#   form      src/gui/controls.rs         unit tests, gui_app, gui_live, input_props
#
# usage: scripts/mutants.sh SCOPE [K/N] [--in-place]
#        scripts/mutants.sh plan
#   plan: each scope's mutants today (cargo mutants --list), the minutes per
#   mutant its recorded runs took on this machine, and the shards N that keep
#   each shard near 40 minutes; run them as SCOPE 0/N ... (N-1)/N.
#   K/N: the K-th of N shards, counted from 0 as cargo-mutants counts them
#   (engine 0/2 and engine 1/2 are the whole engine scope).
#   --file PATH: only that file of the scope (repeatable), with the scope's tests.
#   --re REGEX: only the mutants whose names match (cargo-mutants --re), to
#   rerun survivors once tests for them are written.
#   e.g. scripts/mutants.sh wire; scripts/mutants.sh backends 2/4;
#        scripts/mutants.sh backends --file src/backends/ledger.rs
# Without --in-place cargo-mutants works in a copy of the tree (a first full
# build there takes minutes); --in-place mutates this tree (use a clean clone).
# A run interrupted in the middle of a build can leave rustc's incremental cache
# inconsistent: the next baseline then fails to link ("undefined hidden
# symbol"). `cargo clean -p scalelab` in that tree mends it.
# Results: mutants.out/<scope>[-files][-shard]/ (cargo-mutants' outcomes.json,
# caught.txt, missed.txt, ...) and record.json, the run as the docs record it:
# `scripts/mutants_report.py add mutants.out/.../record.json` puts it in
# docs/mutants/runs.jsonl and regenerates the scores in docs/RELIABILITY.md and
# BENCHMARKS.md. A summary row is printed too.
set -euo pipefail
cd "$(dirname "$0")/.."

scope=${1:?usage: scripts/mutants.sh SCOPE [K/N] [--file PATH ...] [--re REGEX] [--in-place] | plan}
shift

# Sets `files` and `tests` for a scope.
scope_files() {
  case "$1" in
    kernel) files=(src/workload/cpu.rs src/workload/io.rs); tests=(--lib) ;;
    io) files=(src/workload/io.rs src/backends/task_exec.rs); tests=(--lib --test=backends) ;;
    wire) files=(src/wire.rs); tests=(--lib --test=bus_wire_props --test=bus) ;;
    report) files=(src/report/mod.rs src/report/event.rs src/report/export.rs src/report/history.rs
      src/metrics/clocks.rs src/metrics/cores.rs src/metrics/meter.rs src/metrics/observer.rs
      src/metrics/procinfo.rs)
      tests=(--lib --test=backends --test=gui_app) ;;
    engine) files=(src/engine/mod.rs src/engine/calibrate.rs src/engine/sampler.rs)
      tests=(--lib --test=backends --test=cancel --test=models) ;;
    spec) files=(src/spec.rs); tests=(--lib --test=input_props --test=backends --test=serve_api) ;;
    backends) files=(src/backends/*.rs src/backends/bus/*.rs)
      tests=(--lib --test=backends --test=bus --test=bus_curve --test=cancel --test=models) ;;
    form) files=(src/gui/controls.rs); tests=(--lib --test=gui_app --test=gui_live --test=input_props) ;;
    *) echo "mutants.sh: unknown scope $1 (kernel, io, wire, report, engine, spec, backends, form)" >&2; exit 2 ;;
  esac
}

if [ "$scope" = plan ]; then
  if ! cargo mutants --version >/dev/null 2>&1; then
    cargo install --locked cargo-mutants
  fi
  for s in kernel io wire report engine spec backends form; do
    scope_files "$s"
    list=()
    for f in "${files[@]}"; do list+=(--file "$f"); done
    echo "$s $(cargo mutants --list "${list[@]}" 2>/dev/null | wc -l)"
  done | python3 scripts/mutants_report.py plan
  exit 0
fi
shard=
in_place=()
only=()
re=()
while [ $# -gt 0 ]; do
  case "$1" in
    --in-place) in_place=(--in-place) ;;
    --re) re+=(--re "${2:?mutants.sh: --re needs a pattern}"); shift ;;
    --file) only+=("${2:?mutants.sh: --file needs a path}"); shift ;;
    [0-9]*/[0-9]*) shard=$1 ;;
    *) echo "mutants.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

scope_files "$scope"

# --file narrows a scope to some of its files, run with the scope's tests.
if [ ${#only[@]} -gt 0 ]; then
  for f in "${only[@]}"; do
    case " ${files[*]} " in
      *" $f "*) ;;
      *) echo "mutants.sh: $f is not in the $scope scope (${files[*]})" >&2; exit 2 ;;
    esac
  done
  files=("${only[@]}")
fi

if ! cargo mutants --version >/dev/null 2>&1; then
  cargo install --locked cargo-mutants
fi

name=$scope
for f in "${only[@]}"; do name+="-$(basename "$f" .rs)"; done
if [ ${#re[@]} -gt 0 ]; then name+="-rerun"; fi
out="mutants.out/$name${shard:+-${shard/\//of}}"
mkdir -p "$out"
args=(--no-shuffle --output "$out" --timeout-multiplier 3)
for f in "${files[@]}"; do args+=(--file "$f"); done
if [ -n "$shard" ]; then args+=(--shard "$shard"); fi
if [ ${#re[@]} -gt 0 ]; then args+=("${re[@]}"); fi

# The scope's test targets go to every cargo call, the build's too: after `--`
# they would reach only `cargo test`, and each mutant's build would link all of
# the suite's 30 test binaries, not the few it runs.
for t in "${tests[@]}"; do args+=("--cargo-arg=$t"); done

# cargo-mutants exits 2 when mutants were missed, 3 on timeouts: the summary says which.
set +e
cargo mutants "${args[@]}" "${in_place[@]}"
status=$?
set -e
# 0: all caught; 2: some missed; 3: some timed out. Anything else (a baseline
# that does not build or pass, a bad argument) is no result to record.
if [ $status -ne 0 ] && [ $status -ne 2 ] && [ $status -ne 3 ]; then
  echo "mutants.sh: cargo mutants failed (exit $status): nothing recorded" >&2
  exit $status
fi

label=$scope
if [ ${#only[@]} -gt 0 ]; then label+=" (${only[*]})"; fi
if [ ${#re[@]} -gt 0 ]; then label+=", rerun of mutants matching ${re[*]:1}"; fi
# The run as a record for the docs (scripts/mutants_report.py add it), and its
# summary row.
scripts/mutants_report.py record "$out/mutants.out/outcomes.json" "$label" "$shard" \
  "$(git rev-parse --short HEAD)" > "$out/record.json"
echo "recorded in $out/record.json; add it to the docs with: scripts/mutants_report.py add $out/record.json" >&2
python3 -c 'import json, sys; sys.path.insert(0, "scripts"); import mutants_report as m; print(m.row(json.load(open(sys.argv[1]))))' "$out/record.json"
if [ -s "$out/mutants.out/missed.txt" ]; then
  echo "missed:" >&2
  cat "$out/mutants.out/missed.txt" >&2
fi
