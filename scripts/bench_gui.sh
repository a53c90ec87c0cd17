#!/usr/bin/env bash
# Frame timings of the desktop app while every core is saturated.
#
# Runs the scripted mode in a real window under Xvfb: a threads run, then a
# processes run, each with 2 x cores CPU-bound workers, sized (by a quick
# calibration run) to keep the machine busy for about SECONDS_PER_RUN each,
# and prints the app's frame stats as JSON on stdout. Diagnostics go to stderr.
#
# usage: scripts/bench_gui.sh [SECONDS_PER_RUN]    (default 6; 10 s in all at least)
set -euo pipefail
cd "$(dirname "$0")/.."

per_run_s=${1:-6}
cores=$(nproc)
workers=$((2 * cores))
tasks=$((4 * workers))

cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/scalelab"

# Calibrate: how many numbers per second the whole machine draws right now.
probe=50000000
wall=$("$bin" run --backend threads --workers "$cores" --tasks "$cores" --numbers "$probe" --format json |
  sed -E 's/.*"wall_s":([0-9.eE+-]+).*/\1/')
numbers=$(awk -v s="$per_run_s" -v c="$cores" -v p="$probe" -v w="$wall" -v t="$tasks" \
  'BEGIN { printf "%d", s * c * p / w / t }')

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "machine: $cores cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "runs: threads:$workers then processes:$workers, $tasks tasks x $numbers numbers each" >&2

start=$(date +%s.%N)
xvfb-run -a -s "-screen 0 1600x1000x24" \
  "$bin" gui --run "threads:$workers,processes:$workers" --tasks "$tasks" --numbers "$numbers" \
  --exit --frame-stats "$out/frames.json"
end=$(date +%s.%N)

elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
echo "window open for $elapsed s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
cat "$out/frames.json"
if awk -v e="$elapsed" 'BEGIN { exit !(e < 10) }'; then
  echo "bench_gui: the runs lasted less than 10 s; pass a larger SECONDS_PER_RUN" >&2
  exit 1
fi
