#!/usr/bin/env bash
# The fresh-machine promise, tested. Builds a bare Debian bookworm (debootstrap
# --variant=minbase), lends it this machine's Rust toolchain, installs only the
# apt packages listed below, and runs the README's two commands in it:
#
#   1. the app: `cargo run --release`, as the scripted window under Xvfb
#      (xvfb-run -a cargo run --release -- gui --run ... --exit --screenshot ...);
#   2. the tests: `cargo test` (the quick tier), or with --heavy the full
#      suite, `xvfb-run -a cargo test --features heavy`.
#
# It prints PASS/FAIL for each, how long the builds and the tests took, and
# the exact apt packages it installed: that list is the README's prerequisites
# line. Each package in it was added because a step failed without it (the
# reasons are next to the list); --prove checks that this is still so, by
# taking each one away again and watching its step fail.
#
# usage: scripts/fresh-machine.sh [--heavy] [--tests-only] [--prove] [--keep] [--packages "P1 P2 ..."]
#   --heavy      run the full suite instead of the quick tier (adds its packages)
#   --tests-only skip the app's step (its release build takes the longest)
#   --prove      after a pass, remove each listed package in turn and show that
#                the step it is listed for then fails (takes a few minutes more)
#   --keep       leave the chroot (and its build) in place afterwards
#   --packages   install these instead of the list below (to look for the minimum)
#
# Needs root (debootstrap, chroot, mounts) and network access to the Debian
# mirror. Work happens in $FRESH_DIR (default /var/tmp/scalelab-fresh); the
# debootstrapped system is cached there as a tarball, so a re-run starts from a
# bare system again in seconds rather than minutes. The repository itself is
# only read (`git archive HEAD`): uncommitted changes are not part of the test.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
base=${FRESH_DIR:-/var/tmp/scalelab-fresh}
mirror=${MIRROR:-http://deb.debian.org/debian}
root=$base/root               # the fresh machine, rebuilt from the tarball each run
pristine=$base/bookworm-minbase.tar
logs=$base/logs

# What a bare bookworm lacks, each found by running the steps without it:
build_pkgs=(
  g++                 # linker `cc` not found; then rust-lld: cannot open Scrt1.o, -lc
                      # (gcc alone lacks libc6-dev); zmq-sys compiles the bundled libzmq (C++)
  make                # libsodium-sys-stable builds the bundled libsodium (the bus's
                      # CurveZMQ) with its configure script and make
)
window_pkgs=(
  xvfb                # xvfb-run itself, the X server, and (as its dependencies) libgl1
                      # and Mesa's software GL (libgl1-mesa-dri): glutin falls back to GLX
  xauth               # xvfb-run: error: xauth command not found (only a Recommends of xvfb)
  libxcursor1         # winit: "Failed to load one of xlib's shared libraries" (libXcursor)
  libxi6              # the same error for libXi (XInput2), once libXcursor is there
  libxkbcommon-x11-0  # xkbcommon-dl: Library libxkbcommon-x11.so could not be loaded
)
test_pkgs=(
  python3             # tests/compare.rs: "python3 is needed" (it compares against CPython)
)
# The full suite also needs (see .ci/run): xdotool for tests/gui_cancel.rs and
# tests/gui_window.rs, xprop (x11-utils) for tests/gui_window.rs, ip and tcpdump
# for tests/bus_netns.rs, pyzmq for tests/bus_python.rs (Debian's python3-zmq),
# desktop-file-validate for tests/packaging.rs.
# tests/bus_netns.rs binds the address of a veth pair it makes; here that pair
# lives inside the run's own network namespace (see in_root_offline), which
# has no way out.
heavy_pkgs=(xdotool x11-utils iproute2 tcpdump python3-zmq desktop-file-utils)

heavy=0 prove=0 keep=0 tests_only=0 custom=
while [ $# -gt 0 ]; do
  case $1 in
    --heavy) heavy=1 ;;
    --prove) prove=1 ;;
    --keep) keep=1 ;;
    --tests-only) tests_only=1 ;;
    --packages) custom=$2; custom_set=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "${custom_set:-0}" = 1 ]; then
  read -r -a packages <<<"$custom"
