#!/usr/bin/env bash
# Does the window change what it measures? The same runs from `scalelab run`
# and from the desktop app's real window (scripted mode, under Xvfb with
# Mesa's software GL), side by side, in one invocation.
#
# Runs threads and processes with workers = cores and 2 x cores, each sized
# (by a quick calibration) to last about SECONDS on the command line, REPEAT
# times, alternating which side goes first; prints a Markdown table of the
# medians and the ratios the app promises (window wall <= 1.10 x the CLI's,
# window %CPU >= 0.9 x the CLI's), plus what the window and the X server
# themselves used, and the frame build p99 (target: 4 ms). Exits 1 when a
# target is missed.
#
# usage: scripts/fidelity.sh [SECONDS] [REPEAT]      (defaults: 5, 3)
#        REFRESH=HZ scripts/fidelity.sh ...            (the window's refresh; default: the app's)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-5}
repeat=${2:-3}
cores=$(nproc)

cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/scalelab"
out=$(mktemp -d)
xvfb_pid=
cleanup() {
  if [ -n "$xvfb_pid" ]; then kill "$xvfb_pid" 2>/dev/null || true; fi
  rm -rf "$out"
}
trap cleanup EXIT

# Calibrate: numbers per second with every core busy, right now.
probe=100000000
wall=$("$bin" run --backend threads --workers "$cores" --tasks "$cores" --numbers "$probe" --format json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["wall_s"])')
tasks=$((4 * cores))
numbers=$(python3 -c "print(int(round($seconds * $cores * $probe / $wall / $tasks, -6)))")
configs="threads:$cores threads:$((2 * cores)) processes:$cores processes:$((2 * cores))"
run_list=$(echo "$configs" | tr ' ' ',')
echo "machine: $cores cores; runs: $run_list, $tasks tasks x $numbers numbers, $repeat times" >&2

# An X server of our own, so its CPU can be read too.
exec 3<> <(:)
Xvfb -displayfd 3 -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 &
xvfb_pid=$!
read -r -t 10 display <&3
export DISPLAY=":$display"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for rep in $(seq 1 "$repeat"); do
  cli() {
    for c in $configs; do
      "$bin" run --backend "${c%%:*}" --workers "${c##*:}" --tasks "$tasks" --numbers "$numbers" \
        --format json >"$out/cli-$rep-${c/:/-}.json"
    done
  }
  window() {
    local x0
    x0=$(cpu_ticks "$xvfb_pid")
    "$bin" gui --run "$run_list" --tasks "$tasks" --numbers "$numbers" --exit ${REFRESH:+--refresh "$REFRESH"} \
      --report "$out/gui-$rep.json" --frame-stats "$out/frames-$rep.json"
    echo $(($(cpu_ticks "$xvfb_pid") - x0)) >"$out/xvfb-$rep.ticks"
  }
  if [ $((rep % 2)) = 1 ]; then cli; window; else window; cli; fi
  echo "round $rep of $repeat done" >&2
done

python3 - "$out" "$repeat" "$configs" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
out, repeat, configs, hz = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), int(sys.argv[4])
med = statistics.median
rows, ok = [], True
for c in configs:
    backend, workers = c.split(":")
    cli = [json.load(open(f"{out}/cli-{r}-{backend}-{workers}.json")) for r in range(1, repeat + 1)]
    gui = []
    for r in range(1, repeat + 1):
        runs = json.load(open(f"{out}/gui-{r}.json"))["runs"]
        gui += [x for x in runs if x["backend"] == backend and x["workers"] == int(workers)]
    assert all(x["status"] == "ok" for x in cli + gui), "a run failed"
    cw, gw = med(x["wall_s"] for x in cli), med(x["wall_s"] for x in gui)
    cc, gc = med(x["cpu_percent"] for x in cli), med(x["cpu_percent"] for x in gui)
    app = med(x["app_cpu_percent"] for x in gui)
    wall_ok, cpu_ok = gw / cw <= 1.10, gc / cc >= 0.90
    ok &= wall_ok and cpu_ok
    rows.append(f"| {backend} × {workers} | {cw:.2f} | {gw:.2f} | {gw / cw:.3f} {'ok' if wall_ok else 'MISSED'} "
                f"| {cc:.0f} | {gc:.0f} | {gc / cc:.3f} {'ok' if cpu_ok else 'MISSED'} | {app:.1f} |")
frames = [json.load(open(f"{out}/frames-{r}.json")) for r in range(1, repeat + 1)]
gui_wall = sum(x["wall_s"] for r in range(1, repeat + 1) for x in json.load(open(f"{out}/gui-{r}.json"))["runs"])
xvfb_s = sum(int(open(f"{out}/xvfb-{r}.ticks").read()) for r in range(1, repeat + 1)) / hz
build_p99 = max(f['build_ms_p99'] for f in frames)
build_ok = build_p99 <= 4.0
print("| runs | CLI wall [s] | window wall [s] | window / CLI (≤ 1.10) | CLI %CPU | window %CPU "
      "| window / CLI (≥ 0.90) | the window's own CPU [% of a core] |")
print("|:--|--:|--:|--:|--:|--:|--:|--:|")
print("\n".join(rows))
print()
print(f"Medians of {repeat} runs each. The window's own CPU is its UI and render threads during the run "
      f"(`app_cpu_percent` in its report). The X server (Xvfb) used {100 * xvfb_s / gui_wall:.1f} % of a core "
      f"over the window's runs. Frames: interval p50 {med(f['frame_interval_ms_p50'] for f in frames):.0f} ms, "
      f"p99 {max(f['frame_interval_ms_p99'] for f in frames):.0f} ms; "
      f"build p99 {build_p99:.2f} ms wall (≤ 4 ms: {'ok' if build_ok else 'MISSED'}), "
      f"{max(f['build_cpu_ms_p99'] for f in frames):.2f} ms of the UI thread's CPU (worst of the {repeat} windows; "
      f"the first frame, fonts and caches before any run, {max(f['first_build_ms'] for f in frames):.1f} ms).")
sys.exit(0 if ok and build_ok else 1)
PY
