"""The wrapper's fast path: the common call runs a command line decided at install time.

It must be the very command line the full logic builds for the same call (compared with the
full logic's ``NEURODESK_WRAPPER_PRINT=1`` output, which tests/unit/test_wrapper_rules.py
compares with the RunSpec), and every call whose inputs differ from those install time
assumed must go on to the full logic. Which path ran is read from the shell's ``-x`` trace:
only the fast path assigns ``nd_F``. The launcher is replaced by a script printing its
arguments, and ``bwrap`` (and, for one case, ``apptainer``) by scripts on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from neurodesk.install.installer import install_image
from neurodesk.runtime.launcher import PREFIX_PATH
from tests.unit.test_install import make_image

DASH = shutil.which("dash")
pytestmark = pytest.mark.skipif(DASH is None, reason="dash is not installed")
REPO_TESTS = Path(__file__).resolve().parents[1]
ARGS = ["a b", "", "-n", "x\ny", "*"]
PRINTING = '#!/bin/sh\nprintf "%s\\n" "$@"\n'


class Fast:
    def __init__(self, wrapper: Path, home: str, fakebin: Path, launcher: Path) -> None:
        self.wrapper, self.home, self.fakebin, self.launcher = wrapper, home, fakebin, launcher

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": f"{self.fakebin}:/usr/bin:/bin", "HOME": self.home, **extra}

    def run(self, env: dict[str, str], cwd: str, shell: str = "dash") -> tuple[bool, list[str]]:
        """(whether the fast path ran, the words the launcher or bwrap got)."""
        proc = subprocess.run(
            [shell, "-x", str(self.wrapper), *ARGS],
            capture_output=True,
            text=True,
            env={**env, "PWD": cwd},
            cwd=cwd,
            check=False,
        )
        return "nd_F=" in proc.stderr, proc.stdout.split("\n")[:-1]

    def printed(self, env: dict[str, str], cwd: str, shell: str = "dash") -> list[str]:
        proc = subprocess.run(
            [shell, str(self.wrapper), *ARGS],
            capture_output=True,
            text=True,
            env={**env, "PWD": cwd, "NEURODESK_WRAPPER_PRINT": "1"},
            cwd=cwd,
            check=True,
        )
        return proc.stdout.split("\n")[:-1]


def _install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path) -> Fast:
    record = make_image(tmp_path)
    (record.rootfs / "etc/passwd").write_text("nobody:x:65534:65534::/:/bin/sh\n")
    (record.rootfs / "etc/group").write_text("nogroup:x:65534:\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("TMPDIR", raising=False)
    prefix = tmp_path / "prefix"
    wrapper = install_image(record, prefix).bin_dir / "tbreg"
    launcher = prefix / PREFIX_PATH
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(PRINTING)
    launcher.chmod(0o755)
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    (fakebin / "bwrap").write_text(PRINTING)
    (fakebin / "bwrap").chmod(0o755)
    return Fast(wrapper, str(home), fakebin, launcher)


@pytest.fixture(params=["home-in-tmp", "home-elsewhere", "home-in-image"])
def fast(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fast:
    if request.param == "home-in-tmp":
        home = tmp_path / "home"
        (home / "data").mkdir(parents=True)
    elif request.param == "home-elsewhere":  # outside /tmp: no other bind holds it
        home = REPO_TESTS
    else:  # the image has /usr: a working directory below it may need a layout of its own
        home = Path("/usr")
    return _install(tmp_path, monkeypatch, home)


def _outside_cwd() -> str | None:
    """A directory outside /tmp whose top-level name the test image has nothing at."""
    here = str(REPO_TESTS / "unit")
    top = here.split("/")[1]
    return None if top in ("tmp", "usr", "opt", "etc", "bin", "var") else here


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_fast_path_builds_the_full_logics_command_line(fast: Fast, shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    cwds = [fast.home, "/tmp"]
    if Path(fast.home, "data").is_dir():
        cwds.append(f"{fast.home}/data")
    elif fast.home == str(REPO_TESTS):
        cwds.append(str(REPO_TESTS / "unit"))  # below $HOME
    outside = _outside_cwd()
    if outside is not None and fast.home != str(REPO_TESTS):
        cwds.append(outside)  # bound on its own, between $HOME's bind and the store's
    envs = [
        fast.env(),
        fast.env(TERM="xterm", LANG="C.UTF-8", COLORTERM="truecolor", XAUTHORITY="/x a"),
        fast.env(TMPDIR="/tmp", NEURODESK_RUNTIME="bwrap"),
        fast.env(NEURODESK_GPU="0", SECRET="not passed"),
    ]
    for env in envs:
        for cwd in cwds:
            took_fast, got = fast.run(env, cwd, shell)
            assert took_fast, (env, cwd)
            assert got == ["-e", str(1 + len(ARGS)), *fast.printed(env, cwd, shell)], (env, cwd)
    # LC_* and APPTAINERENV_* are the launcher's to add, on either path (runtime/launcher.c)
    env = fast.env(LC_ALL="C", APPTAINERENV_FOO="1")
    assert fast.run(env, fast.home, shell) == fast.run(fast.env(), fast.home, shell)


def test_every_other_call_takes_the_full_logic(
    fast: Fast, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    calls: list[tuple[dict[str, str], str]] = [
        (fast.env(HOME=str(other)), fast.home),
        (fast.env(TMPDIR=str(other)), fast.home),
        (fast.env(DISPLAY=":1"), fast.home),
        (fast.env(NEURODESK_BINDPATH=str(other)), fast.home),
        (fast.env(APPTAINER_BINDPATH=str(other)), fast.home),
        (fast.env(SINGULARITY_BINDPATH=str(other)), fast.home),
        (fast.env(NEURODESK_GPU="1"), fast.home),
        (fast.env(NEURODESK_RUNTIME="apptainer"), fast.home),
        (fast.env(NEURODESK_RUNTIME_OPTS="--unshare-net"), fast.home),
        (fast.env(NEURODESK_WRAPPER_PRINT="1"), fast.home),
        (fast.env(HOME=fast.home + ":" + str(other)), fast.home),  # no match by chance
        (fast.env(), "/"),  # holds every bind
        (fast.env(), "/opt"),  # a non-empty image directory
        (fast.env(), "/usr/share"),  # a system directory
        (fast.env(), "/var/tmp"),  # below a system directory
    ]
    if not fast.home.startswith("/tmp/"):
        calls.append((fast.env(), str(Path(fast.home).parent)))  # holds $HOME
    env = fast.env()
    del env["HOME"]
    calls.append((env, "/tmp"))
    for env, cwd in calls:
        took_fast, _ = fast.run(env, cwd)
        assert not took_fast, (env, cwd)
    # the same call takes the fast path when nothing differs
    assert fast.run(fast.env(), fast.home)[0]
    # another runtime on PATH: the full logic chooses (it probes bwrap, here the fake one)
    (fast.fakebin / "apptainer").write_text(PRINTING)
    (fast.fakebin / "apptainer").chmod(0o755)
    took_fast, got = fast.run(fast.env(), fast.home)
    assert not took_fast and got == ["-e", str(1 + len(ARGS)), *fast.printed(fast.env(), fast.home)]
    (fast.fakebin / "apptainer").unlink()
    # the install tree moved with a copy of its store: the copy is the one to protect
    link = fast.wrapper.parents[3] / "store"
    store = link.resolve()
    shutil.copytree(store, tmp_path / "store-copy", symlinks=True)
    link.unlink()
    link.symlink_to(tmp_path / "store-copy")
    took_fast, got = fast.run(fast.env(), fast.home)
    assert not took_fast and str(tmp_path / "store-copy") in got
    link.unlink()
    link.symlink_to(store)
    assert fast.run(fast.env(), fast.home)[0]
    # no launcher: bwrap runs directly, from the full logic
    fast.launcher.unlink()
    took_fast, got = fast.run(fast.env(), fast.home)
    assert not took_fast and got == fast.printed(fast.env(), fast.home)[1:]


def test_another_user_takes_the_full_logic(fast: Fast) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    script = f"{DASH} -x {fast.wrapper} 2>&1 | grep -c nd_F= || true"
    proc = subprocess.run(
        ["unshare", "--user", "--map-user=4321", "--map-group=4321", "sh", "-c", script],
        capture_output=True,
        text=True,
        env={**fast.env(), "USER": "alice"},
        cwd="/tmp",
        check=False,
    )
    if proc.returncode != 0 and "unshare" in proc.stderr:
        pytest.skip(f"no user namespaces here: {proc.stderr.strip()}")
    assert proc.stdout.strip() == "0"
    assert os.getuid() != 4321
