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
# What the whole test suite and the benchmarks need on top: the real clients and servers.
TEST_PACKAGES=(dcm2niix squashfs-tools squashfuse skopeo umoci podman runc lmod slurm-wlm munge
  docker-registry desktop-file-utils parallel hyperfine chromium chromium-driver xvfb
  tcl less procps  # tcl, less, procps: environment-modules' modulecmd.tcl, unpacked by the tests
  catatonit lua5.3  # podman --init (signals as natively); lua5.3/luac5.3 check generated modules
  tigervnc-standalone-server xauth novnc)  # neurodesk desktop's browser desktop for GUI tools

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
