"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    args: Sequence[str],
    home: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Run ``neurodesk ARGS`` as a user would, in its own process."""
    full_env = dict(os.environ, NEURODESK_HOME=str(home), NEURODESK_RECIPES=str(REPO / "recipes"))
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "neurodesk", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """The contract for bad input: non-zero exit, no traceback, a line that says what to do."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    # Progress lines may come first; the report itself is exactly one "error:" line.
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty NEURODESK_HOME for one test."""
    path = tmp_path / "ndhome"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def _signal_dispositions_restored() -> Iterator[None]:
    """A batch task's code run in-process (``jobs.hotpath``) sets SIGTERM/SIGINT to raise, then
    to be ignored, as it should in its own process; left so in pytest's process, every later
    test's child would start with those signals ignored (and signal tests fail)."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        if handler is not None:
            signal.signal(sig, handler)


def _fuse_mounts_under(base: Path) -> list[str]:
    """FUSE mount points below ``base``, deepest first (``/proc/self/mounts`` escapes spaces)."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        target = fields[1].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        if fields[2].startswith("fuse") and target.startswith(f"{base}/"):
            found.append(target)
    return sorted(found, key=len, reverse=True)


@pytest.fixture(scope="session", autouse=True)
def _unmount_what_tests_mounted(tmp_path_factory: pytest.TempPathFactory) -> object:
    """SIF images in test stores are mounted with squashfuse/httpdirfs: unmount them at the end,
    so no FUSE daemon outlives the run and pytest can clean its temporary directories."""
    yield None
    for target in _fuse_mounts_under(tmp_path_factory.getbasetemp()):
        for command in (["fusermount3", "-u", "-z", target], ["umount", "-l", target]):
            if subprocess.run(command, capture_output=True, check=False).returncode == 0:
                break
