"""Putting SIF files into the store as they are (one verified file, mounted on use).

:func:`add_sif` keeps a local SIF; :func:`add_lazy` registers a SIF that stays on an HTTP(S)
server and is read block by block (httpdirfs); :func:`prefetch` completes the local copy of a
lazy image, verifies it and switches the image to it. See :mod:`neurodesk.store.sifmount`.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from neurodesk.errors import ExternalCommandError, NeurodeskError
from neurodesk.image.oci import ImageFormatError
from neurodesk.image.sandbox import image_config
from neurodesk.image.squashfs import SIF_DESCRIPTOR, SIF_HEADER, sif_root_partition
from neurodesk.store import httpdirfs, sifmount
from neurodesk.store.atomic import write_text
from neurodesk.store.sifmount import SIF_FILE, SifMeta
from neurodesk.store.store import WORK_PREFIX, ImageRecord, Store, _env_labels, _rmtree_writable

Progress = Callable[[str], None]


def _copy_hashing(source: Path, dest: Path) -> str:
    digest = hashlib.sha256()
    with source.open("rb") as src, dest.open("wb") as out:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return "sha256:" + digest.hexdigest()


def _moved(source: Path, dest: Path) -> bool:
    try:
        os.replace(source, dest)  # same file system
    except OSError:
        return False
    with dest.open("rb") as moved:
        os.fsync(moved.fileno())  # a download is not made durable before it is kept
    return True


def _metadata(sif: Path, offset: int, work: Path) -> dict[str, Any]:
    """The image config, from /.singularity.d inside the partition (only that is unpacked)."""
    meta_dir = work / "meta"
    argv = ["unsquashfs", "-n", "-no-xattrs", "-f", "-d", str(meta_dir), "-o", str(offset)]
    proc = subprocess.run(
        [*argv, str(sif), ".singularity.d"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ExternalCommandError(
            f"{sif}: its squashfs partition is unreadable (corrupt or truncated SIF)",
            log_tail=proc.stderr.strip().splitlines()[-3:],
            hint="fetch or export the SIF again",
        )
    config = image_config(meta_dir)
    _rmtree_writable(meta_dir)
    return config


def _new_work(store: Store) -> Path:
    store.tmp_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=store.tmp_root))
    work.chmod(0o755)
    return work


def _publish(
    store: Store,
    work: Path,
    digest: str,
    ident: tuple[str, str, str],
    config: dict[str, Any],
    source: str,
) -> ImageRecord:
    """Rename ``work`` into place as the image dir of ``digest`` and write its ref."""
    write_text(work / "image.json", json.dumps(config, indent=2))
    env, labels = _env_labels(config)
    record = ImageRecord(*ident, digest, store.root, env, labels, source=source)
    with store.lock():
        image_dir = store.image_dir(digest)
        if image_dir.exists():
            _rmtree_writable(work)
        else:
            image_dir.parent.mkdir(parents=True, exist_ok=True)
            work.replace(image_dir)
        store._write_ref(record)
    return record


def add_sif(
    store: Store,
    path: Path,
    ident: tuple[str, str, str],
    progress: Progress | None = None,
    digest: str | None = None,
) -> ImageRecord:
    """Keep the SIF at ``path`` in the store as one verified file, to be mounted on use.

    ``digest``: the sha256 the caller already computed of ``path``, a checked download of its
    own: the file is then moved into the store instead of copied and hashed a second time."""
    say = progress or (lambda _m: None)
    partition = sif_root_partition(path)  # a truncated or foreign file fails here, in one line
    size = path.stat().st_size
    work = _new_work(store)
    try:
        if digest is not None and _moved(path, work / SIF_FILE):
            say("moved the checked SIF into the store")
        else:
            say("copying the SIF into the store (verifying as it goes)")
            copied = _copy_hashing(path, work / SIF_FILE)
            if digest is not None and copied != digest:
                raise ImageFormatError(f"{path} changed while it was copied", hint="fetch again")
            digest = copied
        if (work / SIF_FILE).stat().st_size != size:
            raise ImageFormatError(f"{path} changed while it was copied", hint="import it again")
        (work / SIF_FILE).chmod(0o444)
        config = _metadata(work / SIF_FILE, partition.offset, work)
        meta = SifMeta(partition.offset, size, digest)
        sifmount.lay_out(work, f"{ident[0]}_{ident[1]}_{ident[2]}", meta, lazy=False)
        return _publish(store, work, digest, ident, config, "sif")
    except BaseException:
        _rmtree_writable(work)
        raise


def _range(client: httpx.Client, url: str, start: int, end: int) -> bytes:
    response = client.get(url, headers={"Range": f"bytes={start}-{end}"})
    if response.status_code != 206:
        raise NeurodeskError(
            f"{url} does not serve byte ranges (HTTP {response.status_code})",
            hint="lazy images need a server with Range support; install without --lazy",
        )
    return response.content


# squashfs superblock: bytes_used at 40, inode_table_start at 64 (little-endian u64s).
_SQUASHFS_TABLES = struct.Struct("<40xQ16xQ")


def _squashfs_tables(url: str, offset: int, end: int, timeout: float) -> tuple[int, int]:
    """Where the squashfs tables lie in the remote file (inode table start to the end of the
    file system); (0, 0) when the superblock says something impossible (nothing read ahead)."""
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            block = _range(client, url, offset, offset + _SQUASHFS_TABLES.size - 1)
    except httpx.HTTPError as exc:
        raise NeurodeskError(f"cannot reach {url}: {exc}", hint="check the URL") from None
    if len(block) < _SQUASHFS_TABLES.size or block[:4] != b"hsqs":
        raise ImageFormatError(
            f"{url}: its system partition is not a squashfs image",
            hint="give the URL of a SIF with a squashfs system partition",
        )
    used, inodes = _SQUASHFS_TABLES.unpack(block)
    start, stop = offset + inodes, offset + used
    if not offset < start < stop <= end:
        return (0, 0)
    return (start, stop)


def remote_name(url: str) -> str:
    """The file name httpdirfs shows for ``url`` in single-file mode."""
    name = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    if not name or "/" in name or name in (".", ".."):
        raise NeurodeskError(f"{url} does not name a file", hint="give the URL of a .sif file")
    return name


def add_lazy(
    store: Store,
    url: str,
    digest: str,
    ident: tuple[str, str, str],
    timeout: float = 10.0,
    progress: Progress | None = None,
    cache_root: Path | None = None,
) -> ImageRecord:
    """Register the SIF at ``url`` (sha256 ``digest``) to be read over HTTP on demand; with a
    current httpdirfs, its block cache goes under ``cache_root`` (``$NEURODESK_HOME/cache``)."""
    say = progress or (lambda _m: None)
    if urlsplit(url).scheme not in ("http", "https"):
        raise NeurodeskError(f"{url} is not an http(s) URL", hint="lazy images come over HTTP")
    if not digest.startswith("sha256:") or len(digest) != 71:
        raise NeurodeskError(f"{digest!r} is not a sha256 digest", hint="sha256:<64 hex digits>")
    name = remote_name(url)
    say(f"reading the SIF header of {url}")
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            head = _range(client, url, 0, SIF_HEADER.size - 1)
            if head[32:41] == b"SIF_MAGIC":
                fields = SIF_HEADER.unpack(head)
                table_end = fields[9] + min(max(fields[8], 0), 4096) * SIF_DESCRIPTOR.size
                head = _range(client, url, 0, min(table_end, 1 << 24) - 1)
            size = int(client.head(url).headers.get("content-length", "0"))
    except httpx.HTTPError as exc:
        raise NeurodeskError(f"cannot reach {url}: {exc}", hint="check the URL") from None
    work = _new_work(store)
    try:
        (work / "head.sif").write_bytes(head)
        # Our reader checks objects against the file size: give it the real one, sparsely.
        with (work / "head.sif").open("r+b") as handle:
            handle.truncate(size)
        if head[32:41] != b"SIF_MAGIC" or len(head) < SIF_HEADER.size:
            raise ImageFormatError(f"{url} is not a SIF file", hint="give the URL of a .sif file")
        partition = sif_root_partition(work / "head.sif")
        (work / "head.sif").unlink()
        tables = _squashfs_tables(
            url, partition.offset, partition.offset + partition.length, timeout
        )
        tool = httpdirfs.find()
        cache = httpdirfs.cache_dir(tool, cache_root, digest)
        meta = SifMeta(
            partition.offset,
            size,
            digest,
            url,
            name,
            tables,
            tool.path if tool else None,
            tool.version_text if tool else None,
            str(cache) if cache else None,
        )
        sifmount.lay_out(work, f"{ident[0]}_{ident[1]}_{ident[2]}", meta, lazy=True, stall=timeout)
        config: dict[str, Any] = {"config": {"Env": [], "Labels": {}}}
        record = _publish(store, work, digest, ident, config, "sif")
    except BaseException:
        _rmtree_writable(work)
        raise
    # The environment lives inside the image: read it through the lazy mount (a few blocks).
    sifmount.ensure_mounted(record.image_dir)
    config = image_config(record.rootfs)
    write_text(record.image_dir / "image.json", json.dumps(config, indent=2))
    env, labels = _env_labels(config)
    record = ImageRecord(*ident, digest, store.root, env, labels, source="sif")
    with store.lock():
        store._write_ref(record)
    return record


def prefetch(store: Store, record: ImageRecord, timeout: float = 30.0) -> None:
    """Download the whole SIF of a lazy image, verify it, and switch the image to it.

    Running commands keep the lazy mount their namespace holds; new ones use the local file.
    """
    image_dir = record.image_dir
    meta = SifMeta.load(image_dir)
    if meta is None or meta.url is None:
        raise NeurodeskError(f"{record.id} is not a lazy SIF image", hint="nothing to prefetch")
    final = image_dir / SIF_FILE
    if not final.exists():
        part = image_dir / (SIF_FILE + ".part")
        digest = hashlib.sha256()
        try:
            with (
                httpx.Client(timeout=timeout, follow_redirects=True) as client,
                client.stream("GET", meta.url) as response,
            ):
                if response.status_code != 200:
                    raise NeurodeskError(
                        f"prefetch of {meta.url} failed: HTTP {response.status_code}"
                    )
                with part.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
        except httpx.HTTPError as exc:
            part.unlink(missing_ok=True)
            raise NeurodeskError(f"prefetch of {meta.url} failed: {exc}") from None
        actual = "sha256:" + digest.hexdigest()
        if actual != meta.sha256 or part.stat().st_size != meta.size:
            part.unlink(missing_ok=True)
            raise NeurodeskError(
                f"prefetch of {meta.url}: got {actual}, expected {meta.sha256}",
                hint="the server's file differs from what was installed; the lazy mount stays",
            )
        part.chmod(0o444)
        os.replace(part, final)
    with sifmount.mount_lock(image_dir):
        target = os.readlink(image_dir / sifmount.ROOTFS)
        if target != sifmount.MOUNT_POINTS[1]:
            return
        local = image_dir / sifmount.MOUNT_POINTS[0]
        sifmount.detach(local)
        proc = subprocess.run(
            sifmount.squashfuse_argv(meta.offset, final, local),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ExternalCommandError(
                f"could not mount the prefetched {final}", log_tail=proc.stderr.splitlines()[-3:]
            )
        sifmount.switch_rootfs(image_dir, sifmount.MOUNT_POINTS[0])
        # Detached now, gone when the last running command that holds them ends.
        sifmount.detach(image_dir / sifmount.MOUNT_POINTS[1])
        sifmount.detach(image_dir / sifmount.REMOTE)
        (image_dir / "remote.failed").write_text("")  # errors of the lazy mount no longer apply


def held(record: ImageRecord) -> str:
    """How the store holds ``record``: unpacked, a SIF (mounted or lazy), or in place."""
    if record.external_rootfs is not None:
        return "in place"
    if sifmount.is_held_sif(record.image_dir):
        return sifmount.state(record.image_dir)
    return "unpacked"
