"""Bring one image from a remote source into the local store: blobs in parallel, verified.

Blobs are downloaded into ``$NEURODESK_HOME/cache/fetch/<manifest hex>/`` laid out as an OCI
image layout, then the store imports that layout (verifying every digest again as it copies).
An interrupted pull leaves ``.part`` files there, which the next pull resumes; blobs the store
already has are linked in (after checking their digest), never downloaded again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, cast

from filelock import FileLock, Timeout

from neurodesk.image.oci import Descriptor, ImageFormatError, OCILayout, sha256_file
from neurodesk.paths import Paths
from neurodesk.sources.arrival import Arrival
from neurodesk.sources.progress import NullProgress, TransferProgress
from neurodesk.sources.transfer import OnBytes
from neurodesk.store import ImageRecord, Store
from neurodesk.store.atomic import write_text

GetBlob = Callable[[Descriptor, Path, OnBytes], None]
WORKERS = 4
LOCKS = "locks"  # cache/fetch/locks/<manifest hex>.lock
STALE_FETCH_SECONDS = 7 * 24 * 3600.0


def parse_manifest(raw: bytes) -> tuple[Descriptor, list[Descriptor]]:
    try:
        data = json.loads(raw)
        config = Descriptor.from_json(data["config"])
        listed = data.get("layers") or []
        if not isinstance(listed, list):
            raise TypeError("'layers' is not a list")
        layers = [Descriptor.from_json(layer) for layer in listed]
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ImageFormatError(f"malformed image manifest: {exc}") from None
    for descriptor in (config, *layers):
        _ = descriptor.hex  # only sha256, and no path tricks in a digest
    return config, layers


def _link_or_copy(src: Path, dest: Path) -> bool:
    """Hard-link (or copy) ``src`` to ``dest``; False when ``src`` vanished meanwhile."""
    tmp = dest.with_name(dest.name + ".link")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except FileNotFoundError:
            return False
        except OSError:
            shutil.copyfile(src, tmp)
    except FileNotFoundError:
        return False
    tmp.replace(dest)
    return True


def blob_ok(path: Path, descriptor: Descriptor) -> bool:
    """True when ``path`` holds exactly the bytes ``descriptor`` names (size, then sha256)."""
    try:
        if path.stat().st_size != descriptor.size:
            return False
        return sha256_file(path) == descriptor.digest
    except OSError:
        return False


def fetch_lock(paths: Paths, manifest_digest: str) -> FileLock:
    """The lock of one image's fetch directory. Lock files live in ``cache/fetch/locks/`` and are
    never deleted: a lock file removed while another process waits on it would let two
    processes hold "the" lock at once."""
    locks = paths.cache / "fetch" / LOCKS
    locks.mkdir(parents=True, exist_ok=True)
    return FileLock(str(locks / (manifest_digest.removeprefix("sha256:") + ".lock")))


def pull_image(
    paths: Paths,
    name: str,
    version: str,
    builddate: str,
    manifest_raw: bytes,
    manifest_digest: str,
    media_type: str,
    get_blob: GetBlob,
    progress: TransferProgress | None = None,
    refetch_from: list[str] | None = None,
) -> ImageRecord:
    """Download what the store lacks of the image, then import it under name/version/date.

    One lock per image (by manifest digest) guards its fetch directory from creation to
    removal, so any number of processes may pull the same or different images into one home.
    Every blob taken from the store or left in the cache by an earlier attempt is verified
    before reuse; a corrupt store blob is dropped from the store and fetched again. Layers
    whose state the store already holds (a stored per-layer state covering them, identified by
    the chain of verified layer digests) are not downloaded at all.

    ``refetch_from``: where the blobs can be fetched again by digest; the store then keeps no
    copy of the large layer blobs (see :meth:`Store.import_layout`)."""
    progress = progress or NullProgress()
    store = Store(paths.store)
    config, layers = parse_manifest(manifest_raw)
    work = paths.cache / "fetch" / manifest_digest.removeprefix("sha256:")
    with fetch_lock(paths, manifest_digest):
        blobs = work / "blobs" / "sha256"
        blobs.mkdir(parents=True, exist_ok=True)
        manifest_file = blobs / manifest_digest.removeprefix("sha256:")
        manifest_file.with_suffix(".tmp").write_bytes(manifest_raw)
        manifest_file.with_suffix(".tmp").replace(manifest_file)
        wanted: list[Descriptor] = []
        held = store.layers_held([d.digest for d in layers])
        for descriptor in (config, *layers):
            dest = blobs / descriptor.hex
            if descriptor in wanted:
                continue
            if (
                descriptor is not config
                and descriptor.digest in held
                and not store.blob_path(descriptor.digest).exists()
            ):
                continue  # a stored layer state covers it: the import starts from that state
            if dest.exists():
                if blob_ok(dest, descriptor):
                    continue
                dest.unlink()  # a corrupt copy from an earlier attempt: never reused
            in_store = store.blob_path(descriptor.digest)
            if in_store.exists():
                if blob_ok(in_store, descriptor):
                    if _link_or_copy(in_store, dest):
                        continue
                else:
                    store.drop_corrupt_blob(descriptor.digest)
            wanted.append(descriptor)

        arrivals = {d.digest: Arrival(blobs / d.hex, d.size, d.hex[:12]) for d in wanted}

        def one(descriptor: Descriptor) -> None:
            key = descriptor.digest
            arrival = arrivals[key]
            progress.add(key, f"{descriptor.hex[:12]}", descriptor.size)

            def on_bytes(count: int) -> None:
                progress.advance(key, count)
                arrival.on_bytes(count)

            get_blob(descriptor, blobs / descriptor.hex, on_bytes)

        def ready(digest: str) -> None:
            if digest in futures:
                futures[digest].result()
                arrivals[digest].check()

        def arriving(digest: str) -> IO[bytes] | None:
            # an io.RawIOBase, which typeshed does not count as an IO[bytes]
            return cast("IO[bytes]", arrivals[digest].reader()) if digest in arrivals else None

        write_text(work / "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}))
        index = {
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": media_type, "digest": manifest_digest, "size": len(manifest_raw)}
            ],
        }
        write_text(work / "index.json", json.dumps(index))
        # Downloads in layer order. A large layer the store does not keep is unpacked as its
        # bytes arrive (into a work directory nothing sees until its digest is checked); the
        # import waits for every other blob (verified) just before it reads it.
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = {d.digest: pool.submit(one, d) for d in wanted}
            for digest, future in futures.items():
                future.add_done_callback(arrivals[digest].finish)
            try:
                if config.digest in futures:
                    futures[config.digest].result()  # the layout's manifest reads it
                record = store.import_layout(
                    OCILayout(work),
                    name,
                    version,
                    builddate,
                    refetch_from=refetch_from,
                    ready=ready,
                    arriving=arriving,
                )
            except BaseException:
                for future in futures.values():
                    future.cancel()
                raise
            for future in futures.values():
                future.result()
        shutil.rmtree(work, ignore_errors=True)
    return record


def clean_fetch_cache(paths: Paths, max_age: float = STALE_FETCH_SECONDS) -> tuple[int, int]:
    """For ``gc``: in every fetch directory no pull holds, remove corrupt blobs and copies of
    store blobs (hard links, which would keep a removed or corrupt store blob alive), and whole
    directories untouched for ``max_age`` seconds. Returns (files removed, bytes freed)."""
    root = paths.cache / "fetch"
    removed = freed = 0
    if not root.is_dir():
        return removed, freed
    now = time.time()
    for work in sorted(root.iterdir()):
        if work.name == LOCKS or not work.is_dir():
            continue
        lock = fetch_lock(paths, work.name)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # a pull is using it
        try:
            blobs = work / "blobs" / "sha256"
            newest = max((p.lstat().st_mtime for p in work.rglob("*")), default=0.0)
            if now - newest > max_age:
                size = sum(p.lstat().st_size for p in work.rglob("*") if p.is_file())
                removed += sum(1 for p in work.rglob("*") if p.is_file())
                freed += size
                shutil.rmtree(work, ignore_errors=True)
                continue
            for blob in sorted(blobs.iterdir()) if blobs.is_dir() else []:
                if blob.name.endswith(".part"):
                    continue  # a partial download, resumed (and verified) by the next pull
                st = blob.lstat()
                linked = st.st_nlink > 1
                corrupt = not linked and sha256_file(blob) != "sha256:" + blob.name
                if linked or corrupt or not blob.is_file():
                    blob.unlink()
                    removed += 1
                    freed += 0 if linked else st.st_size
        finally:
            lock.release()
    return removed, freed
