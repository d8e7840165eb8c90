"""Bringing an image from a path into the store, whatever its format.

The one entry point for sources of images (builds, registries, CVMFS trees, files)::

    import_path(store, path, name, version, builddate)

accepts an OCI image layout (directory), an OCI archive (tar of a layout), a docker-archive
tarball, a squashfs file, a SIF file, or an unpacked sandbox directory (used in place, never
copied). Name, version and build date default to what the image itself says, where it does.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from neurodesk.errors import NotFoundError, ValidationError
from neurodesk.image.archive import (
    archive_members,
    docker_archive_to_layout,
    extract_archive,
    is_docker_archive,
    is_oci_archive,
)
from neurodesk.image.limits import UnpackLimits
from neurodesk.image.oci import ImageFormatError, OCILayout
from neurodesk.image.sandbox import image_config, looks_like_rootfs
from neurodesk.image.squashfs import (
    digest_range,
    is_sif,
    is_squashfs,
    sif_labels,
    sif_root_partition,
    unsquash,
)
from neurodesk.store.sifmount import fuse_problem
from neurodesk.store.sifstore import add_sif
from neurodesk.store.store import ImageRecord, Store

Progress = Callable[[str], None]

# <name>_<version>:<date> or <name>_<version>_<date>, as upstream names images and sandboxes
_TAGGED = re.compile(r"^(?:.*/)?(?P<nv>[^/:]+)[:_](?P<date>\d{8})$")


@dataclass(frozen=True)
class Identity:
    name: str | None = None
    version: str | None = None
    builddate: str | None = None


def guess_identity(text: str | None) -> Identity:
    """``dcm2niix_1.0.20220720:20261121`` → (dcm2niix, 1.0.20220720, 20261121), best effort.

    Only a default for when the user gives no ``--name``/``--version``: upstream names cannot
    contain ``_`` inside name or version, so the first ``_`` splits them.
    """
    if not text:
        return Identity()
    text = text.removesuffix(".simg").removesuffix(".sif").removesuffix(".sqfs")
    match = _TAGGED.match(text)
    if not match:
        return Identity()
    name, _, version = match.group("nv").partition("_")
    return Identity(name or None, version or None, match.group("date"))


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "oci-layout").is_file():
            return "oci-layout"
        if looks_like_rootfs(path):
            return "sandbox"
        raise ImageFormatError(
            f"{path} is neither an OCI layout nor an unpacked image",
            hint="an unpacked image has bin/ or usr/ at its top",
        )
    if not path.is_file():
        raise NotFoundError(f"{path} does not exist")
    if is_squashfs(path):
        return "squashfs"
    if is_sif(path):
        return "sif"
    try:
        members = archive_members(path)
    except (tarfile.TarError, OSError, EOFError):  # not an archive
        members = []
    if is_oci_archive(members):
        return "oci-archive"
    if is_docker_archive(members):
        return "docker-archive"
    raise ImageFormatError(
        f"{path}: unknown image format",
        hint="give an OCI layout or archive, a docker-archive, a .sqfs, a .sif or a sandbox dir",
    )


def _identity(
    guessed: Identity, name: str | None, version: str | None, builddate: str | None, path: Path
) -> tuple[str, str, str]:
    name = name or guessed.name
    version = version or guessed.version
    builddate = builddate or guessed.builddate or datetime.now(UTC).strftime("%Y%m%d")
    if not name or not version:
        raise ValidationError(
            f"cannot tell the name and version of {path}",
            problems=[],
            hint="pass --name NAME --version VERSION",
        )
    return name, version, builddate


def import_path(
    store: Store,
    path: Path,
    name: str | None = None,
    version: str | None = None,
    builddate: str | None = None,
    progress: Progress | None = None,
    sha256: str | None = None,
) -> ImageRecord:
    """Import the image at ``path`` (any supported format) under ``name/version/builddate``.

    ``sha256``: the digest of the file at ``path`` when the caller computed it while
    downloading it into a file of its own; a SIF is then moved into the store, not copied and
    hashed again."""
    say = progress or (lambda _message: None)
    path = path.absolute()
    kind = detect_format(path)
    say(f"{path.name}: {kind}")
    if kind == "oci-layout":
        layout = OCILayout(path)
        ident = _identity(_layout_identity(layout), name, version, builddate, path)
        return store.import_layout(layout, *ident, progress=say)
    if kind == "sandbox":
        ident = _identity(guess_identity(path.name), name, version, builddate, path)
        config = image_config(path)
        env = dict(p.split("=", 1) for p in config["config"]["Env"])
        return store.register_sandbox(path, *ident, env=env, labels=config["config"]["Labels"])
    if kind in ("oci-archive", "docker-archive"):
        with store.workdir() as work:
            say("unpacking the archive")
            extract_archive(path, work / "archive")
            if kind == "oci-archive":
                layout = OCILayout(work / "archive")
                guessed = _layout_identity(layout)
            else:
                layout, tag = docker_archive_to_layout(work / "archive", work / "layout")
                guessed = guess_identity(tag)
            if guessed == Identity():
                guessed = guess_identity(path.name.removesuffix(".tar"))
            ident = _identity(guessed, name, version, builddate, path)
            return store.import_layout(layout, *ident, progress=say)
    ident = _identity(guess_identity(path.name), name, version, builddate, path)
    if kind == "squashfs":
        say("hashing the squashfs file")
        digest = digest_range(path)

        def fill_sqfs(root: Path) -> dict[str, Any]:
            unsquash(path, root, limits=UnpackLimits.load(store.root.parent / "config.yaml"))
            return image_config(root)

        return store.import_rootfs(digest, fill_sqfs, *ident, source="squashfs", progress=say)
    partition = sif_root_partition(path)
    if (why := fuse_problem()) is None:
        return add_sif(store, path, ident, say, sha256)  # kept as one file, mounted on use
    say(f"FUSE is not usable here ({why}): unpacking the SIF once with unsquashfs")
    say("hashing the SIF system partition")
    digest = digest_range(path, partition.offset, partition.length)
    raw_labels = sif_labels(path)

    def fill_sif(root: Path) -> dict[str, Any]:
        unsquash(
            path,
            root,
            offset=partition.offset,
            limits=UnpackLimits.load(store.root.parent / "config.yaml"),
        )
        labels: dict[str, str] = {}
        if raw_labels:
            try:
                data = json.loads(raw_labels)
                labels = {str(k): str(v) for k, v in data.items()}
            except (ValueError, AttributeError):
                labels = {}
        return image_config(root, labels)

    return store.import_rootfs(digest, fill_sif, *ident, source="sif", progress=say)


REF_NAME = "org.opencontainers.image.ref.name"


def _layout_identity(layout: OCILayout) -> Identity:
    try:
        index = json.loads((layout.root / "index.json").read_bytes())
    except (ValueError, UnicodeDecodeError, OSError):
        raise ImageFormatError(f"{layout.root}/index.json is not readable JSON") from None
    entries = index.get("manifests") if isinstance(index, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        annotations = entry.get("annotations") if isinstance(entry, dict) else None
        ref = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
        if isinstance(ref, str) and ref:
            return guess_identity(ref)
    return Identity()
