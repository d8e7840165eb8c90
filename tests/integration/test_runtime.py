"""Running real containers from the dcm2niix image: the semantics of `neurodesk exec`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurodesk.store import ImageRecord, Store
from tests.conftest import REPO, assert_one_line_error, run_cli
from tests.integration.conftest import need

pytestmark = pytest.mark.integration


def nd_exec(
    home: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(["exec", *args], home, env=env, cwd=cwd, timeout=120)


def test_image_is_read_only(nd_home: Path, dcm2niix_image: ImageRecord) -> None:
    before = sorted(os.listdir(dcm2niix_image.rootfs))
    proc = nd_exec(nd_home, "dcm2niix", "--", "sh", "-c", "touch /usr/bin/x /x 2>&1; echo rc=$?")
    assert "Read-only file system" in proc.stdout and "rc=1" in proc.stdout
    assert not (dcm2niix_image.rootfs / "usr/bin/x").exists()
    assert sorted(os.listdir(dcm2niix_image.rootfs)) == before


@pytest.fixture
def host_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    path = Path(request.param) / f"nd-cwd-{os.getpid()}"
    created_parent = not path.parent.exists()
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path)
    if created_parent:
        path.parent.rmdir()


@pytest.mark.parametrize(
    "host_dir",
    # /usr/local, /var and /etc are non-empty in the image and lack this directory: it is
    # splayed; /nd-top is a new top-level directory; /var/tmp is bound anyway.
    ["/usr/local", "/var", "/etc/ndtest", "/nd-top", "/var/tmp"],
    indirect=True,
)
def test_current_directory_always_works(
    nd_home: Path, dcm2niix_image: ImageRecord, host_dir: Path
) -> None:
    (host_dir / "in.txt").write_text("from the host\n")
    proc = nd_exec(
        nd_home, "dcm2niix", "--", "sh", "-c", "pwd; cat in.txt; echo out > out.txt", cwd=host_dir
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{host_dir}\nfrom the host\n"
    assert (host_dir / "out.txt").read_text() == "out\n"
    assert not (dcm2niix_image.rootfs / str(host_dir).lstrip("/")).exists()


def test_home_and_tmpdir_are_available(
    nd_home: Path, dcm2niix_image: ImageRecord, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    tmpdir = Path("/var/tmp") / f"nd-tmpdir-{os.getpid()}"
    home.mkdir()
    tmpdir.mkdir()
    try:
        script = 'echo "$HOME $TMPDIR"; echo h > "$HOME/h"; echo t > "$TMPDIR/t"'
        proc = nd_exec(
            nd_home, "dcm2niix", "--", "sh", "-c", script,
            env={"HOME": str(home), "TMPDIR": str(tmpdir)}, cwd=tmp_path,
        )  # fmt: skip
        assert proc.stdout == f"{home} {tmpdir}\n", proc.stderr
        assert (home / "h").read_text() == "h\n" and (tmpdir / "t").read_text() == "t\n"
    finally:
        shutil.rmtree(tmpdir)


def test_bindpath_variables_are_honoured_and_deduplicated(
    nd_home: Path, dcm2niix_image: ImageRecord, tmp_path: Path
) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text(name)
    env = {
        "NEURODESK_BINDPATH": f"{tmp_path}/a:/mnt/a,{tmp_path}/c:/data/c",
        "APPTAINER_BINDPATH": f"{tmp_path}/b:/mnt/b:ro",
        "SINGULARITY_BINDPATH": f"{tmp_path}/a:/mnt/a,{tmp_path}/c:/data/c",  # given twice
    }
    script = "cat /mnt/a/f /mnt/b/f /data/c/f; echo; touch /mnt/a/w && touch /mnt/b/w; echo rc=$?"
    proc = nd_exec(nd_home, "dcm2niix", "--", "sh", "-c", script, env=env, cwd=tmp_path)
    assert proc.stdout.startswith("abc\n"), proc.stderr
    assert "rc=1" in proc.stdout  # b is read-only
    assert (tmp_path / "a" / "w").exists() and not (tmp_path / "b" / "w").exists()


def test_environment_is_clean(nd_home: Path, dcm2niix_image: ImageRecord, tmp_path: Path) -> None:
    env = {
        "SECRET_TOKEN": "leak",
        "LD_PRELOAD": "/nonexistent.so",
        "PYTHONPATH": "/host",
        "DISPLAY": ":77",
        "TERM": "xterm-test",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "APPTAINERENV_FROM_APPTAINER": "yes",
    }
    proc = run_cli(
        ["exec", "--env", "MINE=1", "--env", "EMPTY=", "dcm2niix", "--", "env"],
        nd_home, env=env, cwd=tmp_path,
    )  # fmt: skip
    seen = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert proc.returncode == 0, proc.stderr
    for name in ("SECRET_TOKEN", "LD_PRELOAD", "PYTHONPATH", "NEURODESK_HOME"):
        assert name not in seen
    assert seen["DISPLAY"] == ":77" and seen["TERM"] == "xterm-test"
    assert seen["LANG"] == "C.UTF-8" and seen["LC_ALL"] == "C"
    assert seen["MINE"] == "1" and seen["EMPTY"] == "" and seen["FROM_APPTAINER"] == "yes"
    assert seen["DEPLOY_BINS"] == "dcm2niix"


def test_deploy_env_is_applied(nd_home: Path, dcm2niix_image: ImageRecord, tmp_path: Path) -> None:
    env = {**dcm2niix_image.env, "DEPLOY_ENV_FSLDIR": "/opt/fsl", "DEPLOY_ENV_OUT": "NIFTI_GZ"}
    home = tmp_path / "ndhome"
    Store(home / "store").register_sandbox(dcm2niix_image.rootfs, "envtool", "1", "20260101", env)
    proc = nd_exec(home, "envtool", "--", "sh", "-c", 'echo "$FSLDIR $OUT"', cwd=tmp_path)
    assert proc.stdout == "/opt/fsl NIFTI_GZ\n", proc.stderr


def test_user_identity_resolves_for_an_unknown_uid(
    nd_home: Path, dcm2niix_image: ImageRecord, tmp_path: Path
) -> None:
    """uid 4321 has no passwd entry anywhere: the container gets one made up for it."""
    need("unshare")
    script = "id -un; whoami; id -gn; echo ~"
    proc = subprocess.run(
        ["unshare", "--user", "--map-user=4321", "--map-group=4321",
         sys.executable, "-m", "neurodesk", "exec", "dcm2niix", "--", "sh", "-c", script],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={"PATH": os.environ["PATH"], "USER": "alice", "HOME": str(tmp_path),
             "NEURODESK_HOME": str(nd_home), "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    assert proc.stdout == f"alice\nalice\nalice\n{tmp_path}\n", proc.stderr
    proc = nd_exec(nd_home, "dcm2niix", "--", "sh", "-c", "id -un; whoami")
    assert proc.stdout == "root\nroot\n"


def test_exit_codes_stdin_stdout_stderr_and_pipes(
    nd_home: Path, dcm2niix_image: ImageRecord, tmp_path: Path
) -> None:
    script = "read a; echo out:$a; echo err:$a >&2; exit 42"
    nd = [sys.executable, "-m", "neurodesk", "exec", "dcm2niix", "--", "sh", "-c", script]
    env = dict(os.environ, NEURODESK_HOME=str(nd_home))
    for argv in (["sh", "-c", script], nd):  # native first, then in the container
        proc = subprocess.run(argv, input="hi\n", capture_output=True, text=True, env=env)
        assert (proc.returncode, proc.stdout, proc.stderr) == (42, "out:hi\n", "err:hi\n")
    pipeline = (
        f"printf 'b\\na\\n' | {sys.executable} -m neurodesk exec dcm2niix -- sort "
        f"| {sys.executable} -m neurodesk exec dcm2niix -- tr a-z A-Z; echo rc=$?"
    )
    proc = subprocess.run(["sh", "-c", pipeline], capture_output=True, text=True, env=env)
    assert proc.stdout == "A\nB\nrc=0\n", proc.stderr
    big = subprocess.run(
        [*nd[:-3], "head", "-c", "5000000", "/dev/zero"], capture_output=True, env=env
    )
    assert len(big.stdout) == 5_000_000


# The background sleep must not hold stdout open once the shell has exited.
TRAP = 'trap "echo got {sig}; kill $!; exit 3" {sig}; echo ready; sleep 100 >/dev/null & wait'


def _signalled(argv: list[str], sig: signal.Signals, env: dict[str, str]) -> tuple[int, str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    if "ready" in " ".join(argv):
        assert proc.stdout.readline() == "ready\n"
    else:
        time.sleep(1.5)  # no output to wait for: give it time to start
    proc.send_signal(sig)
    out = proc.stdout.read()
    return proc.wait(timeout=30), out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_reach_the_program_and_the_status_reflects_them(
    nd_home: Path, dcm2niix_image: ImageRecord, sig: signal.Signals
) -> None:
    env = dict(os.environ, NEURODESK_HOME=str(nd_home))
    name = sig.name.removeprefix("SIG")
    nd = [sys.executable, "-m", "neurodesk", "exec", "dcm2niix", "--"]
    for command in (["sh", "-c", TRAP.format(sig=name)], ["sleep", "100"]):
        native = _signalled(command, sig, env)
        contained = _signalled([*nd, *command], sig, env)
        assert contained == native, command
    assert native == (-sig, "")  # the default action: killed by that very signal


def test_gpu_says_clearly_when_there_is_none(nd_home: Path, dcm2niix_image: ImageRecord) -> None:
    if list(Path("/dev").glob("nvidia[0-9]*")):
        pytest.skip("this machine has an NVIDIA GPU")
    proc = run_cli(["exec", "--gpu", "dcm2niix", "--", "true"], nd_home)
    assert_one_line_error(proc, "no NVIDIA GPU", "run without --gpu")


def test_x11_socket_and_cookie_are_visible(
    nd_home: Path, dcm2niix_image: ImageRecord, tmp_path: Path
) -> None:
    need("Xvfb")
    display = 90 + os.getpid() % 50
    cookie = tmp_path / "xauth"
    cookie.write_bytes(b"\x01\x00cookie")
    server = subprocess.Popen(
        ["Xvfb", f":{display}", "-nolisten", "tcp", "-auth", str(cookie)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        socket = Path(f"/tmp/.X11-unix/X{display}")
        for _ in range(100):
            if socket.exists():
                break
            time.sleep(0.05)
        script = f'test -S {socket} && echo "$DISPLAY" && wc -c < "$XAUTHORITY"'
        env = {"DISPLAY": f":{display}", "XAUTHORITY": str(cookie)}
        proc = nd_exec(nd_home, "dcm2niix", "--", "sh", "-c", script, env=env, cwd=Path("/"))
        assert proc.stdout == f":{display}\n8\n", proc.stderr
    finally:
        server.terminate()
        server.wait()


def test_forcing_a_missing_runtime_is_one_line(nd_home: Path, dcm2niix_image: ImageRecord) -> None:
    for runtime in ("apptainer", "singularity", "docker"):
        if shutil.which(runtime):
            continue
        proc = run_cli(["exec", "--runtime", runtime, "dcm2niix", "--", "true"], nd_home)
        assert_one_line_error(proc, f"runtime '{runtime}' is not installed")


def test_podman_runs_the_same_image_read_only(
    nd_home: Path, dcm2niix_image: ImageRecord, tmp_path: Path
) -> None:
    need("podman", "runc")
    (tmp_path / "in.txt").write_text("data\n")
    before = sorted(os.listdir(dcm2niix_image.rootfs))
    script = "pwd; cat in.txt; echo $MINE; touch /usr/x 2>/dev/null || echo ro; exit 5"
    proc = run_cli(
        ["exec", "--runtime", "podman", "--env", "MINE=1", "dcm2niix", "--", "sh", "-c", script],
        nd_home, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == f"{tmp_path}\ndata\n1\nro\n"
    assert sorted(os.listdir(dcm2niix_image.rootfs)) == before


def test_shell_runs_the_image_shell(nd_home: Path, dcm2niix_image: ImageRecord) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "neurodesk", "shell", "dcm2niix"],
        input="echo in $0; cat /build.yaml | head -1; exit 3\n",
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, NEURODESK_HOME=str(nd_home)),
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (3, "in /bin/bash\nname: dcm2niix\n"), proc.stderr
