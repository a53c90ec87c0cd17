#!/usr/bin/env bash
# The Debian package, installed where nothing else is: a bare Debian bookworm
# (debootstrap --variant=minbase). In it:
#
#   1. apt-get install ./scalelab_VERSION_ARCH.deb   (Depends come from the mirror)
#   2. scalelab --version                            prints Cargo.toml's version
#   3. scalelab run --backend threads --workers 2 --tasks 4 --numbers 1000000
#   4. the scripted window, on X11 (Xvfb) and on Wayland (weston, headless):
#      scalelab gui --run threads:2 --tasks 4 --numbers 1000000 --exit --screenshot ...
#   5. Depends, checked against what ran: the packages of the libraries the
#      binary links (its ELF) and dlopen()s (every call logged during 4) are
#      exactly the .deb's Depends, no more, no fewer
#   6. apt-get purge scalelab: none of its files is left
#   7. apt-get autoremove --purge: the packages apt pulled in for it go too, and
#      the machine's file listing is the one from before the install
#
# It prints PASS/FAIL for each and exits 1 if any failed.
#
# The display servers do not run in the machine under test: they run in a
# second bookworm chroot (xvfb, weston), and the two share only the servers'
# sockets (a network namespace of their own, for X's abstract socket, and a
# bind mount of each socket directory into the tested machine's /tmp). So
# nothing the servers need (xvfb alone pulls in libgl1, libx11-6 and Mesa)
# can stand in for a missing Depends: the window works with the package's
# Depends and nothing else.
#
# usage: scripts/package-test.sh [--keep] [DEB]
#   DEB      default: target/debian/scalelab_VERSION_ARCH.deb (scripts/package.sh builds it)
#   --keep   leave the chroots in place afterwards
#
# Needs root (debootstrap, chroot, mounts, namespaces), gcc (the dlopen() log,
# a preloaded wrapper) and the Debian mirror. Work happens in $PKGTEST_DIR
# (default /var/tmp/scalelab-pkgtest). The bare system is the tarball
# scripts/fresh-machine.sh caches, read only, when it is there (else it is
# debootstrapped here, once); the servers' chroot is cached as a tarball too.
# Listings compared in 7 leave out /proc /sys /dev /tmp /var/cache/apt
# /var/lib/apt /var/lib/dpkg /var/log; the app runs with HOME=/tmp/home (its
# user's files are not the package's).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
base=${PKGTEST_DIR:-/var/tmp/scalelab-pkgtest}
mirror=${MIRROR:-http://deb.debian.org/debian}
root=$base/root                   # the machine under test, fresh each run
srv=$base/servers                 # Xvfb and weston, fresh each run from servers.tar
nsdir=$base/ns                    # the network namespace both share
netns=$nsdir/net
logs=$base/logs
pristine=$base/bookworm-minbase.tar
fresh_pristine=/var/tmp/scalelab-fresh/bookworm-minbase.tar
servers_tar=$base/servers.tar

keep=0 deb=
while [ $# -gt 0 ]; do
  case $1 in
    --keep) keep=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    *) deb=$1 ;;
  esac
  shift
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)
arch=$(dpkg --print-architecture)
deb=${deb:-${CARGO_TARGET_DIR:-$repo/target}/debian/scalelab_${version}_${arch}.deb}
[ -f "$deb" ] || { echo "package-test: no $deb (scripts/package.sh builds it)" >&2; exit 2; }
deb=$(realpath "$deb")
[ "$(id -u)" = 0 ] || { echo "package-test: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
command -v gcc >/dev/null || { echo "package-test: needs gcc (the dlopen() log)" >&2; exit 2; }

say() { printf '\n== %s\n' "$*"; }
fails=0
pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; fails=$((fails + 1)); }
secs_since() { echo $(($(date +%s) - $1)); }

# --- mounts and processes, and getting rid of them whatever happens -----------------

