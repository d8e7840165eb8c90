"""The local store: verified blobs by digest, one unpacked root filesystem per image, refs.

Layout under ``$NEURODESK_HOME/store``::

    blobs/sha256/<hex>                 OCI blobs (manifests, configs, layers), verified on entry
    images/<manifest hex>/rootfs/      the unpacked, runnable root filesystem
    images/<manifest hex>/image.json   the image config (Env, Labels, ...)
    refs/<name>/<version>/<date>.json  name → manifest digest, plus what install needs
    tmp/                               work in progress; renamed into place when complete
    lock                               writers take it; readers never need it

Every change is prepared under ``tmp/`` and published by one ``rename``, so a crash at any point
leaves either the old state or the new one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from neurodesk.errors import NotFoundError
from neurodesk.image.layers import unpack_layers
from neurodesk.image.oci import Descriptor, ImageFormatError, ImageManifest, OCILayout
from neurodesk.store.atomic import write_text
from neurodesk.store.version import version_key

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageRecord:
    """One named image in the store."""

    name: str
    version: str
    builddate: str
    digest: str
    store_root: Path
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The flat container id, ``<name>_<version>_<builddate>``."""
        return f"{self.name}_{self.version}_{self.builddate}"

    @property
    def image_dir(self) -> Path:
        return self.store_root / "images" / self.digest.removeprefix("sha256:")

    @property
    def rootfs(self) -> Path:
        return self.image_dir / "rootfs"

    def deploy_env(self, key: str) -> list[str]:
        return [p for p in self.env.get(key, "").split(":") if p]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "builddate": self.builddate,
            "digest": self.digest,
            "env": self.env,
            "labels": self.labels,
        }


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root

    # -- paths ---------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def _ref_path(self, name: str, version: str, builddate: str) -> Path:
        return self.root / "refs" / name / version / f"{builddate}.json"

    def lock(self) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / "lock"))

    def _tmpdir(self) -> Path:
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=tmp))

    # -- writing -------------------------------------------------------------------------------
    def _add_blob(self, layout: OCILayout, descriptor: Descriptor) -> Path:
        """Copy one blob in, verifying its digest and size while copying."""
        final = self.blob_path(descriptor.digest)
        if final.exists():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        with (
            layout.blob_path(descriptor).open("rb") as src,
            tempfile.NamedTemporaryFile(dir=final.parent, prefix=".in-", delete=False) as out,
        ):
            try:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                actual = "sha256:" + digest.hexdigest()
                if actual != descriptor.digest or size != descriptor.size:
                    raise ImageFormatError(
                        f"blob {descriptor.digest} is corrupt (got {actual}, {size} bytes)",
                        hint="fetch or build the image again",
                    )
                Path(out.name).replace(final)
            except BaseException:
                Path(out.name).unlink(missing_ok=True)
                raise
        return final

    def import_layout(
        self,
        layout: OCILayout,
        name: str,
        version: str,
        builddate: str,
        progress: Progress | None = None,
    ) -> ImageRecord:
        """Bring the single image of ``layout`` into the store under ``name/version/builddate``."""
        say = progress or (lambda _message: None)
        manifest = layout.manifest()
        with self.lock():
            say("verifying blobs")
            for descriptor in [manifest.config, *manifest.layers]:
                self._add_blob(layout, descriptor)
            # The manifest too, byte for byte: pushing the image later keeps its digest.
            manifest_file = layout.root / "blobs" / "sha256" / manifest.digest.split(":")[-1]
            self._add_blob(
                layout, Descriptor("manifest", manifest.digest, manifest_file.stat().st_size)
            )
            record = self._record(name, version, builddate, manifest)
            if not record.rootfs.is_dir():
                say(f"unpacking {len(manifest.layers)} layer(s)")
                self._unpack(manifest, record.image_dir)
            write_text(
                self._ref_path(name, version, builddate),
                json.dumps(
                    {**record.to_json(), "created": datetime.now(UTC).isoformat()}, indent=2
                ),
            )
        return record

    def _record(
        self, name: str, version: str, builddate: str, manifest: ImageManifest
    ) -> ImageRecord:
        return ImageRecord(
            name, version, builddate, manifest.digest, self.root, manifest.env, manifest.labels
        )

    def _unpack(self, manifest: ImageManifest, image_dir: Path) -> None:
        work = self._tmpdir()
        try:
            (work / "rootfs").mkdir()
            unpack_layers([self.blob_path(d.digest) for d in manifest.layers], work / "rootfs")
            write_text(work / "image.json", json.dumps(manifest.config_json, indent=2))
            image_dir.parent.mkdir(parents=True, exist_ok=True)
            work.replace(image_dir)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    # -- reading -------------------------------------------------------------------------------
    def _load_ref(self, path: Path) -> ImageRecord:
        data = json.loads(path.read_text())
        return ImageRecord(
            data["name"],
            data["version"],
            data["builddate"],
            data["digest"],
            self.root,
            dict(data.get("env") or {}),
            dict(data.get("labels") or {}),
        )

    def images(self) -> list[ImageRecord]:
        refs = sorted((self.root / "refs").glob("*/*/*.json"))
        records = [self._load_ref(p) for p in refs]
        return sorted(records, key=lambda r: (r.name, version_key(r.version), r.builddate))

    def resolve(self, spec: str) -> ImageRecord:
        """``NAME``, ``NAME/VERSION`` or ``NAME/VERSION/BUILDDATE`` → the newest matching image."""
        name, _, rest = spec.partition("/")
        version, _, builddate = rest.partition("/")
        candidates = [r for r in self.images() if r.name == name]
        if not candidates:
            known = sorted({r.name for r in self.images()})
            raise NotFoundError(
                f"no image named '{name}' in the store",
                hint=f"build it with 'neurodesk build {name}'"
                + (f"; images here: {', '.join(known)}" if known else ""),
            )
        matching = [
            r
            for r in candidates
            if (not version or r.version == version) and (not builddate or r.builddate == builddate)
        ]
        if not matching:
            versions = ", ".join(sorted({f"{r.name}/{r.version}" for r in candidates}))
            raise NotFoundError(f"no image '{spec}' in the store", hint=f"available: {versions}")
        return matching[-1]
