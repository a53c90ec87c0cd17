#!/usr/bin/env bash
# The Debian package: builds target/debian/scalelab_VERSION_ARCH.deb with
# cargo-deb (its config is [package.metadata.deb] at the end of Cargo.toml),
# then checks what it built:
#
#   1. contents: /usr/bin/scalelab (and it prints Cargo's version), the icon at
#      every hicolor size assets/icons/ has plus the SVG, the desktop entry,
#      README, the licence texts (LICENSE-MIT, LICENSE-APACHE) and the Debian
#      copyright file in /usr/share/doc;
#   2. Depends: exactly what dpkg-shlibdeps says for the binary AND for the
#      libraries the window dlopen()s (see below), nothing guessed;
#   3. those dlopen()s: the packaged binary's scripted window, run here under
#      Xvfb, opens exactly the X11 libraries listed below.
#
# scripts/package-test.sh then installs the .deb in a bare Debian and runs it.
#
# usage: scripts/package.sh
#
# Needs cargo (it installs cargo-deb itself when missing), dpkg-dev
# (dpkg-shlibdeps), gcc, binutils (objcopy: the debug symbols go to a separate
# scalelab-dbgsym .ddeb), xvfb-run, and the libraries below installed (as for
# running the window; plus libwayland-egl1 and libegl1, which only the Wayland
# path opens: dpkg-shlibdeps finds a library's package from the installed one).
#
# Why a list of libraries: the ELF itself needs only libc6 and libgcc-s1
# (readelf -d: libc, libm, libgcc_s, ld-linux); that is all cargo-deb's $auto
# (dpkg-shlibdeps on the ELF) can see. The window's libraries are opened at
# run time by the crates below, so dpkg-shlibdeps is run on a stub shared
# object linked against exactly those sonames (and nothing else, -nostdlib),
# which turns each soname into the package that ships it, with that
# package's shlibs/symbols version. Cargo.toml's `depends` must be
# that answer; this script fails, and prints the right line, when it is not.
#
# Where each soname comes from (crate: when), and how it was found: the X11
# ones by watching every dlopen() the binary makes while its scripted window
# runs under Xvfb (step 3, each run of this script); the Wayland ones the same
# way under weston's headless backend (scripts/package-test.sh, in a bare
# bookworm), and in the crates' sources:
x11_sonames=(
  libX11.so.6              # winit (x11-dl): Xlib, the X connection
  libX11-xcb.so.1          # winit (x11-dl): Xlib's XCB connection
  libXcursor.so.1          # winit (x11-dl): cursors
  libXi.so.6               # winit (x11-dl): XInput2, pointer and touch input
  libXrender.so.1          # glutin (x11-dl): picks the window's X visual
  libxcb.so.1              # winit (x11rb, dl-libxcb): the X protocol itself
  libxkbcommon.so.0        # winit (xkbcommon-dl): the keyboard (X11 and Wayland)
  libxkbcommon-x11.so.0    # winit (xkbcommon-dl): the X keyboard
  libGL.so.1               # glutin: GLX, eframe's first choice on X11 (EGL is its
                           # fallback). libgl1 also brings Mesa's drivers
                           # (libglx-mesa0 -> libgl1-mesa-dri); libegl1 does not.
)
wayland_sonames=(
  libwayland-client.so.0   # winit / smithay-client-toolkit (wayland-sys): when
                           # WAYLAND_DISPLAY is set; winit does not fall back to X11
  libwayland-egl.so.1      # glutin (wayland-sys, egl): the window's EGL surface
  libEGL.so.1              # glutin: EGL, the only GL there is on Wayland
)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
started=$(date +%s)

say() { printf '\n== %s\n' "$*"; }
fails=0
pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; fails=$((fails + 1)); }

# --- tools -----------------------------------------------------------------------

if ! cargo deb --version >/dev/null 2>&1; then
  say "installing cargo-deb (cargo install cargo-deb --locked)"
  cargo install cargo-deb --locked
