#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every decoder of outside
# input: wire frames, the saved state, the --run list, the form's fields, the
# API's run request bodies.
#
# cargo-fuzz's instrumentation flags are nightly-only; this machine's stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1, set here for this build
# alone (the product's own build never sees it). Runs each target for
# SECONDS and prints a Markdown row per target: executions, coverage
# (libFuzzer's edge count), corpus size, crashes. A crash leaves its input in
# fuzz/artifacts/TARGET/ and makes the script exit 1: turn it into a test.
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 60 s, every target)
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(wire_frame saved_state run_list form_fields api_body)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
crashed=0
echo "| target | seconds | executions | coverage (edges) | corpus | crashes |"
echo "|:--|--:|--:|--:|--:|--:|"
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  set +e
  cargo fuzz run --fuzz-dir fuzz --sanitizer none "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 >"$logs/$t.log" 2>&1
  status=$?
  set -e
  python3 - "$logs/$t.log" "$t" "$secs" "$status" "fuzz/corpus/$t" <<'PY'
import os, re, sys
log, target, secs, status, corpus = open(sys.argv[1], errors="replace").read(), *sys.argv[2:]
execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
cov = re.findall(r"cov: (\d+)", log)
crashes = 0 if status == "0" else 1
print(f"| {target} | {secs} | {execs[-1] if execs else '?'} | {cov[-1] if cov else '?'} "
      f"| {len(os.listdir(corpus))} | {crashes} |")
PY
  if [ "$status" != 0 ]; then
    crashed=1
    tail -30 "$logs/$t.log" >&2
  fi
done
exit $crashed
