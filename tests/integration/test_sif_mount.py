"""SIF images held as one file in the store and mounted on demand with squashfuse, and the
faults around that: concurrent first calls, kill -9 mid-mount, dead mounts, bad files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, run_cli
from tests.integration.conftest import need
from tests.integration.sif_helpers import mounts_under

pytestmark = pytest.mark.integration


@pytest.fixture
def dcm_sif(dcm2niix_sif: Path) -> Path:
    need("mksquashfs", "unsquashfs", "squashfuse", "fusermount3", "flock", "bwrap")
    return dcm2niix_sif


def _import(home: Path, sif: Path, name: str = "dcmsif") -> dict[str, str]:
    proc = run_cli(
        ["import", str(sif), "--name", name, "--version", "1", "--builddate", "20260101"], home
    )
    assert proc.returncode == 0, proc.stderr
    return _image(home, name)


def _image(home: Path, name: str) -> dict[str, str]:
    listing = run_cli(["images", "--json"], home)
    assert listing.returncode == 0, listing.stderr
    return next(i for i in json.loads(listing.stdout) if i["name"] == name)


def _image_dir(home: Path) -> Path:
    (found,) = (home / "store" / "images").iterdir()
    return found


def _exec(home: Path, name: str = "dcmsif", **kw: object) -> subprocess.CompletedProcess[str]:
    return run_cli(["exec", name, "--", "dcm2niix", "-h"], home, **kw)  # type: ignore[arg-type]


@pytest.fixture
def sif_home(home: Path) -> Path:
    yield home
    for point in reversed(mounts_under(home)):
        subprocess.run(["fusermount3", "-u", "-z", point], check=False)


def test_kept_as_one_verified_file_and_mounted_on_first_exec(dcm_sif: Path, sif_home: Path) -> None:
    info = _import(sif_home, dcm_sif)
    assert info["held"] == "mounted SIF, not mounted yet"
    image_dir = _image_dir(sif_home)
    meta = json.loads((image_dir / "sif.json").read_text())
    assert (image_dir / "image.sif").stat().st_size == dcm_sif.stat().st_size == meta["size"]
    assert not mounts_under(sif_home)  # nothing unpacked, nothing mounted yet
    proc = _exec(sif_home)
    assert proc.returncode == 0 and "Chris Rorden" in proc.stdout, proc.stderr
    assert mounts_under(sif_home) == [str(image_dir / "mnt" / "sif")]
    assert _image(sif_home, "dcmsif")["held"] == "mounted SIF"
    again = _exec(sif_home)  # the mount is shared: no second one
    assert again.returncode == 0
    assert len(mounts_under(sif_home)) == 1
    # rm unmounts what it removes
    assert run_cli(["rm", "dcmsif"], sif_home).returncode == 0
    assert not mounts_under(sif_home)
    assert not list((sif_home / "store" / "images").iterdir())


def _mount_entry(point: Path) -> tuple[str, set[str]]:
    """(file system type, mount options) of the mount at ``point``."""
    with open("/proc/self/mounts") as handle:
        for line in handle:
            fields = line.split()
            if fields[1] == str(point):
                return fields[2], set(fields[3].split(","))
    raise AssertionError(f"{point} is not mounted")


def test_mounted_read_only_by_the_best_squashfuse_and_older_scripts_refreshed(
    dcm_sif: Path, sif_home: Path
) -> None:
    """Per-call speed: squashfuse_ll (the kernel keeps the never-changing image's entries and
    failed lookups), read-only; an image imported by an older neurodesk (its mount.sh calling
    plain squashfuse) gets today's script on its next exec, its values kept."""
    from neurodesk.store.sifmount import MOUNTERS, mounter

    _import(sif_home, dcm_sif)
    image_dir = _image_dir(sif_home)
    script = image_dir / "mount.sh"
    today = script.read_text()
    older = today.replace('"$nd_mounter" -o "$nd_o,offset', 'squashfuse -o "offset')
    older = "\n".join(line for line in older.splitlines() if not line.startswith("nd_mounters="))
    script.write_text(older + "\n")
    proc = _exec(sif_home)
    assert proc.returncode == 0 and "Chris Rorden" in proc.stdout, proc.stderr
    assert script.read_text() == today
    kind, options = _mount_entry(image_dir / "mnt" / "sif")
    found = mounter()
    assert found is not None
    assert kind == "fuse." + Path(found[0]).name and "ro" in options
    # every squashfuse we may pick takes its options (a typo would only show where it is picked)
    for name, opts in MOUNTERS:
        if shutil.which(name) is None:
            continue
        point = image_dir.parent.parent / f"probe-{name}"
        point.mkdir()
        argv = [
            name,
            "-o",
            f"{opts},offset={json.loads((image_dir / 'sif.json').read_text())['offset']}",
        ]
        subprocess.run([*argv, str(image_dir / "image.sif"), str(point)], check=True)
        try:
            assert (point / "usr" / "bin" / "dcm2niix").is_file()
            assert not (point / "no-such-file").exists()
        finally:
            subprocess.run(["fusermount3", "-u", str(point)], check=True)
            point.rmdir()