else
  packages=("${build_pkgs[@]}" "${window_pkgs[@]}" "${test_pkgs[@]}")
  if [ "$heavy" = 1 ]; then packages+=("${heavy_pkgs[@]}"); fi
fi

[ "$(id -u)" = 0 ] || { echo "fresh-machine: needs root (debootstrap, chroot, mount)" >&2; exit 2; }

say() { printf '\n== %s\n' "$*"; }
mmss() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# --- mounts, and getting rid of them whatever happens -------------------------

# Mount points at or under the chroot, deepest first (the order to unmount).
mounts_under_root() {
  awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

# Processes whose root directory is the chroot were started by this script
# (cargo, a test, Xvfb...). Any left over would keep the mounts busy.
end_chroot_processes() {
  local p
  for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ]; then
      kill "${p#/proc/}" 2>/dev/null || true
    fi
  done
}

unmount_all() {
  local m
  end_chroot_processes
  for m in $(mounts_under_root); do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
}

# Never delete the chroot while anything is mounted in it: the cargo registry
# is bound read-write, and rm -rf would go straight through into this machine.
remove_root() {
  if [ -n "$(mounts_under_root)" ]; then
    echo "fresh-machine: still mounted under $root, not removing it:" >&2
    mounts_under_root >&2
    exit 1
  fi
  rm -rf --one-file-system "$root"
}

cleanup() {
  local rc=$?
  unmount_all
  if [ -n "$(mounts_under_root)" ]; then
    echo "fresh-machine: could not unmount everything under $root" >&2
    rc=1
  elif [ "$keep" = 0 ] && [ -d "$root" ]; then
    rm -rf --one-file-system "$root"
  fi
  exit "$rc"
}
# One run at a time per $FRESH_DIR: the cleanup below would pull the mounts
# (and end the processes) of another run out from under it. Taken before the
# trap is set, so a refused run touches nothing.
mkdir -p "$base" "$logs"
exec 9>"$base/lock"
flock -n 9 || { echo "fresh-machine: another run is using $base" >&2; exit 1; }
trap cleanup EXIT
trap 'exit 130' INT TERM
started=$(date +%s)

# --- the bare system ------------------------------------------------------------

if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap on this machine"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
fi

if [ ! -f "$pristine" ]; then
  say "debootstrap bookworm (minbase) from $mirror, once; cached in $pristine"
  tmp=$base/pristine.tmp
  rm -rf --one-file-system "$tmp"
  debootstrap --variant=minbase bookworm "$tmp" "$mirror" >"$logs/debootstrap.log" 2>&1 ||
    { tail -20 "$logs/debootstrap.log"; exit 1; }
  tar -C "$tmp" -cf "$pristine.part" . && mv "$pristine.part" "$pristine"
  rm -rf --one-file-system "$tmp"
fi

say "a bare bookworm in $root"
unmount_all      # a previous run killed hard may have left mounts behind
remove_root
mkdir -p "$root"
mount --bind "$root" "$root"   # a mount point of its own, as a machine's / is:
                               # `ip netns exec` (tests/bus_netns.rs) remounts / rslave
tar -C "$root" -xf "$pristine"
cp /etc/resolv.conf "$root/etc/resolv.conf"   # for apt; the rest of /etc stays Debian's

# The kernel's views, and the host's /dev (rslave: nothing mounted under it in
# here can propagate back out).
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"

