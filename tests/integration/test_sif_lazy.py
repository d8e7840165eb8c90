"""Lazy SIF installs: the SIF stays on an HTTP server (httpdirfs, squashfuse over it), the first
command fetches only what it reads, a prefetch switches to a verified local copy, and a lost
network gives an I/O error rather than a hang. Also a real unprivileged user."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurodesk.image.oci import OCILayout
from neurodesk.paths import Paths
from neurodesk.store import Store, httpdirfs
from neurodesk.store.httpdirfs import SEGMENT_MB
from neurodesk.store.sifmount import SifMeta, end_remote
from tests.conftest import assert_one_line_error, run_cli
from tests.integration.conftest import need
from tests.integration.distribution_helpers import tiny_layout
from tests.integration.sif_helpers import NginxServer, RangeServer, mounts_under

pytestmark = pytest.mark.integration

# Sleeps past the switch to the local SIF, then reads blocks nothing read before.
LATE_READ = "sleep 4; head -c 3000000 /opt/padding/blob.bin | wc -c"


@pytest.fixture
def served(dcm2niix_sif: Path, tmp_path: Path) -> Iterator[tuple[RangeServer, Path]]:
    """An HTTP server (byte ranges) holding the SIF, its .sha256, and a tree with SIFs."""
    need("squashfuse", "httpdirfs", "fusermount3", "flock", "bwrap")
    root = tmp_path / "www"
    root.mkdir()
    for path in (dcm2niix_sif, dcm2niix_sif.with_name(dcm2niix_sif.name + ".sha256")):
        os.link(path, root / path.name)
    image_id = dcm2niix_sif.name.removesuffix(".sif")
    tree = root / "tree" / "containers" / image_id
    tree.mkdir(parents=True)
    for path in (dcm2niix_sif, dcm2niix_sif.with_name(dcm2niix_sif.name + ".sha256")):
        os.link(path, tree / path.name)
    (root / "tree" / "log.txt").write_text(f"{image_id} categories:data organisation,\n")
    server = RangeServer(root)
    yield server, dcm2niix_sif
    server.close()


@pytest.fixture
def sif_home(home: Path) -> Iterator[Path]:
    yield home
    # First end the httpdirfs daemons: a stalled one would hang the unmounts (and any stat).
    for image_dir in (home / "store" / "images").glob("*"):
        end_remote(image_dir)
    for point in reversed(mounts_under(home)):
        subprocess.run(["fusermount3", "-u", "-z", point], check=False)


def _held(home: Path) -> str:
    listing = run_cli(["images", "--json"], home)
    assert listing.returncode == 0, listing.stderr
    return str(json.loads(listing.stdout)[0]["held"])


def _wrapper(home: Path) -> Path:
    return next((home / "installs" / "containers").glob("*/bin/dcm2niix"))


def _lazy_install(home: Path, url: str, *extra: str, name: str = "dcm2niix") -> None:
    proc = run_cli(["install", name, "--lazy", "--from", url, *extra], home)
    assert proc.returncode == 0, proc.stderr


def test_first_command_reads_a_small_share_of_the_image(
    served: tuple[RangeServer, Path], sif_home: Path
) -> None:
    server, sif = served
    before = server.bytes_sent
    _lazy_install(sif_home, server.url(sif.name))
    assert _held(sif_home) == "lazy SIF (HTTP)"
    assert not (next((sif_home / "store" / "images").iterdir()) / "image.sif").exists()
    proc = subprocess.run([str(_wrapper(sif_home)), "-h"], capture_output=True, text=True)
    assert proc.returncode == 0 and "Chris Rorden" in proc.stdout, proc.stderr
    share = (server.bytes_sent - before) / sif.stat().st_size
    assert share < 0.10, f"fetched {share:.1%} of the image"


def test_the_block_cache_returns_the_files_bytes_for_reads_across_its_segments(
    served: tuple[RangeServer, Path], sif_home: Path
) -> None:
    """httpdirfs 1.2.5's --cache returned zeros for a read crossing into a segment not cached
    yet; ``lazy_cache: true`` turns it on (under $NEURODESK_HOME/cache) only with a fixed one."""
    tool = httpdirfs.find()
    if tool is None or not tool.cache_safe:
        found = tool.version_text if tool else "none"
        pytest.skip(f"httpdirfs {found} here: its cache is off (scripts/bootstrap.sh builds one)")
    server, sif = served
    (sif_home / "config.yaml").write_text("lazy_cache: true\n")
    _lazy_install(sif_home, server.url(sif.name))
    image_dir = next((sif_home / "store" / "images").iterdir())
    meta = SifMeta.load(image_dir)
    assert meta is not None and meta.cache is not None
    assert Path(meta.cache).is_relative_to(sif_home / "cache") and Path(meta.cache).is_dir()
    data = sif.read_bytes()
    segment = SEGMENT_MB << 20
    with (image_dir / "remote" / str(meta.remote_name)).open("rb", buffering=0) as remote:
        # From the last boundary back: each read starts in a segment nothing has read yet.
        for boundary in reversed(range(segment, len(data), segment)):
            start = boundary - 4096 - 512 * (boundary // segment % 7)
            remote.seek(start)
            got = remote.read(12288)
            assert got == data[start : start + 12288], f"wrong bytes at {start}"
    assert any(Path(meta.cache).rglob("*")), "nothing was cached"
    assert run_cli(["rm", "dcm2niix"], sif_home).returncode == 0  # rm removes its cache too
    assert not Path(meta.cache).exists()


def test_lazy_from_nginx_as_object_storage(
    served: tuple[RangeServer, Path], sif_home: Path
) -> None:
    """A real web server: nginx answers ranges with 206 but no Accept-Ranges header (which
    httpdirfs's own range check wants); Range support is checked at install instead."""
    need("nginx")
    _, sif = served
    nginx = NginxServer(sif.parent)
    try:
        _lazy_install(sif_home, nginx.url(sif.name))
        proc = subprocess.run([str(_wrapper(sif_home)), "-h"], capture_output=True, text=True)
        assert proc.returncode == 0 and "Chris Rorden" in proc.stdout, proc.stderr
        assert nginx.bytes_sent < sif.stat().st_size * 0.10
    finally:
        for image_dir in (sif_home / "store" / "images").glob("*"):
            end_remote(image_dir)
        nginx.close()


def test_lazy_from_a_tree_of_sifs(served: tuple[RangeServer, Path], sif_home: Path) -> None:
    server, _ = served
    _lazy_install(sif_home, server.url("tree"))
    proc = run_cli(["exec", "dcm2niix", "--", "dcm2niix", "-h"], sif_home)
    assert proc.returncode == 0 and "Chris Rorden" in proc.stdout, proc.stderr


def test_publish_tree_sif_serves_lazy_installs(tmp_path: Path, sif_home: Path) -> None:
    """Our own distribution: ``publish --tree DIR --sif``, DIR served over HTTP, and a lazy
    install from it (a tiny image: the route, not the tool, is under test here)."""
    need("squashfuse", "httpdirfs", "fusermount3", "flock", "mksquashfs")
    publisher = tmp_path / "publisher"
    layout = tiny_layout(tmp_path / "layout", name="treetool")
    record = Store(Paths(publisher).store).import_layout(
        OCILayout(layout), "treetool", "1.0", "20260101"
    )
    www = tmp_path / "www"
    proc = run_cli(["publish", "treetool", "--tree", str(www / "tree"), "--sif"], publisher)
    assert proc.returncode == 0, proc.stderr
    server = RangeServer(www)
    try:
        _lazy_install(sif_home, server.url("tree"), name="treetool")
        assert _held(sif_home) == "lazy SIF (HTTP)"
        used = Store(Paths(sif_home).store).resolve("treetool")
        data = (used.rootfs / "opt" / "tiny" / "data.bin").read_bytes()
        assert data == (record.rootfs / "opt" / "tiny" / "data.bin").read_bytes()
    finally:
        for image_dir in (sif_home / "store" / "images").glob("*"):
            end_remote(image_dir)
        server.close()


def test_prefetch_switches_to_the_local_sif_without_disturbing_a_running_command(
    served: tuple[RangeServer, Path], sif_home: Path
) -> None:
    server, sif = served
    _lazy_install(sif_home, server.url(sif.name))
    # A command that is running across the switch, and reads after it (blocks never read yet).
    env = dict(os.environ, NEURODESK_HOME=str(sif_home))
    running = subprocess.Popen(
        [sys.executable, "-m", "neurodesk", "exec", "dcm2niix", "--", "sh", "-c", LATE_READ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    prefetch = subprocess.run(
        [sys.executable, "-m", "neurodesk.store.sifprefetch", "dcm2niix"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert prefetch.returncode == 0, prefetch.stderr
    out, err = running.communicate(timeout=120)
    assert running.returncode == 0 and out.strip() == "3000000", err
    image_dir = next((sif_home / "store" / "images").iterdir())
    assert (image_dir / "image.sif").stat().st_size == sif.stat().st_size
    assert _held(sif_home) == "mounted SIF"
    after = server.bytes_sent
    proc = subprocess.run([str(_wrapper(sif_home)), "-h"], capture_output=True, text=True)
    assert proc.returncode == 0 and "Chris Rorden" in proc.stdout, proc.stderr
    assert server.bytes_sent == after  # local now: nothing more from the server
    assert mounts_under(sif_home) == [str(image_dir / "mnt" / "sif")]


def test_install_prefetch_runs_in_the_background(
    served: tuple[RangeServer, Path], sif_home: Path
) -> None:
    server, sif = served
    _lazy_install(sif_home, server.url(sif.name), "--prefetch")
    deadline = time.monotonic() + 120
    while _held(sif_home) != "mounted SIF" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _held(sif_home) == "mounted SIF"
    log = next((sif_home / "logs").glob("prefetch-*.log")).read_text()
    assert "now held as a local SIF" in log


def test_prefetch_refuses_a_file_that_does_not_match_its_digest(
    served: tuple[RangeServer, Path], sif_home: Path
) -> None:
    server, sif = served
    sidecar = server.httpd.root / (sif.name + ".sha256")
    sidecar.unlink()
    sidecar.write_text("0" * 64 + "\n")
    _lazy_install(sif_home, server.url(sif.name))
    env = {"NEURODESK_HOME": str(sif_home)}
    proc = subprocess.run(
        [sys.executable, "-m", "neurodesk.store.sifprefetch", "dcm2niix"],
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "expected sha256:000" in proc.stderr
    assert _held(sif_home) == "lazy SIF (HTTP)"
    image_dir = next((sif_home / "store" / "images").iterdir())
    assert not list(image_dir.glob("image.sif*"))


def test_lost_network_is_an_io_error_not_a_hang_and_the_next_call_reconnects(
    served: tuple[RangeServer, Path], sif_home: Path
) -> None:
    server, sif = served
    _lazy_install(sif_home, server.url(sif.name))
    server.down.set()
    start = time.monotonic()
    proc = run_cli(
        ["exec", "dcm2niix", "--", "sh", "-c", "cat /opt/padding/blob.bin > /dev/null"],
        sif_home,
        timeout=120,
    )
    assert time.monotonic() - start < 60
    assert proc.returncode != 0 and "Input/output error" in proc.stderr, proc.stderr
    server.down.clear()
    again = run_cli(["exec", "dcm2niix", "--", "dcm2niix", "-h"], sif_home)
    assert again.returncode == 0 and "Chris Rorden" in again.stdout, again.stderr
    said = [line for line in again.stderr.splitlines() if line.startswith("neurodesk:")]
    assert len(said) <= 1, again.stderr


def test_a_server_that_stops_sending_is_an_io_error_within_the_configured_timeout(
    served: tuple[RangeServer, Path], sif_home: Path
) -> None:
    """The server answers, sends its headers and then nothing more (httpdirfs has no transfer
    timeout of its own): the watchdog beside it gives the reader an I/O error after the
    configured ``timeout``, and the next call connects again with one line."""
    server, sif = served
    (sif_home / "config.yaml").write_text("timeout: 2\n")
    _lazy_install(sif_home, server.url(sif.name))
    server.stall.set()
    start = time.monotonic()
    try:
        proc = run_cli(
            ["exec", "dcm2niix", "--", "sh", "-c", "cat /opt/padding/blob.bin > /dev/null"],
            sif_home,
            timeout=60,
        )
    finally:
        took = time.monotonic() - start
        server.stall.clear()
        server.resume.set()
    assert proc.returncode != 0 and "Input/output error" in proc.stderr, proc.stderr
    assert took < 2 + 8, f"the stalled read took {took:.1f}s with timeout: 2"
    failed = next((sif_home / "store" / "images").iterdir()) / "remote.failed"
    assert "sent nothing for 2s" in failed.read_text()
    again = run_cli(["exec", "dcm2niix", "--", "dcm2niix", "-h"], sif_home, timeout=120)
    assert again.returncode == 0 and "Chris Rorden" in again.stdout, again.stderr
    said = [line for line in again.stderr.splitlines() if line.startswith("neurodesk:")]
    assert len(said) == 1 and "connecting again" in said[0], again.stderr


def test_lazy_without_a_digest_is_refused(served: tuple[RangeServer, Path], sif_home: Path) -> None:
    server, sif = served
    (server.httpd.root / (sif.name + ".sha256")).unlink()
    proc = run_cli(["install", "dcm2niix", "--lazy", "--from", server.url(sif.name)], sif_home)
    assert_one_line_error(proc, "no sha256")


USER = "ndsiftest"


@pytest.fixture
def unprivileged() -> Iterator[pwd.struct_passwd]:
    need("useradd", "userdel", "runuser")
    # Not under pytest's tmp_path: its parents are private to root.
    home = Path(tempfile.mkdtemp(prefix="nd-sif-user-"))
    home.chmod(0o755)
    subprocess.run(["userdel", USER], capture_output=True, check=False)
    made = subprocess.run(
        ["useradd", "-M", "-d", str(home), "-s", "/bin/sh", USER], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot create an unprivileged user here: {made.stderr.strip()}")
    try:
        yield pwd.getpwnam(USER)
    finally:
        subprocess.run(["userdel", USER], capture_output=True, check=False)
        for point in reversed(mounts_under(home)):
            subprocess.run(["fusermount3", "-u", "-z", point], check=False)
        shutil.rmtree(home, ignore_errors=True)


def test_an_unprivileged_user_runs_the_sif_without_python(
    dcm2niix_sif: Path, unprivileged: pwd.struct_passwd
) -> None:
    """Root imports and installs; a real unprivileged user calls the wrapper (sh only): it
    mounts through setuid fusermount3 where /dev/fuse allows, else unpacks once and says so."""
    need("bwrap", "flock", "unsquashfs")
    nd_home = Path(unprivileged.pw_dir) / "nd"
    nd_home.mkdir()
    assert run_cli(["import", str(dcm2niix_sif)], nd_home).returncode == 0
    assert run_cli(["install", "dcm2niix"], nd_home).returncode == 0
    for point in reversed(mounts_under(nd_home)):  # install mounted it as root
        subprocess.run(["fusermount3", "-u", "-z", point], check=True)
    shutil.chown(unprivileged.pw_dir, unprivileged.pw_uid)
    for dirpath, dirnames, filenames in os.walk(unprivileged.pw_dir):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), unprivileged.pw_uid, -1)
    run = [
        "runuser",
        "-u",
        USER,
        "--",
        "env",
        f"HOME={unprivileged.pw_dir}",
        "PATH=/usr/bin:/bin",
        str(_wrapper(nd_home)),
        "-h",
    ]
    first = subprocess.run(
        run, capture_output=True, text=True, cwd=unprivileged.pw_dir, timeout=300
    )
    fuse_ok = os.stat("/dev/fuse").st_mode & 0o006 == 0o006
    try:
        assert first.returncode == 0 and "Chris Rorden" in first.stdout, first.stderr
        said = [line for line in first.stderr.splitlines() if line.startswith("neurodesk:")]
        if fuse_ok:
            assert said == [] and mounts_under(nd_home)
        else:  # this machine: /dev/fuse is root-only, so libfuse cannot start for a user
            assert len(said) == 1 and "FUSE is not usable here" in said[0], first.stderr
        second = subprocess.run(
            run, capture_output=True, text=True, cwd=unprivileged.pw_dir, timeout=60
        )
        assert second.returncode == 0 and "neurodesk:" not in second.stderr
    finally:
        for point in reversed(mounts_under(nd_home)):
            subprocess.run(["fusermount3", "-u", "-z", point], check=False)
    if not fuse_ok:
        pytest.skip(
            "checked the unpack fallback only: /dev/fuse is not readable and writable by "
            "other users on this machine, so FUSE cannot work for an unprivileged user"
        )
