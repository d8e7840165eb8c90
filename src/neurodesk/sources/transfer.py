"""Resumable, verified downloads and the errors that decide between retry and failover.

A blob is downloaded to ``<dest>.part``; an interrupted download is resumed with an HTTP
``Range`` request (from this or another mirror: blobs are named by digest, so any mirror's bytes
are the same bytes). The digest and size are checked before the file is renamed into place, so
a corrupt or truncated blob never reaches its final name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import httpx

from neurodesk.errors import NeurodeskError

OnBytes = Callable[[int], None]
CHUNK = 1 << 20


class SourceError(NeurodeskError):
    """A source could not deliver something; another mirror or source may."""


class TransientError(SourceError):
    """Worth retrying on the same mirror: a dropped connection, a timeout, a 5xx, a short read."""


class CorruptBlobError(SourceError):
    """Bytes arrived complete but do not match their digest: this mirror's copy is bad."""


class MissingError(SourceError):
    """The mirror answered, and it does not have the thing asked for (404)."""


def make_client(timeout: float, insecure: bool = False) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        verify=not insecure,
        follow_redirects=True,
        headers={"User-Agent": "neurodesk"},
    )


def check_status(response: httpx.Response, what: str) -> None:
    """Turn an HTTP status into the error class that tells the caller what to do next."""
    if response.status_code < 400:
        return
    message = f"{what}: HTTP {response.status_code} from {response.request.url.host}"
    if response.status_code == 404:
        raise MissingError(message)
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(message)
    raise SourceError(message, hint="check the source's address and your access rights")


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
) -> Path:
    """Download ``url`` to ``dest`` verifying ``digest`` and ``size`` when known.

    Resumes from ``dest.part``. Raises TransientError (retry: the partial file is kept),
    CorruptBlobError (the partial file is removed), MissingError or SourceError.
    """
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
    try:
        if size is not None and have == size:
            pass  # everything arrived before an interruption; only the check is left
        else:
            with client.stream("GET", url, headers=request_headers) as response:
                if response.status_code == 416 and have:
                    part.unlink()  # the server cannot serve that range: start again
                    raise TransientError(f"{url}: range not satisfiable, restarting")
                check_status(response, f"GET {url}")
                mode = "ab" if response.status_code == 206 else "wb"
                if mode == "wb" and have:
                    if on_bytes:
                        on_bytes(-have)
                    hasher, have = hashlib.sha256(), 0
                with part.open(mode) as out:
                    for chunk in response.iter_bytes():  # as it arrives: a cut keeps all
                        out.write(chunk)
                        hasher.update(chunk)
                        have += len(chunk)
                        if on_bytes:
                            on_bytes(len(chunk))
                        if size is not None and have > size:
                            break
                    out.flush()
                    os.fsync(out.fileno())
    except (httpx.TransportError, httpx.StreamError) as exc:
        raise TransientError(f"{url}: {type(exc).__name__}: {exc or 'connection lost'}") from None
    if size is not None and have < size:
        raise TransientError(f"{url}: download ended after {have} of {size} bytes")
    actual = "sha256:" + hasher.hexdigest()
    if (digest is not None and actual != digest) or (size is not None and have != size):
        part.unlink(missing_ok=True)
        if on_bytes:
            on_bytes(-have)
        raise CorruptBlobError(
            f"{digest} from {url} is corrupt (got {actual}, {have} bytes)",
            hint="the mirror's copy is damaged; another mirror is tried if there is one",
        )
    part.replace(dest)
    return dest
