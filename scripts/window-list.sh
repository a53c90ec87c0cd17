#!/usr/bin/env bash
# Shows scalelab in a real window list: Xvfb with a window manager (openbox)
# and a taskbar (tint2), the app in scripted mode, and a screenshot of the
# screen and of the taskbar's corner, where scalelab's icon and name appear.
# tests/gui_window.rs checks the same property (_NET_WM_ICON) automatically.
#
# usage: scripts/window-list.sh [OUT_DIR]   (default /tmp; needs openbox, tint2,
#        xvfb, and ImageMagick's import/convert: apt-get install openbox tint2 imagemagick)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp}
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/scalelab"

inner() {
  openbox >/dev/null 2>&1 &
  local wm=$!
  sleep 1
  tint2 >/dev/null 2>&1 &
  local bar=$!
  "$1" gui --run threads:1 --tasks 1 --numbers 100000000000 --exit >/dev/null &
  local app=$!
  sleep 6
  /usr/bin/import -window root "$2/window-list.png"
  kill "$app" "$bar" "$wm"
  wait || true
}
# xvfb-run is a sh script, and dash drops exported bash functions: the inner
# bash gets the function's text instead.
# shellcheck disable=SC2016 # $0 and $1 are the inner bash's, on purpose
xvfb-run -a -s "-screen 0 1600x1000x24" bash -c "$(declare -f inner)"'; inner "$0" "$1"' "$bin" "$out"
/usr/bin/convert "$out/window-list.png" -crop 400x60+0+940 -resize 200% "$out/window-list-taskbar.png"
echo "wrote $out/window-list.png and $out/window-list-taskbar.png" >&2
