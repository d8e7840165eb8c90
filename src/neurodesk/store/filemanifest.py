"""A per-file manifest of a directory (``files.json``): path, type, size, mode, sha256.

Written when an image directory is made (the store) or published (a tree's container
directory); compared later to find every file that changed: a truncated binary, a flipped byte,
a removed or added file, a changed mode or link. Links are recorded, never followed.

Format (version 1)::

    {"schema": 1, "files": [
        {"path": "usr/bin/tool", "type": "file", "size": 1234, "mode": "755", "sha256": "…"},
        {"path": "usr/lib/x.so", "type": "link", "target": "x.so.1"},
        {"path": "usr", "type": "dir", "mode": "755"}]}
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurodesk.image.oci import ImageFormatError
from neurodesk.store.atomic import write_text

MANIFEST_NAME = "files.json"
SCHEMA = 1


@dataclass(frozen=True)
class FileEntry:
    path: str
    type: str  # file | dir | link | other
    size: int = 0
    mode: int = 0
    sha256: str = ""
    target: str = ""

    def to_json(self) -> dict[str, Any]:
        if self.type == "link":
            return {"path": self.path, "type": "link", "target": self.target}
        data: dict[str, Any] = {"path": self.path, "type": self.type, "mode": f"{self.mode:o}"}
        if self.type == "file":
            data["size"] = self.size
            data["sha256"] = self.sha256
        return data

    @classmethod
    def from_json(cls, data: object) -> FileEntry:
        if not isinstance(data, dict):
            raise ValueError("an entry is not an object")
        path, kind = data.get("path"), data.get("type")
        if not isinstance(path, str) or kind not in ("file", "dir", "link", "other"):
            raise ValueError(f"bad entry {str(data)[:80]}")
        if kind == "link":
            return cls(path, "link", target=str(data.get("target", "")))
        size = data.get("size", 0)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"bad size in entry {path[:80]}")
        return cls(
            path,
            str(kind),
            size=size,
            mode=int(str(data.get("mode", "0")), 8),
            sha256=str(data.get("sha256", "")),
        )


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _entry(root: str, rel: str, known: Mapping[str, str]) -> FileEntry:
    full = os.path.join(root, rel)
    st = os.lstat(full)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return FileEntry(rel, "link", target=os.readlink(full))
    if stat.S_ISDIR(st.st_mode):
        return FileEntry(rel, "dir", mode=mode)
    if stat.S_ISREG(st.st_mode):
        digest = known.get(rel) or _sha256(full)
        return FileEntry(rel, "file", size=st.st_size, mode=mode, sha256=digest)
    return FileEntry(rel, "other", mode=mode)


def scan(
    root: Path, skip: frozenset[str] = frozenset(), known: Mapping[str, str] = {}
) -> list[FileEntry]:
    """Every entry under ``root`` (relative paths, sorted), links not followed. ``known`` holds
    sha256 hex digests already computed (by relative path), to avoid reading files twice."""
    entries: list[FileEntry] = []
    base = str(root)
    for dirpath, dirnames, filenames in os.walk(base):
        rel_dir = os.path.relpath(dirpath, base)
        for name in sorted(dirnames + filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel in skip:
                continue
            entries.append(_entry(base, rel, known))
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    entries.sort(key=lambda e: e.path)
    return entries


def write_manifest(root: Path, dest: Path | None = None, known: Mapping[str, str] = {}) -> Path:
    """Write ``root``'s manifest to ``dest`` (default ``root/files.json``, not listed in it)."""
    dest = dest or root / MANIFEST_NAME
    skip = frozenset({dest.name}) if dest.parent == root else frozenset()
    files = [e.to_json() for e in scan(root, skip, known)]
    write_text(dest, json.dumps({"schema": SCHEMA, "files": files}, separators=(",", ":")))
    return dest


def load_manifest(path: Path) -> list[FileEntry]:
    """The entries of ``path``; ImageFormatError (one line) when it is unreadable."""
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError(f"not a schema-{SCHEMA} file manifest")
        listed = data.get("files")
        if not isinstance(listed, list):
            raise ValueError("'files' is not a list")
        return [FileEntry.from_json(item) for item in listed]
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ImageFormatError(
            f"{path} is damaged: {exc}", hint="publish the image again, or fetch it again"
        ) from None


def compare(root: Path, expected: list[FileEntry], skip: frozenset[str] = frozenset()) -> list[str]:
    """One line per difference between ``root`` and ``expected``: ``PATH: what differs``."""
    problems: list[str] = []
    wanted = {e.path: e for e in expected}
    actual = {e.path: e for e in scan(root, skip | {MANIFEST_NAME})}
    for path in sorted(wanted.keys() | actual.keys()):
        want, have = wanted.get(path), actual.get(path)
        if have is None:
            problems.append(f"{path}: missing")
        elif want is None:
            problems.append(f"{path}: not in the manifest (added)")
        elif want.type != have.type:
            problems.append(f"{path}: is a {have.type}, expected a {want.type}")
        elif want.type == "link" and want.target != have.target:
            problems.append(f"{path}: link to '{have.target}', expected '{want.target}'")
        elif want.type == "file" and want.size != have.size:
            problems.append(f"{path}: {have.size} bytes, expected {want.size} (truncated?)")
        elif want.type == "file" and want.sha256 != have.sha256:
            problems.append(f"{path}: content differs (sha256 {have.sha256[:12]}…)")
        elif want.type in ("file", "dir") and want.mode != have.mode:
            problems.append(f"{path}: mode {have.mode:o}, expected {want.mode:o}")
    return problems