# The lent toolchain: rustup's toolchains and the cargo/rustup proxies read-only;
# the crate cache read-write (cargo keeps its locks and extracted sources there),
# so the build does not download every crate again. Nothing else of the host's
# ~/.cargo comes along (no config.toml, no installed tools).
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_home=${CARGO_HOME:-$HOME/.cargo}
mkdir -p "$root/root/.rustup" "$root/root/.cargo/bin" "$root/root/.cargo/registry"
mount --bind -o ro "$rustup_home" "$root/root/.rustup"
mount --bind -o ro "$cargo_home/bin" "$root/root/.cargo/bin"
mount --bind "$cargo_home/registry" "$root/root/.cargo/registry"

# The source as committed; the build goes to the fresh machine's own target/.
mkdir -p "$root/src"
git -C "$repo" archive HEAD | tar -x -C "$root/src"
commit=$(git -C "$repo" rev-parse --short HEAD)

# Run a command in the fresh machine with a clean environment (nothing of this
# shell's leaks in: no CARGO_TARGET_DIR, no DISPLAY).
in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo DEBIAN_FRONTEND=noninteractive \
    /bin/bash -c "cd /src && $1"
}

# The same, in a network namespace of its own with only a loopback: the app and
# the tests bind 127.0.0.1 only, and Xvfb's abstract socket (@/tmp/.X11-unix/XN)
# cannot collide with an X server of this machine's (xvfb-run -a only looks at
# the chroot's /tmp for free display numbers).
in_root_offline() {
  unshare --net -- /bin/sh -c 'ip link set lo up && exec "$@"' sh \
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo \
    /bin/bash -c "cd /src && $1"
}

# A step: its output goes to $logs/NAME.log; on failure the tail is shown.
# Sets $secs to its wall time.
step() {
  local name=$1 how=$2 cmd=$3 t0 rc=0
  t0=$(date +%s)
  "$how" "$cmd" >"$logs/$name.log" 2>&1 || rc=$?
  secs=$(($(date +%s) - t0))
  if [ "$rc" != 0 ]; then
    echo "   $name failed (exit $rc) after $(mmss "$secs"); the end of $logs/$name.log:"
    tail -25 "$logs/$name.log" | sed 's/^/   | /'
  fi
  return "$rc"
}

# --- install what the list says, nothing more ------------------------------------

say "apt-get install --no-install-recommends ${packages[*]:-(nothing)}"
in_root 'apt-get update -q' >"$logs/apt.log" 2>&1 || { tail "$logs/apt.log"; exit 1; }
if [ "${#packages[@]}" -gt 0 ]; then
  in_root "apt-get install -y -q --no-install-recommends ${packages[*]}" >>"$logs/apt.log" 2>&1 ||
    { tail "$logs/apt.log"; exit 1; }
fi
in_root 'cargo --version && rustc --version'

# The builds run niced: this machine's cores are shared with other work.
window_cmd='xvfb-run -a cargo run --release -- gui --run threads:2 --tasks 4 --numbers 100000000 --exit --screenshot /tmp/shot.png && test -s /tmp/shot.png'
if [ "$heavy" = 1 ]; then
  tests_build='cargo test --features heavy --no-run'
  tests_cmd='xvfb-run -a cargo test --features heavy'
else
  tests_build='cargo test --no-run'
  tests_cmd='cargo test'
fi

app=FAIL tests=FAIL
app_build=- app_run=- tests_build_t=- tests_run=-

say "1. the app: cargo run --release (scripted window under Xvfb)"
if [ "$tests_only" = 1 ]; then
  app=SKIP
  echo "   skipped (--tests-only)"
elif step build-release in_root "nice -n 10 cargo build --release"; then
  app_build=$(mmss "$secs")
  echo "   built in $app_build"
  if step window in_root_offline "nice -n 10 $window_cmd"; then
    app=PASS app_run=$(mmss "$secs")
    cp "$root/tmp/shot.png" "$base/shot.png"
    echo "   the window ran its script and saved $base/shot.png ($app_run)"
  fi
fi

