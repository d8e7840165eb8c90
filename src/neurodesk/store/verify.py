"""Checking images again: store blobs against their digests, unpacked files and tree containers
against their per-file manifests (``files.json``). Used by ``neurodesk verify``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurodesk.image.oci import Descriptor, ImageFormatError, sha256_file
from neurodesk.store.filemanifest import MANIFEST_NAME, compare, load_manifest
from neurodesk.store.store import ImageRecord, Store


@dataclass
class VerifyResult:
    """What was checked, and one line per difference found."""

    what: str
    kind: str  # "image", "sandbox", "tree container", "blobs"
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "kind": self.kind,
            "checked": self.checked,
            "ok": self.ok,
            "problems": self.problems,
            "note": self.note,
        }


def _check_dir(root: Path, manifest: Path, result: VerifyResult) -> None:
    try:
        expected = load_manifest(manifest)
    except ImageFormatError as exc:
        result.problems.append(f"{MANIFEST_NAME}: {exc.message}")
        return
    result.checked += len(expected)
    result.problems += compare(root, expected)


def verify_container(container: Path) -> VerifyResult:
    """A tree's container directory (``containers/<id>/``) against its ``files.json``."""
    result = VerifyResult(str(container), "tree container")
    manifest = container / MANIFEST_NAME
    if not manifest.is_file():
        result.note = "no files.json (not published by neurodesk): nothing to compare"
        return result
    _check_dir(container, manifest, result)
    return result


def _blob_problems(store: Store, descriptor: Descriptor) -> list[str]:
    path = store.blob_path(descriptor.digest)
    if not path.is_file() and store.tarsplit_path(descriptor.digest).is_file():
        return []  # dropped after a checked rebuild; the unpacked files are checked below
    if not path.is_file() and store.refetch_sources(descriptor.digest):
        return []  # not kept after a verified unpack: fetched again by digest when needed
    if not path.is_file():
        return [f"blob {descriptor.digest}: missing"]
    if path.stat().st_size != descriptor.size:
        return [
            f"blob {descriptor.digest}: {path.stat().st_size} bytes, expected {descriptor.size}"
        ]
    if sha256_file(path) != descriptor.digest:
        return [f"blob {descriptor.digest}: content differs from its digest"]
    return []


def verify_record(store: Store, record: ImageRecord) -> VerifyResult:
    """An image: its blobs and unpacked files (store images), or its tree container (used in
    place), also checking that the manifest is still the one verified at install."""
    if record.external_rootfs is not None:
        container = record.external_rootfs.parent
        result = verify_container(container)
        result.what, result.kind = record.id, "sandbox"
        recorded = store.verification(record)
        manifest = container / MANIFEST_NAME
        if (
            recorded
            and recorded.get("manifest")
            and manifest.is_file()
            and sha256_file(manifest) != recorded["manifest"]
        ):
            result.problems.append(f"{MANIFEST_NAME}: changed since the install verified it")
        return result
    result = VerifyResult(record.id, "image")
    manifest_path = store.blob_path(record.digest)
    if record.source == "oci":
        if not manifest_path.is_file():
            result.note = "stored without its manifest: blobs not checked"
        else:
            raw = manifest_path.read_bytes()
            result.checked += 1
            if sha256_file(manifest_path) != record.digest:
                result.problems.append(f"manifest {record.digest}: content differs")
            else:
                try:
                    data = json.loads(raw)
                    blobs = [Descriptor.from_json(data["config"])]
                    blobs += [Descriptor.from_json(d) for d in data.get("layers") or []]
                except (ValueError, KeyError, TypeError, ImageFormatError) as exc:
                    result.problems.append(f"manifest {record.digest}: unreadable: {exc}")
                    blobs = []
                for descriptor in blobs:
                    result.checked += 1
                    result.problems += _blob_problems(store, descriptor)
    if not record.rootfs.is_dir():
        result.problems.append(f"{record.rootfs}: missing (run 'neurodesk install' again)")
        return result
    files = record.image_dir / MANIFEST_NAME
    if files.is_file():
        _check_dir(record.rootfs, files, result)
    elif not result.note:
        result.note = "unpacked before per-file manifests existed: files not checked"
    try:
        json.loads((record.image_dir / "image.json").read_bytes())
    except (OSError, ValueError):
        result.problems.append("image.json: missing or not JSON")
    return result


def verify_store(store: Store) -> list[VerifyResult]:
    """Every image of the store, and every blob against its name."""
    results = [verify_record(store, record) for record in store.images()]
    blobs = VerifyResult(str(store.root / "blobs"), "blobs")
    blobs_dir = store.root / "blobs" / "sha256"
    for blob in sorted(blobs_dir.iterdir()) if blobs_dir.is_dir() else []:
        if blob.name.startswith("."):
            continue
        blobs.checked += 1
        if sha256_file(blob) != f"sha256:{blob.name}":
            blobs.problems.append(f"blob sha256:{blob.name}: content differs from its digest")
    results.append(blobs)
    return results


def verify_tree(root: Path) -> list[VerifyResult]:
    """Every container of a CVMFS-layout tree."""
    containers = root / "containers"
    return [
        verify_container(entry)
        for entry in sorted(containers.iterdir())
        if entry.is_dir() and not entry.name.startswith(".")
    ]
