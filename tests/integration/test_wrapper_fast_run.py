"""The wrapper's fast path run for real (bwrap, the launcher): what the program sees and how it
ends are those of the full logic for the same call (tests/unit/test_wrapper_fast.py compares
the command lines). The full logic is forced by a runtime option that changes nothing
(``--die-with-parent``, which the command line has already)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from neurodesk.install.installer import install_image
from neurodesk.install.wrapper import MORE_FILE, render_wrapper
from neurodesk.store import ImageRecord
from tests.integration.conftest import need

SCRIPT = (
    'id -u; id -un; echo "$HOME|$TMPDIR|$TERM|$LC_ALL"; pwd; ls /opt >/dev/null && echo opt; '
    'echo x > "$HOME/w" && echo wrote-home; touch "$1/x" 2>/dev/null || echo store-ro; '
    'printf "%s|" "$@"; echo; exit 7'
)


@pytest.fixture(scope="module")
def fast_sh(dcm2niix_image: ImageRecord, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wrapper for the image's ``sh``, installed with $HOME the calls below use."""
    need("bwrap")
    tmp_path = tmp_path_factory.mktemp("fast")
    home = tmp_path / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.delenv("TMPDIR", raising=False)
        installed = install_image(dcm2niix_image, tmp_path / "prefix")
        wrapper = installed.bin_dir / "sh"
        wrapper.write_text(render_wrapper(dcm2niix_image, "sh", more_file=MORE_FILE))
    wrapper.chmod(0o755)
    assert "nd_F=" in wrapper.read_text()
    return wrapper


def test_fast_path_runs_as_the_full_logic(fast_sh: Path, dcm2niix_image: ImageRecord) -> None:
    wrapper = fast_sh
    tmp_path = wrapper.parents[4]
    home = tmp_path / "home"
    store = os.path.realpath(dcm2niix_image.store_root)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TERM": "xterm", "LC_ALL": "C"}
    args = [str(wrapper), "-c", SCRIPT, "sh", store, "a b", "", "*"]
    traced = subprocess.run(
        ["sh", "-x", *args], env={**env, "PWD": str(home)}, cwd=home, capture_output=True, text=True
    )
    assert "nd_F=" in traced.stderr  # the fast path ran
    results = []
    for extra in ({}, {"NEURODESK_RUNTIME_OPTS": "--die-with-parent"}):
        for cwd in (home, tmp_path):
            (home / "w").unlink(missing_ok=True)
            proc = subprocess.run(
                args, env={**env, **extra, "PWD": str(cwd)}, cwd=cwd, capture_output=True, text=True
            )
            assert proc.returncode == 7, proc.stderr
            results.append(proc.stdout)
    assert results[:2] == results[2:]
    assert f"{home}|/tmp|xterm|C\n" in results[0] and "wrote-home\nstore-ro\n" in results[0]
    assert results[0].endswith("a b||*|\n")


def test_fast_path_forwards_signals(fast_sh: Path) -> None:
    wrapper = fast_sh
    home = wrapper.parents[4] / "home"
    script = 'trap "echo trapped; exit 3" TERM; echo ready; while :; do sleep 0.05; done'
    proc = subprocess.Popen(
        [str(wrapper), "-c", script],
        env={"PATH": os.environ["PATH"], "HOME": str(home), "PWD": str(home)},
        cwd=home,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert out == "trapped\n" and proc.returncode == 3