say "2. the tests: $tests_cmd"
if step build-tests in_root "nice -n 10 $tests_build"; then
  tests_build_t=$(mmss "$secs")
  echo "   test binaries built in $tests_build_t"
  if step tests in_root_offline "nice -n 10 $tests_cmd"; then
    tests=PASS tests_run=$(mmss "$secs")
    passed=$(awk '/^test result:/ { n += $4 } END { print n + 0 }' "$logs/tests.log")
    echo "   $passed tests passed in $tests_run"
  fi
fi

# --- optional: each package, taken away again, breaks its step -------------------

# The line of a failed step's log that says why (not the tests that passed).
first_reason() {
  awk '/ \.\.\. ok$/ { next }
    tolower($0) ~ /is needed|not found|could not be loaded|failed to load|cannot|no such file/ { why = $0; exit }
    fallback == "" && tolower($0) ~ /error|panicked/ { fallback = $0 }
    END { if (why == "") why = fallback
          gsub(/ at \/[^ ]*:[0-9]+:/, ":", why)     # winit: "os error at /src/path.rs:788: ..."
          print substr(why, 1, 120) }' "$1"
}

proof=()
prove_one() {
  local pkg=$1 what=$2 cmd=$3 how=$4
  # Purge pkg and what only it needed (--autoremove: taking away python3 must
  # take python3-minimal's /usr/bin/python3 too). That also takes whatever
  # depends on pkg, so put the rest of the list back: if pkg returns with it, it
  # is only a dependency of another listed package.
  local rest=() p
  for p in "${packages[@]}"; do [ "$p" = "$pkg" ] || rest+=("$p"); done
  in_root "apt-get purge --autoremove -y -q $pkg && apt-get install -y -q --no-install-recommends ${rest[*]}" \
    >>"$logs/prove.log" 2>&1
  if in_root "dpkg -s $pkg >/dev/null 2>&1"; then
    proof+=("$pkg: REDUNDANT (another listed package depends on it)")
  elif "$how" "$cmd" >"$logs/prove-$pkg.log" 2>&1; then
    proof+=("$pkg: NOT NEEDED ($what passes without it)")
  else
    proof+=("$pkg: needed ($what fails without it: $(first_reason "$logs/prove-$pkg.log"))")
  fi
  in_root "apt-get install -y -q --no-install-recommends $pkg" >>"$logs/prove.log" 2>&1
}

if [ "$prove" = 1 ] && [ "$app" != FAIL ] && [ "$tests" = PASS ]; then
  say "--prove: each package taken away in turn"
  : >"$logs/prove.log"
  for pkg in "${packages[@]}"; do
    echo "   without $pkg..."
    if [[ " ${build_pkgs[*]} " == *" $pkg "* ]]; then
      # Rebuild the C++ part (the bundled libzmq) and relink, then put it back.
      prove_one "$pkg" build "cargo clean -q --release -p zmq-sys -p libsodium-sys-stable && nice -n 10 cargo build --release" in_root
      in_root 'nice -n 10 cargo build -q --release' >>"$logs/prove.log" 2>&1
    elif [[ " ${window_pkgs[*]} " == *" $pkg "* ]]; then
      prove_one "$pkg" window "$window_cmd" in_root_offline
    else
      prove_one "$pkg" tests "nice -n 10 $tests_cmd" in_root_offline
    fi
  done
fi

# --- the verdict -------------------------------------------------------------------

say "fresh bookworm, scalelab $commit, $(mmss $(($(date +%s) - started))) in all"
echo "apt packages installed (--no-install-recommends): ${packages[*]:-(none)}"
printf '%-6s %-62s build %-8s run %s\n' \
  "$app" "cargo run --release (xvfb-run, scripted window)" "$app_build" "$app_run" \
  "$tests" "$tests_cmd" "$tests_build_t" "$tests_run"
for line in "${proof[@]}"; do echo "  $line"; done
echo "logs: $logs"
[ "$app" = PASS ] && [ "$tests" = PASS ]
