#!/usr/bin/env bash
# Renders assets/scalelab.svg into the PNG sizes a desktop wants (the hicolor
# theme's 16..512 px) in assets/icons/; the window builds in the 128 px one.
# Needs rsvg-convert (Debian: librsvg2-bin). The PNGs are committed: building
# scalelab does not need this script.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v rsvg-convert >/dev/null || { echo "icons.sh: needs rsvg-convert (apt-get install librsvg2-bin)" >&2; exit 1; }
mkdir -p assets/icons
for size in 16 24 32 48 64 128 256 512; do
  rsvg-convert -w "$size" -h "$size" assets/scalelab.svg -o "assets/icons/scalelab-$size.png"
done
echo "wrote assets/icons/scalelab-{16..512}.png" >&2