mounts_under_base() {
  awk -v r="$base" 'index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

# Processes whose root is one of the chroots were started by this script.
end_chroot_processes() {
  local p r
  for p in /proc/[0-9]*; do
    r=$(readlink "$p/root" 2>/dev/null) || continue
    if [ "$r" = "$root" ] || [ "$r" = "$srv" ]; then
      kill "${p#/proc/}" 2>/dev/null || true
    fi
  done
}

unmount_all() {
  local m
  end_chroot_processes
  sleep 0.5
  for m in $(mounts_under_base); do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
}

# Never delete a chroot while anything is mounted under $base: /dev is bound
# from this machine.
remove_chroots() {
  if [ -n "$(mounts_under_base)" ]; then
    echo "package-test: still mounted under $base, not removing anything:" >&2
    mounts_under_base >&2
    exit 1
  fi
  rm -rf --one-file-system "$root" "$srv"
}

cleanup() {
  local rc=$?
  unmount_all
  if [ -n "$(mounts_under_base)" ]; then
    echo "package-test: could not unmount everything under $base" >&2
    rc=1
  elif [ "$keep" = 0 ]; then
    rm -rf --one-file-system "$root" "$srv"
  fi
  exit "$rc"
}

mkdir -p "$base" "$logs"
exec 9>"$base/lock"
flock -n 9 || { echo "package-test: another run is using $base" >&2; exit 1; }
trap cleanup EXIT
trap 'exit 130' INT TERM
started=$(date +%s)

mount_kernel_views() {   # as scripts/fresh-machine.sh does
  mount -t proc proc "$1/proc"
  mount -t sysfs sysfs "$1/sys"
  mount --rbind /dev "$1/dev"
  mount --make-rslave "$1/dev"
}

# A command in a chroot, clean environment; $1 the chroot, $2 the command.
# in_chroot reaches the network (apt); in_ns only the display servers.
env_clean=(/usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
in_chroot() { chroot "$1" "${env_clean[@]}" /bin/bash -c "$2"; }
in_ns() { nsenter --net="$netns" chroot "$1" "${env_clean[@]}" /bin/bash -c "$2"; }

# --- the bare system, and the servers' ---------------------------------------------

say "a bare bookworm in $root"
unmount_all          # a run killed hard may have left mounts behind
remove_chroots
if [ -f "$fresh_pristine" ]; then
  minbase=$fresh_pristine
else
  if [ ! -f "$pristine" ]; then
    echo "   debootstrap bookworm (minbase) from $mirror, once; cached in $pristine"
    command -v debootstrap >/dev/null ||
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
    rm -rf --one-file-system "$base/pristine.tmp"
    debootstrap --variant=minbase bookworm "$base/pristine.tmp" "$mirror" >"$logs/debootstrap.log" 2>&1 ||
      { tail -20 "$logs/debootstrap.log"; exit 1; }
    tar -C "$base/pristine.tmp" -cf "$pristine.part" . && mv "$pristine.part" "$pristine"
    rm -rf --one-file-system "$base/pristine.tmp"
  fi
  minbase=$pristine
fi
echo "   from $minbase"

if [ ! -f "$servers_tar" ]; then
  echo "   the display servers' chroot (xvfb, weston), once; cached in $servers_tar"
  mkdir -p "$srv"
  tar -C "$srv" -xf "$minbase"
  cp /etc/resolv.conf "$srv/etc/resolv.conf"
  mount_kernel_views "$srv"
  in_chroot "$srv" 'apt-get update -q && apt-get install -y -q --no-install-recommends xvfb weston && apt-get clean' \
    >"$logs/servers-apt.log" 2>&1 || { tail "$logs/servers-apt.log"; exit 1; }
  unmount_all
  tar -C "$srv" -cf "$servers_tar.part" . && mv "$servers_tar.part" "$servers_tar"
  rm -rf --one-file-system "$srv"
fi
mkdir -p "$root" "$srv"
tar -C "$root" -xf "$minbase"
tar -C "$srv" -xf "$servers_tar"
cp /etc/resolv.conf "$root/etc/resolv.conf"   # for apt; the rest of /etc stays Debian's
mount_kernel_views "$root"
mount_kernel_views "$srv"

# The network namespace the servers and the window share (nothing else in it:
# an X server of this machine's with the same display number is not seen).
mkdir -p "$nsdir"
mount --bind "$nsdir" "$nsdir"
mount --make-private "$nsdir"
: >"$netns"
unshare --net="$netns" true
if command -v ip >/dev/null; then nsenter --net="$netns" ip link set lo up; fi

# The dlopen() log: a preloaded wrapper (the same as scripts/package.sh's)
# writes each call, whether it worked, and which object made it.
cat >"$base/dlopen-log.c" <<'EOF'
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
gcc -shared -fPIC -O2 -o "$base/dlopen-log.so" "$base/dlopen-log.c" -ldl

# What the machine holds, to compare after: packages, and every path outside
# the kernel's views, /tmp, and apt's and dpkg's own records and logs.
packages() { in_chroot "$root" "dpkg-query -W -f '\${Package}:\${Architecture} \${Version} \${db:Status-Abbrev}\n'" | sort; }
listing() {
  (cd "$root" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./tmp \
    -o -path ./var/cache/apt -o -path ./var/lib/apt -o -path ./var/lib/dpkg -o -path ./var/log \) -prune \
    -o -printf '%y %M %u:%g %p\n' | sort -k4)
}

in_chroot "$root" 'apt-get update -q' >"$logs/apt.log" 2>&1 || { tail "$logs/apt.log"; exit 1; }
packages >"$logs/packages-before"
listing >"$logs/listing-before"
echo "   $(wc -l <"$logs/packages-before") packages, $(wc -l <"$logs/listing-before") paths"

# --- 1. install ------------------------------------------------------------------------

name=$(basename "$deb")
say "1. apt-get install ./$name"
cp "$deb" "$root/tmp/$name"
t0=$(date +%s)
if in_chroot "$root" "cd /tmp && apt-get install -y -q ./$name" >>"$logs/apt.log" 2>&1; then
  packages >"$logs/packages-installed"
  pulled=$(comm -13 <(cut -d' ' -f1 "$logs/packages-before") <(cut -d' ' -f1 "$logs/packages-installed") |
    grep -v '^scalelab:' | sed 's/:.*//' || true)
  pass "apt-get install ./$name: $(echo "$pulled" | grep -c .) packages from the mirror with it ($(secs_since "$t0") s)"
  echo "      $(echo "$pulled" | paste -sd' ' -)"
else
  fail "apt-get install ./$name:"
  tail -8 "$logs/apt.log" | sed 's/^/      /'
  exit 1
fi

# --- 2., 3. the command line ------------------------------------------------------------

say "2., 3. the command line"
# The user's files (the app's settings, Mesa's shader cache, which follows
# XDG_CACHE_HOME or else the passwd entry's home, not $HOME) go to /tmp/home:
# they are the user's, not the package's, and purge rightly leaves them.
user_env='HOME=/tmp/home XDG_CACHE_HOME=/tmp/home/.cache XDG_CONFIG_HOME=/tmp/home/.config XDG_DATA_HOME=/tmp/home/.local/share'
got=$(in_ns "$root" 'scalelab --version' 2>&1 || true)
if [ "$got" = "scalelab $version" ]; then
  pass "scalelab --version: $got"
else
  fail "scalelab --version: '$got', want 'scalelab $version'"
fi
run='scalelab run --backend threads --workers 2 --tasks 4 --numbers 1000000'
if in_ns "$root" "$user_env $run" >"$logs/run.log" 2>&1 &&
  [ "$(grep -c '^task [0-3]: [0-9]' "$logs/run.log")" = 4 ] && grep -q '^total: [0-9]' "$logs/run.log"; then
  pass "$run: 4 sums, $(grep '^total:' "$logs/run.log")"
else
  fail "$run:"
  tail -5 "$logs/run.log" | sed 's/^/      /'
fi

# --- 4. the window -------------------------------------------------------------------------

say "4. the scripted window, from the installed copy"
mkdir -p "$srv/tmp/xdg"
chmod 700 "$srv/tmp/xdg"
nsenter --net="$netns" chroot "$srv" "${env_clean[@]}" \
  Xvfb :1 -screen 0 1280x1024x24 -nolisten tcp >"$logs/xvfb.log" 2>&1 &
xvfb_pid=$!
nsenter --net="$netns" chroot "$srv" "${env_clean[@]}" XDG_RUNTIME_DIR=/tmp/xdg \
  weston --backend=headless-backend.so --socket=wayland-1 --idle-time=0 >"$logs/weston.log" 2>&1 &
weston_pid=$!
for _ in $(seq 100); do
  [ -S "$srv/tmp/.X11-unix/X1" ] && [ -S "$srv/tmp/xdg/wayland-1" ] && break
  sleep 0.1
done
mkdir -p "$root/tmp/.X11-unix" "$root/tmp/wl" "$root/tmp/xdg"
chmod 700 "$root/tmp/xdg"
mount --bind "$srv/tmp/.X11-unix" "$root/tmp/.X11-unix"
mount --bind "$srv/tmp/xdg" "$root/tmp/wl"
cp "$base/dlopen-log.so" "$root/tmp/dlopen-log.so"

gui='scalelab gui --run threads:2 --tasks 4 --numbers 1000000 --exit'
window() {   # $1 x11|wayland, $2 the environment that picks the display
  local t0 shot=/tmp/$1.png
  t0=$(date +%s)
  if in_ns "$root" "$user_env XDG_RUNTIME_DIR=/tmp/xdg $2 LD_PRELOAD=/tmp/dlopen-log.so \
      DLOPEN_LOG=/tmp/dlopen-$1.log timeout 300 $gui --screenshot $shot" >"$logs/window-$1.log" 2>&1 &&
    [ "$(head -c 4 "$root$shot" 2>/dev/null | od -An -c | tr -d ' ')" = '211PNG' ]; then
    pass "$1: $2 $gui --screenshot $shot ($(stat -c %s "$root$shot") bytes PNG, $(secs_since "$t0") s)"
  else
    fail "$1: $2 $gui:"
    tail -5 "$logs/window-$1.log" | sed 's/^/      /'
  fi
}
window x11 DISPLAY=:1
window wayland WAYLAND_DISPLAY=/tmp/wl/wayland-1

kill "$xvfb_pid" "$weston_pid" 2>/dev/null || true
wait "$xvfb_pid" "$weston_pid" 2>/dev/null || true
umount "$root/tmp/.X11-unix" "$root/tmp/wl"

# --- 5. Depends against what ran ----------------------------------------------------------

say "5. Depends, against what the binary linked and opened"
opened() {  # sonames the binary itself dlopen()ed successfully, from one log
  awk -F'\t' '$1 == "ok" && ($3 == "scalelab" || $3 == "/usr/bin/scalelab") { print $2 }' \
    "$root/tmp/dlopen-$1.log" 2>/dev/null | sort -u
}
x11_opened=$(opened x11)
wayland_opened=$(opened wayland)
echo "      X11 opened:     $(echo "$x11_opened" | paste -sd' ' -)"
echo "      Wayland opened: $(echo "$wayland_opened" | paste -sd' ' -)"
needed=$(readelf -d "$root/usr/bin/scalelab" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
echo "      ELF needs:      $(echo "$needed" | paste -sd' ' -)"
owners=$(for s in $needed $x11_opened $wayland_opened; do
  in_chroot "$root" "dpkg -S '*/$s'" 2>/dev/null | sed 's/[:,].*//' || echo "UNOWNED:$s"
done | sort -u)
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*//; s/ //g' | sort -u)
if [ -n "$x11_opened" ] && [ -n "$wayland_opened" ] && [ "$owners" = "$depends" ]; then
  pass "Depends are exactly the packages of those libraries: $(echo "$depends" | paste -sd' ' -)"
else
  fail "Depends and what ran differ"
  diff <(echo "$depends") <(echo "$owners") |
    sed -n 's/^</      in Depends, never used:/p; s/^>/      used, not in Depends:/p'
fi

# --- 6., 7. purge, and nothing left ----------------------------------------------------

say "6. apt-get purge scalelab"
in_chroot "$root" 'dpkg -L scalelab' >"$logs/scalelab-files"
if in_chroot "$root" 'apt-get purge -y -q scalelab' >>"$logs/apt.log" 2>&1; then
  left=$(while read -r f; do
    if [ -e "$root$f" ] && [ ! -d "$root$f" ]; then echo "$f"; fi
  done <"$logs/scalelab-files")
  status=$(in_chroot "$root" "dpkg-query -W -f '\${db:Status-Abbrev}' scalelab" 2>/dev/null || true)
  if [ -z "$left" ] && [ -z "$(echo "$status" | tr -d ' ')" ]; then
    pass "apt-get purge scalelab: no file of its $(wc -l <"$logs/scalelab-files") paths left, dpkg forgot it"
  else
    fail "apt-get purge scalelab left: ${left:-(no files)} (status '$status')"
  fi
else
  fail "apt-get purge scalelab:"
  tail -5 "$logs/apt.log" | sed 's/^/      /'
fi

say "7. apt-get autoremove --purge, and the machine as it was"
if in_chroot "$root" 'apt-get autoremove --purge -y -q' >>"$logs/apt.log" 2>&1; then
  packages >"$logs/packages-after"
  if diff -q "$logs/packages-before" "$logs/packages-after" >/dev/null; then
    pass "apt-get autoremove --purge: the $(echo "$pulled" | grep -c .) packages pulled in are gone; the package list is the one from before"
  else
    fail "packages before the install and after autoremove differ:"
    diff "$logs/packages-before" "$logs/packages-after" | sed -n 's/^[<>]/      &/p'
  fi
else
  fail "apt-get autoremove --purge:"
  tail -5 "$logs/apt.log" | sed 's/^/      /'
fi
listing >"$logs/listing-after"
if diff -q "$logs/listing-before" "$logs/listing-after" >/dev/null; then
  pass "file listing after purge and autoremove = before the install ($(wc -l <"$logs/listing-after") paths)"
else
  fail "file listing differs from before the install:"
  diff "$logs/listing-before" "$logs/listing-after" | sed -n 's/^[<>]/      &/p' | head -40
fi

say "$name in a bare bookworm: $(secs_since "$started") s in all; logs in $logs"
[ "$fails" = 0 ]
