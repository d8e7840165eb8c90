#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for neurodesk, then run the demo or the test suite.
#
#   scripts/bootstrap.sh demo    system packages + venv, then `neurodesk demo`
#   scripts/bootstrap.sh test    all test dependencies + venv, then lint, types and every test
#   scripts/bootstrap.sh setup   only the demo's setup
#
# Idempotent: packages already present are not reinstalled, an existing .venv is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-demo}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

# What the demo needs: build (buildah, debootstrap), run (bubblewrap), Python venv.
CORE_PACKAGES=(bubblewrap buildah debootstrap uidmap python3 python3-venv python3-pip ca-certificates tar)
CORE_PACKAGES+=(gcc libc6-dev dash)  # neurodesk install compiles the wrappers' signal forwarder (runtime/launcher.c); wrappers are POSIX sh
# What the whole test suite and the benchmarks need on top: the real clients and servers.
TEST_PACKAGES=(dcm2niix git-annex rpm squashfs-tools squashfuse skopeo umoci podman runc lmod slurm-wlm munge
  docker-registry desktop-file-utils parallel hyperfine chromium chromium-driver xvfb
  tcl less procps  # tcl, less, procps: environment-modules' modulecmd.tcl, unpacked by the tests
  catatonit lua5.3  # podman --init (signals as natively); lua5.3/luac5.3 check generated modules
  tigervnc-standalone-server xauth novnc)  # neurodesk desktop's browser desktop for GUI tools
# the desktop session in that browser desktop: window manager, panel, menu, terminal, root colour
TEST_PACKAGES+=(openbox tint2 jgmenu xterm x11-utils x11-xserver-utils xclip)
TEST_PACKAGES+=(httpdirfs fuse3)  # SIF images: lazy HTTP mounts (httpdirfs), fusermount3 for squashfuse
TEST_PACKAGES+=(nginx-light)  # SIF benchmark and lazy tests: a real Range server, as object storage
TEST_PACKAGES+=(squid aria2)  # channels: a caching proxy in front of every channel; aria2c for the benchmark
TEST_PACKAGES+=(pigz isal curl)  # bench_fetch: the physical floor (curl + tar -x with the fastest gzip decoder)
TEST_PACKAGES+=(nginx)  # channels benchmark: the object-storage mirrors served by a fast static server

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo ">> installing system packages: ${missing[*]}"
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

# SIF lazy starts: Debian 12's httpdirfs 1.2.5 waits ~100 ms after every HTTP request (fixed in 1.2.8)
# and its --cache returns wrong bytes for reads across an 8 MB segment (fixed in 1.2.10). When the
# installed one is older, build Debian's current source package (sid) into our own prefix, off PATH:
# neurodesk uses $HTTPDIRFS_PREFIX/bin/httpdirfs first, else PATH's. A failure only warns.
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
HTTPDIRFS_PREFIX=/usr/local/lib/neurodesk
HTTPDIRFS_BUILD_PACKAGES=(libcurl4-openssl-dev libexpat1-dev libfuse3-dev libgumbo-dev libssl-dev
  meson ninja-build pkgconf uuid-dev gcc curl xz-utils)

httpdirfs_build() {  # in the empty directory $1
  local work=$1 stanza version tarball sha dir
  curl -fsSL --retry 2 -o "$work/Sources.xz" "$DEBIAN_MIRROR/dists/sid/main/source/Sources.xz" || return 1
  stanza=$(xz -dc "$work/Sources.xz" | awk -v RS= '$0 ~ /(^|\n)Package: httpdirfs-fuse\n/ && !n++') || return 1
  version=$(sed -n 's/^Version: \([0-9]*:\)\{0,1\}\([^-]*\).*/\2/p' <<<"$stanza")
  dir=$(sed -n 's/^Directory: //p' <<<"$stanza")
  read -r sha tarball < <(sed -n 's/^ \([0-9a-f]\{64\}\) [0-9]* \(.*\.orig\.tar\.[a-z0-9]*\)$/\1 \2/p' <<<"$stanza")
  [ -n "$version" ] && [ -n "$dir" ] && [ -n "$sha" ] || { echo "no httpdirfs-fuse in sid's Sources" >&2; return 1; }
  echo ">> building httpdirfs $version from $DEBIAN_MIRROR/$dir/$tarball"
  curl -fsSL --retry 2 -o "$work/$tarball" "$DEBIAN_MIRROR/$dir/$tarball" || return 1
  echo "$sha  $work/$tarball" | sha256sum -c --quiet - || return 1
  mkdir "$work/src" && tar -xf "$work/$tarball" -C "$work/src" --strip-components=1 || return 1
  sed -i "/^subdir('tests')/d" "$work/src/meson.build"  # its unit tests need a subproject (Unity)
  meson setup --prefix="$HTTPDIRFS_PREFIX" "$work/build" "$work/src" >/dev/null || return 1
  ninja -C "$work/build" >/dev/null || return 1
  $SUDO install -D -m 0755 "$work/build/httpdirfs" "$HTTPDIRFS_PREFIX/bin/httpdirfs" || return 1
}

httpdirfs_current() {
  local have work
  [ -x "$HTTPDIRFS_PREFIX/bin/httpdirfs" ] && return 0
  have=$(httpdirfs --version 2>&1 | sed -n 's/^HTTPDirFS version \([0-9.]*\).*/\1/p' || true)
  if [ -n "$have" ] && dpkg --compare-versions "$have" ge 1.2.10; then return 0; fi
  work=$(mktemp -d)
  (apt_install "${HTTPDIRFS_BUILD_PACKAGES[@]}") && httpdirfs_build "$work" || echo "warning: could not build a current httpdirfs; SIF lazy starts use httpdirfs ${have:-(none)}, slower and without a block cache" >&2
  rm -rf "$work"
}

python_venv() {
  local py=python3
  if ! $py -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: neurodesk needs Python 3.11 or newer (found $($py --version 2>&1))" >&2
    exit 1
  fi
  [ -x .venv/bin/python ] || $py -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[dev]"
}

case "$mode" in
  setup)
    apt_install "${CORE_PACKAGES[@]}"
    python_venv
    ;;
  demo)
    apt_install "${CORE_PACKAGES[@]}"
    python_venv
    exec .venv/bin/neurodesk demo
    ;;
  test)
    apt_install "${CORE_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
    # neurodesk hub installs configurable-http-proxy with npm (a Node.js that ships npm counts)
    command -v npm >/dev/null || apt_install nodejs npm
    httpdirfs_current  # after httpdirfs from TEST_PACKAGES: a current build when that one is too old
    python_venv
    echo ">> ruff"; .venv/bin/ruff check src tests benchmarks; .venv/bin/ruff format --check src tests benchmarks
    echo ">> mypy"; .venv/bin/mypy src
    echo ">> pytest"; exec .venv/bin/python -m pytest -q --durations=20
    ;;
  *)
    echo "usage: $0 demo|test|setup" >&2
    exit 2
    ;;
esac
