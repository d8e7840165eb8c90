"""Resumable, verified downloads and the errors that decide between retry and failover.

A blob is downloaded to ``<dest>.part``; an interrupted download is resumed with an HTTP
``Range`` request (from this or another mirror: blobs are named by digest, so any mirror's bytes
are the same bytes). The digest and size are checked before the file is renamed into place, so
a corrupt or truncated blob never reaches its final name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx

from neurodesk.sources.http import (
    BadAnswerError,
    CorruptBlobError,
    HttpSettings,
    MissingError,
    SlowMirrorError,
    SourceError,
    TransientError,
    expect_status,
    mirror_name,
    open_stream,
    refuse_html,
)

OnBytes = Callable[[int], None]
CHUNK = 1 << 20


__all__ = [
    "BadAnswerError",
    "CorruptBlobError",
    "MissingError",
    "OnBytes",
    "SlowMirrorError",
    "SourceError",
    "TransientError",
    "download",
]


def _hash_existing(path: Path) -> tuple[hashlib._Hash, int]:
    digest = hashlib.sha256()
    size = 0
    if path.exists():
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
    return digest, size


def download(
    client: httpx.Client,
    url: str,
    dest: Path,
    digest: str | None,
    size: int | None,
    on_bytes: OnBytes | None = None,
    headers: dict[str, str] | None = None,
    mirror: str | None = None,
    settings: HttpSettings | None = None,
) -> Path:
    """Download ``url`` to ``dest`` verifying ``digest`` and ``size`` when known.

    Resumes from ``dest.part``. The body is read under the low-speed limit and deadline of
    ``settings`` (see :mod:`neurodesk.sources.http`). Raises TransientError or SlowMirrorError
    (the partial file is kept: any mirror may resume it), CorruptBlobError (the partial file is
    removed), MissingError or BadAnswerError; every message names the mirror.
    """
    mirror = mirror or mirror_name(url)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    hasher, have = _hash_existing(part)
    if size is not None and have > size:
        part.unlink()
        hasher, have = hashlib.sha256(), 0
    request_headers = dict(headers or {})
    if have and (size is None or have < size):
        request_headers["Range"] = f"bytes={have}-"
    if on_bytes and have:
        on_bytes(have)
    if size is None or have < size:  # else everything arrived before an interruption
        with open_stream(
            client, "GET", url, mirror=mirror, settings=settings, headers=request_headers
        ) as stream:
            if stream.status == 416 and have:
                part.unlink()  # the server cannot serve that range: start again
                raise TransientError(f"{mirror}: {url}: range not satisfiable, restarting")
            expect_status(stream, 200, 206)
            refuse_html(stream)
            # A server that ignores Range sends the whole blob again: its first ``have`` bytes
            # are ones the part file already holds (a blob's bytes are the same everywhere; the
            # digest below checks them all). They are skipped, never rewritten: a reader may be
            # following the part file as it grows (see ``neurodesk.sources.arrival``).
            skip = have if stream.status == 200 else 0
            # Unbuffered: what ``on_bytes`` reports is in the file. Not fsynced: the file is a
            # cache entry, checked against its digest whenever it is used again; whoever keeps
            # the blob makes its own copy durable (the store).
            with part.open("ab", buffering=0) as out:
                for chunk in stream.chunks():  # as it arrives: a cut keeps all
                    if skip:
                        if len(chunk) <= skip:
                            skip -= len(chunk)
                            continue
                        chunk, skip = chunk[skip:], 0
                    view = memoryview(chunk)
                    while view:
                        view = view[out.write(view) or 0 :]
                    hasher.update(chunk)
                    have += len(chunk)
                    if on_bytes:
                        on_bytes(len(chunk))
                    if size is not None and have > size:
                        break
    if size is not None and have < size:
        raise TransientError(f"{mirror}: {url}: download ended after {have} of {size} bytes")
    actual = "sha256:" + hasher.hexdigest()
    if (digest is not None and actual != digest) or (size is not None and have != size):
        part.unlink(missing_ok=True)
        if on_bytes:
            on_bytes(-have)
        raise CorruptBlobError(
            f"{mirror}: {digest} from {url} is corrupt (got {actual}, {have} bytes)",
            hint="the mirror's copy is damaged; another mirror is tried if there is one",
        )
    part.replace(dest)
    return dest
