"""Rebuilding a layer's exact tar bytes from its tar-split record and its unpacked files.

A tar-split record (the format containers/storage keeps beside every layer, one JSON object a
line, gzip-compressed) holds every byte of the tar except the contents of its regular files:
``{"type": 2, "payload": <base64 raw bytes>}`` for headers and padding, ``{"type": 1, "name":
..., "size": N}`` where a file's N bytes go. With the files at hand (the builder's layer
directory, or the store's unpacked state of that layer) the original tar, and so its digest,
comes back byte for byte: this is how the store drops a layer's blob and still publishes it
under the same digest. Every rebuilt tar is checked against the digest it must have.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from neurodesk.errors import NeurodeskError

CHUNK = 1 << 20


class TarSplitError(NeurodeskError):
    """The tar cannot be rebuilt (record damaged, a file missing or changed)."""


def _entries(record: Path) -> Iterator[dict[str, object]]:
    try:
        with gzip.open(record, "rt", encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    entry = json.loads(line)
                    if not isinstance(entry, dict):
                        raise ValueError("an entry is not an object")
                    yield entry
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise TarSplitError(f"tar-split record {record.name} is damaged: {exc}") from None


def _name(entry: dict[str, object]) -> str:
    raw = entry.get("name_raw")
    if isinstance(raw, str):
        try:
            return base64.b64decode(raw).decode("utf-8", "surrogateescape")
        except (binascii.Error, ValueError):
            raise TarSplitError("tar-split record has a bad raw name") from None
    name = entry.get("name")
    if not isinstance(name, str):
        raise TarSplitError("tar-split file entry has no name")
    return name


def _content(root: Path, name: str) -> int:
    """An fd of ``root/name``, never following a symlink at the end nor leaving ``root``."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise TarSplitError(f"tar-split names '{name[:200]}', which is outside the layer")
    try:
        return os.open(os.path.join(root, *parts), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise TarSplitError(f"cannot read '{name[:200]}' to rebuild the layer: {exc}") from None


def assemble(record: Path, root: Path, out: IO[bytes]) -> tuple[str, int]:
    """Write the tar described by ``record`` with file contents from ``root`` to ``out``;
    returns its ``sha256:`` digest and size."""
    digest = hashlib.sha256()
    size = 0
    for entry in _entries(record):
        kind = entry.get("type")
        if kind == 2:
            payload = entry.get("payload")
            try:
                data = base64.b64decode(payload) if isinstance(payload, str) else b""
            except (binascii.Error, ValueError):
                raise TarSplitError(f"tar-split record {record.name} is damaged") from None
            out.write(data)
            digest.update(data)
            size += len(data)
        elif kind == 1:
            want = entry.get("size", 0)  # left out for entries without contents
            if not isinstance(want, int) or isinstance(want, bool) or want < 0:
                raise TarSplitError(f"tar-split record {record.name} has a bad size")
            if want == 0:
                continue
            fd = _content(root, _name(entry))
            with os.fdopen(fd, "rb") as source:
                left = want
                while left:
                    chunk = source.read(min(CHUNK, left))
                    if not chunk:
                        raise TarSplitError(
                            f"'{_name(entry)[:200]}' is shorter than the layer recorded"
                        )
                    out.write(chunk)
                    digest.update(chunk)
                    left -= len(chunk)
                    size += len(chunk)
        else:
            raise TarSplitError(f"tar-split record {record.name} has an unknown entry {kind!r}")
    return "sha256:" + digest.hexdigest(), size


def rebuild(record: Path, root: Path, dest: Path, digest: str) -> None:
    """Write the tar to ``dest`` (a new file); TarSplitError unless it has ``digest``."""
    with dest.open("xb") as out:
        got, _size = assemble(record, root, out)
    if got != digest:
        dest.unlink(missing_ok=True)
        raise TarSplitError(f"rebuilt layer is {got[:19]}, not {digest[:19]}")