def test_gc_unmounts_unreferenced_images(dcm_sif: Path, sif_home: Path) -> None:
    _import(sif_home, dcm_sif)
    assert _exec(sif_home).returncode == 0
    for ref in (sif_home / "store" / "refs").rglob("*.json"):
        ref.unlink()  # as if another process removed the ref
    assert run_cli(["gc"], sif_home).returncode == 0
    assert not mounts_under(sif_home)


def test_two_first_calls_at_once_make_one_mount(dcm_sif: Path, sif_home: Path) -> None:
    _import(sif_home, dcm_sif)
    script = _image_dir(sif_home) / "mount.sh"
    procs = [
        subprocess.Popen(["sh", str(script)], stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
    assert all(code == 0 for code, _ in results), results
    assert len(mounts_under(sif_home)) == 1


def test_kill_9_mid_mount_then_the_next_call_works(
    dcm_sif: Path, sif_home: Path, tmp_path: Path
) -> None:
    _import(sif_home, dcm_sif)
    # A squashfuse (whichever mount.sh picks) that takes its time, so the first call is surely
    # killed mid-mount.
    shim = tmp_path / "slowbin"
    shim.mkdir()
    for name in ("squashfuse_ll", "squashfuse"):
        real = shutil.which(name)
        if real is not None:
            (shim / name).write_text(f'#!/bin/sh\nsleep 30\nexec {real} "$@"\n')
            (shim / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}", NEURODESK_HOME=str(sif_home))
    first = subprocess.Popen(
        [sys.executable, "-m", "neurodesk", "exec", "dcmsif", "--", "dcm2niix", "-h"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    lock = _image_dir(sif_home) / "mount.lock"
    deadline = time.monotonic() + 30
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    proc = _exec(sif_home)
    assert proc.returncode == 0 and "Chris Rorden" in proc.stdout, proc.stderr
    assert len(mounts_under(sif_home)) == 1


def test_a_dead_mount_is_found_and_remounted_with_one_line(dcm_sif: Path, sif_home: Path) -> None:
    _import(sif_home, dcm_sif)
    assert _exec(sif_home).returncode == 0
    daemon = subprocess.run(
        ["pgrep", "-f", f"squashfuse.*{_image_dir(sif_home)}"], capture_output=True, text=True
    ).stdout.split()
    assert daemon
    for pid in daemon:
        os.kill(int(pid), signal.SIGKILL)
    time.sleep(0.2)
    assert _image(sif_home, "dcmsif")["held"] == "mounted SIF, mount died"
    proc = _exec(sif_home)
    assert proc.returncode == 0 and "Chris Rorden" in proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("neurodesk:")]
    assert len(lines) == 1 and "mounting it again" in lines[0], proc.stderr
    assert _image(sif_home, "dcmsif")["held"] == "mounted SIF"


def test_truncated_sif_is_refused_in_one_line(dcm_sif: Path, home: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.sif"
    with dcm_sif.open("rb") as src, cut.open("wb") as out:
        out.write(src.read(dcm_sif.stat().st_size // 2))
    proc = run_cli(["import", str(cut), "--name", "cut", "--version", "1"], home)
    assert_one_line_error(proc, "outside the file")
    assert not list((home / "store" / "images").glob("*"))


def test_sif_truncated_in_the_store_says_so_and_rm_recovers(dcm_sif: Path, sif_home: Path) -> None:
    _import(sif_home, dcm_sif)
    held = _image_dir(sif_home) / "image.sif"
    held.chmod(0o644)
    os.truncate(held, held.stat().st_size - 4096)
    proc = _exec(sif_home)
    assert_one_line_error(proc, "truncated")
    assert "neurodesk rm dcmsif_1_20260101" in proc.stderr
    assert run_cli(["rm", "dcmsif"], sif_home).returncode == 0
    _import(sif_home, dcm_sif)
    assert _exec(sif_home).returncode == 0


def test_corrupt_squashfs_is_refused_in_one_line(dcm_sif: Path, home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sif"
    shutil.copyfile(dcm_sif, bad)
    with bad.open("r+b") as handle:
        handle.seek(32768 + 40)  # the squashfs superblock's table pointers
        handle.write(b"\xff" * 56)
    proc = run_cli(["import", str(bad), "--name", "bad", "--version", "1"], home)
    assert_one_line_error(proc, "corrupt")
    assert not list((home / "store" / "images").glob("*"))


def test_without_fuse_the_image_is_unpacked_once_with_a_reason(
    dcm_sif: Path, sif_home: Path
) -> None:
    # Held as a SIF, then used where FUSE is not usable: unpacked once, told why in one line.
    _import(sif_home, dcm_sif)
    off = {"NEURODESK_FUSE": "off"}
    proc = _exec(sif_home, env=off)
    assert proc.returncode == 0 and "Chris Rorden" in proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("neurodesk:")]
    assert len(lines) == 1 and "FUSE is not usable here" in lines[0], proc.stderr
    assert _image(sif_home, "dcmsif")["held"] == "SIF, unpacked (no FUSE)"
    second = _exec(sif_home, env=off)
    assert second.returncode == 0 and "neurodesk:" not in second.stderr
    assert not mounts_under(sif_home)
    # And at import time: unpacked straight away, the reason printed.
    other = sif_home / "other"
    other.mkdir()
    imported = run_cli(["import", str(dcm_sif), "--name", "x", "--version", "1"], other, env=off)
    assert imported.returncode == 0 and "FUSE is not usable here" in imported.stderr
    assert _image(other, "x")["held"] == "unpacked"


def test_every_runtime_runs_the_mounted_sif_and_apptainer_the_file(
    dcm_sif: Path, sif_home: Path, tmp_path: Path
) -> None:
    """bwrap and podman run the mounted partition; apptainer/singularity (not packaged in
    Debian 12: checked by their command line, through a stand-in that records it) get the SIF
    file itself, from `neurodesk exec` and from the installed wrapper alike."""
    _import(sif_home, dcm_sif, name="dcm2niix")
    assert run_cli(["install", "dcm2niix"], sif_home).returncode == 0
    runtimes = ["bwrap"] + (["podman"] if shutil.which("podman") else [])
    for runtime in runtimes:
        proc = run_cli(["exec", "--runtime", runtime, "dcm2niix", "--", "dcm2niix", "-h"], sif_home)
        assert proc.returncode == 0 and "Chris Rorden" in proc.stdout, (runtime, proc.stderr)
    fake = tmp_path / "fakebin"
    fake.mkdir()
    record = tmp_path / "apptainer.argv"
    (fake / "apptainer").write_text(
        "#!/bin/sh\n"
        'case "$1" in --version|version) echo "apptainer version 1.3.4"; exit 0 ;; esac\n'
        f'printf "%s\\n" "$@" >> {record}\n'
    )
    (fake / "apptainer").chmod(0o755)
    env = {"PATH": f"{fake}:{os.environ['PATH']}"}
    sif_file = str(_image_dir(sif_home) / "image.sif")
    proc = run_cli(
        ["exec", "--runtime", "apptainer", "dcm2niix", "--", "dcm2niix", "-h"], sif_home, env=env
    )
    assert proc.returncode == 0, proc.stderr
    argv = record.read_text().splitlines()
    assert argv[0] == "exec" and argv[argv.index(sif_file) + 1 :] == ["dcm2niix", "-h"], argv
    record.unlink()
    wrapper = next((sif_home / "installs" / "containers").glob("*/bin/dcm2niix"))
    env["NEURODESK_RUNTIME"] = "apptainer"
    proc = subprocess.run(
        [str(wrapper), "-h"], env=dict(os.environ, **env), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    argv = record.read_text().splitlines()
    images = [a for a in argv if os.path.realpath(a) == sif_file]
    assert images and argv[-2:] == ["dcm2niix", "-h"], argv