fi
for tool in dpkg-shlibdeps gcc objcopy readelf xvfb-run; do
  command -v "$tool" >/dev/null ||
    { echo "package.sh: $tool is missing (dpkg-dev, gcc, binutils, xvfb)" >&2; exit 2; }
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
target=$(cargo metadata --no-deps --format-version 1 | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')
deb=$target/debian/scalelab_${version}_${arch}.deb
work=$target/debian/check
rm -rf "$work"
mkdir -p "$work"

# --- build -----------------------------------------------------------------------

say "cargo deb (scalelab $version)"
rm -f "$deb"
t0=$(date +%s)
nice -n 10 cargo deb --locked
build_secs=$(($(date +%s) - t0))
[ -f "$deb" ] || { echo "package.sh: cargo deb made no $deb" >&2; exit 1; }

# --- 1. what is in it ------------------------------------------------------------

say "1. contents"
dpkg-deb -x "$deb" "$work/root"
control() { dpkg-deb -f "$deb" "$1"; }

if [ "$(control Version)" = "$version" ]; then
  pass "Version: $version (Cargo.toml's)"
else
  fail "Version: $(control Version), Cargo.toml says $version"
fi
bin=$work/root/usr/bin/scalelab
if [ -x "$bin" ] && [ "$("$bin" --version)" = "scalelab $version" ]; then
  pass "/usr/bin/scalelab --version: scalelab $version"
else
  fail "/usr/bin/scalelab missing, not executable, or not scalelab $version"
fi
if grep -q '\.debug_line' <<<"$(readelf -S "$bin")"; then
  fail "/usr/bin/scalelab still carries debug info (it belongs in the dbgsym .ddeb)"
fi

# The icon: one PNG per size assets/icons/ has, identical, and the SVG.
icons_ok=1 sizes=()
for png in assets/icons/scalelab-*.png; do
  n=${png##*-}; n=${n%.png}
  sizes+=("$n")
  cmp -s "$png" "$work/root/usr/share/icons/hicolor/${n}x${n}/apps/scalelab.png" ||
    { fail "icon ${n}x${n} missing or not $png"; icons_ok=0; }
done
cmp -s assets/scalelab.svg "$work/root/usr/share/icons/hicolor/scalable/apps/scalelab.svg" ||
  { fail "icon scalable/apps/scalelab.svg missing or not assets/scalelab.svg"; icons_ok=0; }
shipped=$(find "$work/root/usr/share/icons" -type f | wc -l)
if [ "$shipped" != $((${#sizes[@]} + 1)) ]; then
  fail "icons: $shipped files shipped, assets/ has ${#sizes[@]} PNGs and one SVG"; icons_ok=0
fi
[ "$icons_ok" = 1 ] && pass "icons: hicolor $(printf '%s\n' "${sizes[@]}" | sort -n | paste -sd' ' -) and scalable"

if cmp -s assets/scalelab.desktop "$work/root/usr/share/applications/scalelab.desktop"; then
  pass "/usr/share/applications/scalelab.desktop"
else
  fail "/usr/share/applications/scalelab.desktop missing or not assets/scalelab.desktop"
fi
if cmp -s README.md "$work/root/usr/share/doc/scalelab/README.md"; then
  pass "/usr/share/doc/scalelab/README.md"
else
  fail "/usr/share/doc/scalelab/README.md missing or not README.md"
fi
license=$(sed -n 's/^license = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
if grep -qxF "License: $license" "$work/root/usr/share/doc/scalelab/copyright" 2>/dev/null; then
  pass "/usr/share/doc/scalelab/copyright: License: $license"
else
  fail "/usr/share/doc/scalelab/copyright missing or not naming $license"
fi
for f in LICENSE-MIT LICENSE-APACHE; do
  if cmp -s "$f" "$work/root/usr/share/doc/scalelab/$f"; then
    pass "/usr/share/doc/scalelab/$f"
  else
    fail "/usr/share/doc/scalelab/$f missing or not $f"
  fi
done
extra=$(find "$work/root" -type f -printf '/%P\n' | grep -v \
  -e '^/usr/bin/scalelab$' -e '^/usr/share/icons/hicolor/' -e '^/usr/share/applications/scalelab.desktop$' \
  -e '^/usr/share/doc/scalelab/README.md$' -e '^/usr/share/doc/scalelab/copyright$' \
  -e '^/usr/share/doc/scalelab/LICENSE-MIT$' -e '^/usr/share/doc/scalelab/LICENSE-APACHE$' || true)
[ -z "$extra" ] || fail "files nobody asked for: $extra"

# --- 2. Depends: dpkg-shlibdeps, on the binary and on the dlopen()ed sonames -----

say "2. Depends"
missing=()
cache=$(ldconfig -p)   # (not piped into grep -q: with pipefail, an early match is a SIGPIPE)
for s in "${x11_sonames[@]}" "${wayland_sonames[@]}"; do
  grep -q "^[[:space:]]*$s " <<<"$cache" || missing+=("$s")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "package.sh: not installed here: ${missing[*]}; dpkg-shlibdeps needs each one" \
    "installed to name its package (on bookworm, libwayland-egl.so.1 is libwayland-egl1)" >&2
  exit 2
fi
links=()
for s in "${x11_sonames[@]}" "${wayland_sonames[@]}"; do links+=("-l:$s"); done
gcc -shared -nostdlib -o "$work/dlopen-stub.so" -Wl,--no-as-needed "${links[@]}"
# dpkg-shlibdeps wants a debian/control in its working directory; any will do.
mkdir -p "$work/shlibdeps/debian"
: >"$work/shlibdeps/debian/control"
want=$(cd "$work/shlibdeps" &&
  dpkg-shlibdeps -O "$bin" "$work/dlopen-stub.so" 2>"$work/shlibdeps.log" |
  sed -n 's/^shlibs:Depends=//p')
[ -n "$want" ] || { cat "$work/shlibdeps.log" >&2; exit 1; }
sorted() { tr ',' '\n' | sed 's/^ *//; s/ *$//' | sort | paste -sd, - | sed 's/,/, /g'; }
got=$(control Depends)
if [ "$(sorted <<<"$got")" = "$(sorted <<<"$want")" ]; then
  pass "Depends are dpkg-shlibdeps's answer for the binary and its dlopen()ed sonames"
else
  fail "Depends differ from dpkg-shlibdeps's answer"
  echo "      the .deb:        $got"
  echo "      dpkg-shlibdeps:  $(sorted <<<"$want")"
  echo "      put that list in Cargo.toml's [package.metadata.deb] depends (\$auto gives libc6)"
fi

# --- 3. the dlopen()s, watched ------------------------------------------------------

say "3. what the window opens (X11: scripted window under Xvfb, every dlopen() logged)"
# A preloaded dlopen() wrapper logs each call: ok/fail, the name asked for, and
# the object that called it, so the binary's own calls (winit, glutin...) are
# told apart from those of the libraries (libGLX opening Mesa, Mesa its driver).
cat >"$work/dlopen-log.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
void *dlopen(const char *file, int mode) {
  static void *(*real)(const char *, int);
  if (!real) real = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
  void *h = real(file, mode);
  const char *log = getenv("DLOPEN_LOG");
  Dl_info who;
  if (log && file) {
    const char *caller = "?";
    if (dladdr(__builtin_return_address(0), &who) && who.dli_fname) caller = who.dli_fname;
    char line[4096];
    int n = snprintf(line, sizeof line, "%s\t%s\t%s\n", h ? "ok" : "fail", file, caller);
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd >= 0) { if (write(fd, line, n) < 0) {} close(fd); }
  }
  return h;
}
EOF
gcc -shared -fPIC -O2 -o "$work/dlopen-log.so" "$work/dlopen-log.c" -ldl
mkdir -p "$work/home"
if HOME=$work/home xvfb-run -a env LD_PRELOAD="$work/dlopen-log.so" DLOPEN_LOG="$work/dlopen.log" \
  "$bin" gui --run threads:2 --tasks 4 --numbers 1000000 --exit --screenshot "$work/window.png" \
  >"$work/window.log" 2>&1 && [ -s "$work/window.png" ]; then
  seen=$(awk -F'\t' -v b="$bin" '$3 == b && $1 == "ok" { print $2 }' "$work/dlopen.log" | sort -u)
  failed=$(awk -F'\t' -v b="$bin" '$3 == b && $1 == "fail" { print $2 }' "$work/dlopen.log" | sort -u)
  listed=$(printf '%s\n' "${x11_sonames[@]}" | sort -u)
  if [ "$seen" = "$listed" ]; then
    pass "the window ran; the binary dlopen()ed exactly the X11 list: $(echo "$seen" | paste -sd' ' -)"
  else
    fail "the binary's dlopen()s under X11 differ from the list in this script"
    diff <(echo "$listed") <(echo "$seen") | sed -n 's/^</      listed, not opened:/p; s/^>/      opened, not listed:/p'
  fi
  [ -z "$failed" ] || echo "      (tried and did without: $(echo "$failed" | paste -sd' ' -))"
else
  fail "the packaged binary's scripted window did not run under Xvfb:"
  tail -5 "$work/window.log" | sed 's/^/      /'
fi
echo "      Wayland: scripts/package-test.sh runs it under weston (headless) in a bare bookworm"

# --- the verdict ------------------------------------------------------------------------

say "scalelab $version, $(($(date +%s) - started)) s in all (cargo deb: $build_secs s)"
echo "$deb  $(stat -c %s "$deb") bytes (installed: $(control Installed-Size) KiB)"
ddeb=$target/debian/scalelab-dbgsym_${version}_${arch}.ddeb
[ -f "$ddeb" ] && echo "$ddeb  $(stat -c %s "$ddeb") bytes (debug symbols)"
echo "Depends: $(control Depends)"
[ "$fails" = 0 ]
