"""Built-in channels in config.yaml, credentials from auth files, resumable ranged downloads
across mirrors (issue 12)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from neurodesk.errors import ValidationError
from neurodesk.sources.auth import credentials_for
from neurodesk.sources.config import load_config
from neurodesk.sources.http import HttpSettings
from neurodesk.sources.ranged import finish, ranged_download
from neurodesk.sources.transfer import CorruptBlobError, SourceError
from tests.httpserve import Fault, FileServer


def test_builtin_channels_in_upstreams_order_after_the_listed_ones(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "sources:\n  - {name: lab, kind: registry, url: reg.lab/nd}\n"
        "defaults:\n  cvmfs: false\n  object-storage: {mirrors: ['http://cache.lab/']}\n"
    )
    config = load_config(path)
    names = [c.name for c in config.channels()]
    assert names == ["lab", "sif-artifacts", "object-storage", "registry-images"]
    objects = config.named("object-storage")
    assert objects is not None and objects.mirrors == ["http://cache.lab/"] and objects.builtin
    assert config.named("registry-images").naming == "upstream"  # type: ignore[union-attr]
    fresh = load_config(tmp_path / "none.yaml")
    assert next(c.name for c in fresh.channels()) == "cvmfs"


def test_an_unknown_default_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("defaults:\n  cvmfss: false\n")
    with pytest.raises(ValidationError) as caught:
        load_config(path)
    assert "cvmfss" in caught.value.message and "cvmfs" in caught.value.message


def test_catalog_url_from_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("catalog_url: http://site/apps.json\n")
    assert load_config(path).catalog_source() == "http://site/apps.json"
    monkeypatch.setenv("NEURODESK_CATALOG_URL", "http://env/apps.json")
    assert load_config(path).catalog_source() == "http://env/apps.json"


def test_credentials_come_from_the_first_auth_file_naming_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def auth(user: str) -> dict[str, object]:
        token = base64.b64encode(f"{user}:pw".encode()).decode()
        return {"auths": {"reg.lab:5000": {"auth": token}, "https://other.io": {"auth": token}}}

    first, runtime = tmp_path / "first.json", tmp_path / "run"
    first.write_text(json.dumps(auth("alice")))
    (runtime / "containers").mkdir(parents=True)
    (runtime / "containers" / "auth.json").write_text(json.dumps(auth("bob")))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(first))
    assert credentials_for("reg.lab:5000") == ("alice", "pw")
    assert credentials_for("other.io") == ("alice", "pw")
    monkeypatch.delenv("REGISTRY_AUTH_FILE")
    assert credentials_for("reg.lab:5000") == ("bob", "pw")
    assert credentials_for("nowhere.io") is None
    (runtime / "containers" / "auth.json").write_text("{not json")
    assert credentials_for("reg.lab:5000") is None  # a broken file is skipped, not fatal


def test_ranged_download_uses_every_mirror_and_resumes(tmp_path: Path) -> None:
    data = hashlib.sha256(b"x").digest() * 131072  # 4 MiB: 64 pieces
    www = tmp_path / "www"
    www.mkdir()
    (www / "f.simg").write_bytes(data)
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    dest = tmp_path / "f.simg"
    settings = HttpSettings(timeout=2)
    piece = 64 << 10
    with FileServer(www) as fast, FileServer(www, fault=Fault(delay=0.01)) as slow:
        urls = [fast.url + "f.simg", slow.url + "f.simg"]
        # A first attempt where one mirror is down and the other breaks off its one answer
        # half-way (then fails): a stream that could run to the end of the file must not make
        # this attempt succeed when the other connections happen to fail early.
        fast.fault, slow.fault = Fault(fail_after=1, truncate=True), Fault(status=500)
        with pytest.raises(SourceError):
            ranged_download(urls, len(data), dest, settings, piece=piece)
        fast.fault, slow.fault = Fault(), Fault(delay=0.01)
        done_before = {int(n) for n in (tmp_path / "f.simg.part.done").read_text().split()[1:]}
        assert 0 < len(done_before) < 64
        before = {server.url: len(server.requests) for server in (fast, slow)}
        digest, served = ranged_download(urls, len(data), dest, settings, piece=piece)
        asked = [
            headers["Range"]
            for server in (fast, slow)
            for method, _path, headers in server.requests[before[server.url] :]
            if method == "GET"
        ]
    assert digest == expected
    assert all(served[u] > 0 for u in urls), served  # both mirrors served pieces
    # Finished pieces were not fetched again: no range asked for covers one.
    for wanted in asked:
        first, last = (int(x) for x in wanted.removeprefix("bytes=").split("-"))
        assert not done_before & set(range(first // piece, last // piece + 1)), wanted
    kept = sum(min(piece, len(data) - n * piece) for n in done_before)
    assert sum(served.values()) == len(data) - kept
    finish(dest, digest, expected)
    assert dest.read_bytes() == data and not (tmp_path / "f.simg.part").exists()


def test_a_wrong_file_never_gets_its_final_name(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "f.simg").write_bytes(b"a" * 300_000)
    dest = tmp_path / "f.simg"
    with FileServer(www) as server:
        digest, _ = ranged_download([server.url + "f.simg"], 300_000, dest, HttpSettings())
    with pytest.raises(CorruptBlobError):
        finish(dest, digest, "sha256:" + "0" * 64)
    assert not dest.exists() and not (tmp_path / "f.simg.part").exists()


def test_retry_after_is_waited_once_when_short() -> None:
    from neurodesk.sources.throttle import wait_retry_after

    slept: list[float] = []
    assert wait_retry_after(429, {"Retry-After": "2"}, slept.append) and slept == [2]
    assert not wait_retry_after(429, {"Retry-After": "3600"}, slept.append)  # next channel
    assert not wait_retry_after(429, {}, slept.append)
    assert not wait_retry_after(503, {"Retry-After": "1"}, slept.append)
    assert not wait_retry_after(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, slept.append)
    assert slept == [2]


def test_images_shows_who_vouches_for_each_image(home: Path, tmp_path: Path) -> None:
    """A SIF from object storage that no registry had a digest for is listed as
    unverified-by-publisher, in the table and in --json; one a publisher vouched for as
    publisher; one built or imported here has no origin ("-")."""
    from neurodesk.paths import Paths
    from neurodesk.sources.origins import PUBLISHER, UNVERIFIED, record_origin
    from neurodesk.store import Store
    from tests.conftest import run_cli

    store = Store(Paths(home).store)
    for name in ("froms3", "fromreg", "local"):
        rootfs = tmp_path / name
        (rootfs / "bin").mkdir(parents=True)
        (rootfs / "bin" / "true").write_text(name)
        store.register_sandbox(rootfs, name, "1.0", "20260101")
    digest = "sha256:" + "a" * 64
    record_origin(
        Paths(home), "froms3_1.0_20260101", "object-storage", "http://m/", digest, UNVERIFIED
    )
    record_origin(
        Paths(home), "fromreg_1.0_20260101", "sif-artifacts", "http://r/", digest, PUBLISHER
    )
    listed = run_cli(["images", "--json"], home)
    assert listed.returncode == 0, listed.stderr
    verified = {i["name"]: i["verified"] for i in json.loads(listed.stdout)}
    assert verified == {"froms3": UNVERIFIED, "fromreg": PUBLISHER, "local": "-"}
    table = run_cli(["images"], home)
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line for line in table.stdout.splitlines()[1:] if line.strip()}
    assert "VERIFIED" in table.stdout.splitlines()[0]
    assert UNVERIFIED in rows["froms3"] and UNVERIFIED not in rows["fromreg"]
    assert " publisher " in rows["fromreg"]


def test_connections_claim_the_lowest_free_pieces_and_take_over_at_the_end() -> None:
    from neurodesk.sources.ranged import _Plan

    plan = _Plan(16, done=set(), run=3)
    # Each connection asks for the lowest free run: they work side by side at the start of
    # the file, just ahead of the hash, not at four far-apart places.
    assert [plan.claim(slot) for slot in range(4)] == [(0, 3), (3, 6), (6, 9), (9, 12)]
    # Beyond the window ahead of the hash, a free connection claims no free piece. When the
    # hash waits for a piece still being downloaded, it takes over the back half of the
    # unstarted pieces of the connection fetching it (a slow mirror does not hold all up).
    assert plan.claim(4, limit=12, hashing=0) == (2, 3)
    assert plan.owner[1] == 0 and plan.owner[2] == 4 and 2 in plan.started
    assert plan.claim(5, limit=12, hashing=0) is None  # one piece left there: not worth it
    assert plan.claim(5, limit=12, hashing=3) == (5, 6)
    plan.done.add(6)
    assert plan.claim(6, limit=12, hashing=6) is None  # the hash is behind: wait for it
    assert plan.claim(6, limit=12) is None
    assert plan.claim(6, limit=13) == (12, 15)
    # A connection that fails gives its pieces back; the lowest free piece is claimed first.
    with plan.lock:
        plan.release(1)
    assert 3 not in plan.owner and 4 not in plan.owner
    assert plan.claim(7) == (3, 5)
    plan.done.update(set(range(16)) - {15})
    plan.owner = {15: 0}
    plan.started = set()
    # The endgame: nothing free; a single piece not yet started is taken over too.
    assert plan.claim(1) == (15, 16) and plan.owner[15] == 1
    assert plan.claim(2) is None


def test_a_checked_download_is_moved_into_the_store_not_copied_and_hashed_again(
    tmp_path: Path,
) -> None:
    from neurodesk.image.sif_write import write_sif
    from neurodesk.sources.sif_store import sha256_file
    from neurodesk.store import Store
    from neurodesk.store.sifmount import SIF_FILE
    from neurodesk.store.sifstore import add_sif

    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "bin" / "hello").write_text("#!/bin/sh\necho hello\n")
    download = write_sif(rootfs, tmp_path / "download.sif", {"PATH": "/bin"}).path
    digest, inode = sha256_file(download), download.stat().st_ino
    store = Store(tmp_path / "home" / "store")
    record = add_sif(store, download, ("hello", "1.0", "20260101"), digest=digest)
    kept = store.image_dir(digest) / SIF_FILE
    assert record.digest == digest and not download.exists()
    assert kept.stat().st_ino == inode  # the same file, renamed: no second copy
    # Without a digest (a user's own file) it is copied and hashed, the original left alone.
    other = write_sif(rootfs, tmp_path / "mine.sif", {"PATH": "/bin", "X": "1"}).path
    record = add_sif(store, other, ("hello", "1.1", "20260101"))
    assert other.exists() and record.digest == sha256_file(other)
    assert (store.image_dir(record.digest) / SIF_FILE).stat().st_ino != other.stat().st_ino
