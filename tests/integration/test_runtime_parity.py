"""One matrix of scenarios, four ways into a container, the same observable result.

Each scenario (working directory, binds, environment, identity, X11, stdin, quoting, exit
status, signals) runs ``sh -c SCRIPT ARGS`` through the full commands a user types:
``neurodesk exec``, the installed wrapper (run by dash, whatever /bin/sh is), ``neurodesk
batch run --executor local`` (the output is the task's log, the status its record's exit code)
and ``neurodesk test`` on a recipe whose fulltest.yaml holds the scenario (its expected exit
code; the test passing stands for the expected output), all with real bwrap, and through
``neurodesk exec --runtime podman``; the results must be equal: stdout and the exit status (a
signal as 128+N). By design a batch task runs in its output directory with no stdin, and a
recipe test in a scratch directory with a fixed environment and no stdin: those routes skip
the rows about the caller's working directory, environment or stdin. Apptainer and
singularity are not installable here: the wrapper's command line for them is checked against
the RunSpec's translation instead, with a stand-in program that prints it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from neurodesk.install.installer import install_image
from neurodesk.install.wrapper import render_wrapper
from neurodesk.runtime.apptainer import apptainer_argv
from neurodesk.runtime.spec import build_runspec
from neurodesk.store import ImageRecord, Store
from tests.conftest import REPO
from tests.integration.conftest import need

pytestmark = pytest.mark.integration

# podman is installed here (with runc): it runs the matrix too, through neurodesk exec
ROUTES = ("exec", "wrapper", "batch", "recipe") + (
    ("podman",) if shutil.which("podman") and shutil.which("runc") else ()
)
TAG = f"ndpar{os.getpid()}"
DASH = shutil.which("dash") or "sh"
QUOTING_ARGS = ["a b", "'q'", '"dq"', "*", "x\ny", "-n", "--", "", "$HOME"]


@dataclass
class Parity:
    record: ImageRecord
    home: Path
    wrapper: Path
    hostdir: Path  # world-readable host data, outside $HOME and /tmp


@pytest.fixture(scope="module")
def parity(nd_home: Path, dcm2niix_image: ImageRecord) -> Iterator[Parity]:
    """The dcm2niix image plus a non-empty /opt, installed with a wrapper for ``sh``."""
    need("bwrap", "unshare", "cp")

    def fill(rootfs: Path) -> dict[str, object]:
        rootfs.rmdir()
        subprocess.run(["cp", "-al", str(dcm2niix_image.rootfs), str(rootfs)], check=True)
        (rootfs / "opt/tool").mkdir(parents=True, exist_ok=True)
        (rootfs / "opt/tool/data").write_text("image data\n")
        env = [f"{k}={v}" for k, v in dcm2niix_image.env.items()]
        return {"config": {"Env": env, "Labels": {}}}

    store = Store(nd_home / "store")
    digest = "sha256:" + "ab" * 32
    record = store.import_rootfs(digest, fill, "partool", "1.0", "20260101", "test")
    prefix = nd_home / "parity-prefix"
    installed = install_image(record, prefix)
    wrapper = installed.bin_dir / "sh"
    wrapper.write_text(render_wrapper(record, "sh"))
    wrapper.chmod(0o755)
    hostdir = Path("/var/lib") / TAG
    hostdir.mkdir()
    (hostdir / "f").write_text("host file\n")
    yield Parity(record, nd_home, wrapper, hostdir)
    shutil.rmtree(hostdir)


@dataclass
class Scenario:
    name: str
    script: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    cwd: str = "/var/tmp"
    stdin: str | None = None
    routes: tuple[str, ...] = ROUTES
    as_uid: int | None = None  # run in a user namespace as this unknown uid
    expect: str | None = None  # stdout that every route must print
    code: int = 0  # the exit status every route must give (a recipe test expects it)
    caller_cwd: bool = False  # depends on the caller's working directory: no batch, no recipe
    caller_env: bool = False  # depends on the caller's environment: no recipe test

    def __post_init__(self) -> None:
        if self.caller_cwd:
            self.routes = tuple(r for r in self.routes if r not in ("batch", "recipe"))
        if self.caller_env:
            self.routes = tuple(r for r in self.routes if r != "recipe")


def base_env(p: Parity) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LC_", "APPTAINER", "SINGULAR"))
    }
    env.pop("NEURODESK_BINDPATH", None)
    env.update(
        NEURODESK_HOME=str(p.home),
        PYTHONPATH=f"{REPO / 'src'}:{REPO}",
        HOME=str(p.home.parent / "home"),
    )
    (p.home.parent / "home").mkdir(exist_ok=True)
    return env


def image_ref(p: Parity) -> str:
    return f"{p.record.name}/{p.record.version}/{p.record.builddate}"


def command(p: Parity, route: str, sc: Scenario, work: Path | None = None) -> list[str]:
    """The command line of ``route``; batch and recipe routes keep their files in ``work``."""
    argv = ["sh", "-c", sc.script, "sh", *sc.args]
    if route == "exec":
        full = [sys.executable, "-m", "neurodesk", "exec", image_ref(p), "--", *argv]
    elif route == "podman":
        full = [sys.executable, "-m", "neurodesk", "exec", "--runtime", "podman", image_ref(p)]
        full += ["--", *argv]
    elif route == "wrapper":
        full = [DASH, str(p.wrapper), *argv[1:]]
    elif route == "batch":
        assert work is not None
        (work / "inputs.txt").write_text(f"{p.hostdir / 'f'}\n")
        braced = [a.replace("{", "{{").replace("}", "}}") for a in argv]
        full = [sys.executable, "-m", "neurodesk", "batch", "run", image_ref(p)]
        full += ["--list", str(work / "inputs.txt"), "--executor", "local", "--jobs", "1"]
        full += ["--batches", str(work / "batches"), "--", *braced]
    elif route == "recipe":
        assert work is not None
        recipe = work / p.record.name
        recipe.mkdir()
        (recipe / "build.yaml").write_text(RECIPE.format(name=p.record.name))
        test = {"name": "scenario", "command": shlex.join(argv), "expected_exit_code": sc.code}
        if sc.expect:
            test["expected_output_contains"] = sc.expect.splitlines()
        suite = {"name": p.record.name, "version": p.record.version, "tests": [test]}
        (recipe / "fulltest.yaml").write_text(yaml.safe_dump(suite))
        full = [sys.executable, "-m", "neurodesk", "test", str(recipe), "--offline", "--json"]
        full += ["--image", f"{p.record.version}/{p.record.builddate}"]
    else:  # "task": what a SLURM array task runs for a batch task, signals turned into a stop
        full = [sys.executable, "-m", "tests.integration.parity_driver", "batch", image_ref(p)]
        full += argv
    if sc.as_uid is not None:
        full = ["unshare", "--user", f"--map-user={sc.as_uid}", f"--map-group={sc.as_uid}", *full]
    return full


RECIPE = """name: {name}
version: "1.0"
architectures: [x86_64]
build:
  kind: neurodocker
  base-image: debian:bookworm
  pkg-manager: apt
  directives: []
