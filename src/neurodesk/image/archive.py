"""Image archives: OCI archives (a tar of an OCI layout) and docker-archive tarballs.

Both are unpacked into a scratch directory with every member name checked (no absolute names,
no ``..``, links only to files inside the archive), and end up as an OCI layout that the store
imports like any other. A docker-archive (``docker save``, ``skopeo copy ... docker-archive:``)
has ``manifest.json`` naming a config file and layer tars; we write the OCI manifest for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import tarfile
import zlib
from pathlib import Path
from typing import Any

from neurodesk.image.limits import Budget, UnpackLimits
from neurodesk.image.oci import ImageFormatError, OCILayout, sha256_file

LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def _safe_name(name: str) -> str:
    clean = posixpath.normpath(name.lstrip("./") if name.startswith("./") else name)
    if clean.startswith(("/", "../")) or clean == ".." or "/../" in f"/{clean}/":
        raise ImageFormatError(f"archive member '{name}' points outside the archive")
    return clean


def archive_members(path: Path) -> list[str]:
    with tarfile.open(path, "r:*") as archive:
        return [m.name.removeprefix("./") for m in archive.getmembers()]


def extract_archive(path: Path, dest: Path, limits: UnpackLimits | None = None) -> None:
    """Extract regular files and directories; links become hard links to files already inside.

    The archive counts against ``limits`` (default: from the environment) like an image."""
    links: list[tuple[str, str]] = []
    budget = Budget(limits or UnpackLimits.load(), path.stat().st_size, f"archive {path.name}")
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                budget.take(member.name, member.size if member.isfile() else 0)
                name = _safe_name(member.name)
                if name == ".":
                    continue
                target = dest / name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = archive.extractfile(member)
                    assert source is not None
                    with source, target.open("wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                elif member.issym():
                    links.append((name, posixpath.join(posixpath.dirname(name), member.linkname)))
                elif member.islnk():
                    links.append((name, member.linkname))
                # anything else (devices, fifos) has no place in an image archive: skipped
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise ImageFormatError(f"{path} is not a readable tar archive: {exc}") from None
    except OSError as exc:
        raise ImageFormatError(f"cannot unpack {path}: {exc.strerror or exc}") from None
    for name, target_name in links:
        source_path = dest / _safe_name(target_name)
        if source_path.is_symlink() or not source_path.is_file():
            raise ImageFormatError(f"archive link '{name}' does not point to a file inside it")
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        os.link(source_path, dest / name)


def is_oci_archive(members: list[str]) -> bool:
    return "oci-layout" in members and "index.json" in members


def is_docker_archive(members: list[str]) -> bool:
    return "manifest.json" in members


def _add_blob(layout: Path, source: Path) -> dict[str, Any]:
    digest = sha256_file(source)
    blob = layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
    if not blob.exists():
        os.link(source, blob)
    return {"digest": digest, "size": source.stat().st_size}


def docker_archive_to_layout(extracted: Path, layout: Path) -> tuple[OCILayout, str | None]:
    """An OCI layout for the single image of an extracted docker-archive, and its first tag."""
    try:
        entries = json.loads((extracted / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise ImageFormatError(f"docker-archive manifest.json is unreadable: {exc}") from None
    if not isinstance(entries, list) or len(entries) != 1:
        count = len(entries) if isinstance(entries, list) else 0
        raise ImageFormatError(
            f"expected one image in the docker-archive, found {count}",
            hint="save a single image per archive",
        )
    entry = entries[0]
    (layout / "blobs" / "sha256").mkdir(parents=True)
    config = _add_blob(layout, extracted / _safe_name(str(entry["Config"])))
    layers = []
    for name in entry.get("Layers") or []:
        path = extracted / _safe_name(str(name))
        with path.open("rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        media = LAYER_TAR_GZIP if gzipped else LAYER_TAR
        layers.append({"mediaType": media, **_add_blob(layout, path)})
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": layers,
    }
    raw = json.dumps(manifest, indent=2).encode()
    manifest_hex = hashlib.sha256(raw).hexdigest()
    (layout / "blobs" / "sha256" / manifest_hex).write_bytes(raw)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "digest": f"sha256:{manifest_hex}",
                "size": len(raw),
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    tags = entry.get("RepoTags") or []
    return OCILayout(layout), (str(tags[0]) if tags else None)
