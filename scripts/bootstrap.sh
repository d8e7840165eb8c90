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