"""


def run(p: Parity, route: str, sc: Scenario) -> tuple[int, str]:
    env = base_env(p)
    env.update(sc.env)
    for key in sc.unset:
        env.pop(key, None)
    with tempfile.TemporaryDirectory(prefix="parity-", dir=p.home) as tmp:
        work = Path(tmp)
        work.chmod(0o777)  # reachable by the unknown uid of the identity row
        proc = subprocess.run(
            command(p, route, sc, work),
            input=sc.stdin if sc.stdin is not None else "",
            capture_output=True,
            text=True,
            env=env,
            cwd=sc.cwd,
            timeout=300,
        )
        if route == "batch":
            return batch_result(work, proc)
        if route == "recipe":
            return recipe_result(sc, proc)
    code = 128 - proc.returncode if proc.returncode < 0 else proc.returncode
    return code, proc.stdout


def batch_result(work: Path, proc: subprocess.CompletedProcess[str]) -> tuple[int, str]:
    """The task's exit status (its record) and output (its log, less neurodesk's own lines)."""
    records = list((work / "batches").glob("*/tasks/0000/record.json"))
    assert len(records) == 1, proc.stdout + proc.stderr
    record = json.loads(records[0].read_text())
    assert record["runtime"]["name"] == "bwrap"  # provenance names what ran
    log = records[0].with_name("log.txt").read_text()
    out = "".join(line for line in log.splitlines(True) if not line.startswith("neurodesk: "))
    code = record["exit_code"]
    return (128 - code if code < 0 else code), out


def recipe_result(sc: Scenario, proc: subprocess.CompletedProcess[str]) -> tuple[int, str]:
    """``neurodesk test`` checked the exit status and every expected line of the output."""
    assert proc.stdout.startswith("{"), proc.stdout + proc.stderr
    got = {t["name"]: t for t in json.loads(proc.stdout)["tests"]}
    if got["scenario"]["status"] != "pass":
        return -1, json.dumps(got["scenario"])
    return sc.code, sc.expect if sc.expect is not None else "<not compared>"


def scenarios(p: Parity) -> list[Scenario]:
    bind = f"{p.hostdir}:/mnt/{TAG}:ro"
    readback = f"cat /mnt/{TAG}/f; touch /mnt/{TAG}/x 2>/dev/null && echo rw || echo ro"
    xauth = p.hostdir / "xauth"
    xauth.write_bytes(b"cookie!")
    return [
        Scenario("cwd under a system dir the image lacks", "pwd; cat m",
                 cwd=f"/usr/local/{TAG}", expect=f"/usr/local/{TAG}\nhost\n", caller_cwd=True),
        Scenario("cwd under a non-empty image dir", "pwd; cat m; cat /opt/tool/data",
                 cwd=f"/opt/{TAG}", expect=f"/opt/{TAG}\nhost\nimage data\n", caller_cwd=True),
        Scenario("cwd is a non-empty image dir", "pwd; cat /opt/tool/data", cwd="/opt",
                 expect="/opt\nimage data\n", caller_cwd=True),
        Scenario("the image's own files", "cat /opt/tool/data", expect="image data\n"),
        *[
            Scenario(f"bind from {var}", readback, env={var: bind}, expect="host file\nro\n",
                     caller_env=True)
            for var in ("NEURODESK_BINDPATH", "APPTAINER_BINDPATH", "SINGULARITY_BINDPATH")
        ],
        Scenario(
            "environment rules",
            'echo "$FOO|$BAR|$LC_ALL|$LC_NDX|${SECRET-unset}|$LANG"',
            env={"APPTAINERENV_FOO": "a b", "SINGULARITYENV_BAR": "c", "LC_ALL": "C",
                 "LC_NDX": "x", "SECRET": "s", "LANG": "C.UTF-8"},
            expect="a b|c|C|x|unset|C.UTF-8\n", caller_env=True,
        ),
        Scenario("HOME unset", 'echo "$HOME"', unset=("HOME",), expect="/root\n",
                 caller_env=True),
        Scenario("HOME missing", 'echo "$HOME"; pwd', env={"HOME": f"/nonexistent-{TAG}"},
                 expect=f"/nonexistent-{TAG}\n/var/tmp\n", caller_cwd=True, caller_env=True),
        Scenario("TMPDIR missing", 'echo "$TMPDIR"', env={"TMPDIR": f"/nonexistent-{TAG}"},
                 expect=f"/nonexistent-{TAG}\n", caller_env=True),
        # podman cannot start inside the unprivileged user namespace this row uses; a recipe
        # test's fixed environment has no USER to name the unknown uid by
        Scenario("identity of an unknown uid", "id -un; whoami; id -u; id -gn", as_uid=4321,
                 env={"USER": "alice"}, expect="alice\nalice\n4321\nalice\n",
                 routes=("exec", "wrapper", "batch"), caller_env=True),
        Scenario("XAUTHORITY outside HOME and /tmp", 'echo "$DISPLAY"; wc -c < "$XAUTHORITY"',
                 env={"DISPLAY": ":77", "XAUTHORITY": str(xauth)}, expect=":77\n7\n",
                 caller_env=True),
        Scenario("stdin and pipes", 'read a; echo "got:$a"; echo x | tr x y', stdin="hi\n",
                 routes=("exec", "wrapper", "podman"), expect="got:hi\ny\n"),
        Scenario("argument quoting", 'for a in "$@"; do printf "[%s]\\n" "$a"; done',
                 args=QUOTING_ARGS, expect="".join(f"[{a}]\n" for a in QUOTING_ARGS)),
        Scenario("exit status", "echo out; exit 42", expect="out\n", code=42),
        Scenario("killed by a signal", "kill -TERM $$", expect="", code=143),
    ]  # fmt: skip


def test_parity_matrix(parity: Parity) -> None:
    host = [Path(f"/usr/local/{TAG}"), Path(f"/opt/{TAG}")]
    for directory in host:
        directory.mkdir()
        (directory / "m").write_text("host\n")
    failures: list[str] = []
    try:
        for sc in scenarios(parity):
            results = {route: run(parity, route, sc) for route in sc.routes}
            if sc.expect is not None:
                results["expected"] = (sc.code, sc.expect)
            if len(set(results.values())) != 1:
                failures.append(f"{sc.name}: {json.dumps(results, indent=1)}")
    finally:
        for directory in host:
            shutil.rmtree(directory)
    assert not failures, "\n".join(failures)
    # the status and signal rows match the native shell too
    assert run(parity, "exec", Scenario("", "echo out; exit 42")) == (42, "out\n")
    assert run(parity, "wrapper", Scenario("", "kill -TERM $$")) == (143, "")


# The background sleep must not hold stdout open once the shell has exited.
TRAP = "trap 'echo got {sig}; kill $!; exit 3' {sig}; echo ready; sleep 100 >/dev/null 2>&1 & wait"


def _signalled(argv: list[str], sig: signal.Signals, env: dict[str, str]) -> tuple[int, str]:
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env, cwd="/"
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    time.sleep(0.2)
    proc.send_signal(sig)
    out = proc.stdout.read()
    code = proc.wait(timeout=30)
    return (128 - code if code < 0 else code), out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_reach_the_programs_trap_on_every_route(
    parity: Parity, sig: signal.Signals
) -> None:
    name = sig.name.removeprefix("SIG")
    env = base_env(parity)
    script = TRAP.format(sig=name)
    native = _signalled(["sh", "-c", script], sig, env)
    assert native == (3, f"got {name}\n")
    sc = Scenario("signal", script)
    for route in ("exec", "wrapper"):
        assert _signalled(command(parity, route, sc), sig, env) == native, route
    if sig != signal.SIGHUP:
        # a batch task passes SIGTERM (scancel, a time limit) or SIGINT on to its program: the
        # trap runs, and the task's status records the signal
        code, out = _signalled(command(parity, "task", sc), sig, env)
        assert f"got {name}\n" in out and code == 128 + sig, (code, out)


def test_missing_image_is_one_line_on_every_route(parity: Parity, tmp_path: Path) -> None:
    moved = tmp_path / "prefix"
    shutil.copytree(parity.wrapper.parents[3], moved, symlinks=True)
    (moved / "store").unlink()
    (moved / "store").symlink_to(tmp_path / "gone")
    wrapper = moved / parity.wrapper.relative_to(parity.wrapper.parents[3])
    # the wrapper also looks where the image was at install time: hide that too
    env = dict(base_env(parity), NEURODESK_HOME=str(tmp_path / "empty-home"))
    text = wrapper.read_text().replace(str(parity.record.rootfs), str(tmp_path / "nowhere"))
    wrapper.write_text(text)
    for argv in (
        [str(wrapper), "-c", "true"],
        [sys.executable, "-m", "neurodesk", "exec", image_ref(parity), "--", "true"],
    ):
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and parity.record.id.split("_")[0] in lines[0], proc.stderr


def test_apptainer_command_line_matches_the_runspec(parity: Parity, tmp_path: Path) -> None:
    """No Apptainer in Debian 12: a stand-in prints the wrapper's command line, compared with
    the RunSpec's apptainer translation for the same call."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("apptainer", "singularity"):
        (fake / name).write_text('#!/bin/sh\nprintf \'%s\\0\' "$0" "$@"\n')
        (fake / name).chmod(0o755)
    env = base_env(parity)
    env.update(
        PATH=f"{fake}:{env['PATH']}",
        APPTAINERENV_FOO="1",
        NEURODESK_BINDPATH=f"{parity.hostdir}:/mnt/{TAG}:ro",
        NEURODESK_RUNTIME_OPTS="--contain --writable-tmpfs",
        LC_NDX="x",
    )
    for runtime in ("apptainer", "singularity"):
        env["NEURODESK_RUNTIME"] = runtime
        proc = subprocess.run(
            [str(parity.wrapper), "-c", "echo hi", "a b"],
            capture_output=True, env=env, cwd=str(parity.hostdir), check=True,
        )  # fmt: skip
        got = proc.stdout.decode().split("\0")[:-1]
        spec = build_runspec(
            parity.record, ["sh", "-c", "echo hi", "a b"], cwd=str(parity.hostdir), environ=env
        )
        want = apptainer_argv(spec, str(fake / runtime))
        assert _shape(got) == _shape(want)


def _shape(argv: list[str]) -> dict[str, object]:
    """The parts of an apptainer command line that matter, independent of option order."""
    env: dict[str, str] = {}
    binds: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--env":
            key, _, value = argv[i + 1].partition("=")
            env[key] = value  # the last one wins, as in apptainer
            i += 2
        elif word == "--bind":
            binds.append(argv[i + 1])
            i += 2
        else:
            # the image's root, spelled through the prefix's store link by the wrapper
            rest.append(os.path.realpath(word) if word.endswith("/rootfs") else word)
            i += 1
    return {"env": env, "binds": sorted(binds), "rest": rest}
