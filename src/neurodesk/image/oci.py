"""Reading OCI image layouts (``index.json`` → manifest → config + layers)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurodesk.errors import NeurodeskError

MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}


class ImageFormatError(NeurodeskError):
    """An image on disk is malformed or fails digest verification."""


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Descriptor:
        try:
            return cls(
                media_type=str(data["mediaType"]),
                digest=str(data["digest"]),
                size=int(data["size"]),
                annotations=dict(data.get("annotations") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ImageFormatError(f"malformed OCI descriptor: {exc}") from None

    @property
    def hex(self) -> str:
        algorithm, _, value = self.digest.partition(":")
        if algorithm != "sha256" or len(value) != 64:
            raise ImageFormatError(f"unsupported digest {self.digest!r}: only sha256 is accepted")
        return value


@dataclass(frozen=True)
class ImageManifest:
    digest: str
    config: Descriptor
    layers: list[Descriptor]
    config_json: dict[str, Any]

    @property
    def env(self) -> dict[str, str]:
        pairs = (self.config_json.get("config") or {}).get("Env") or []
        return dict(p.split("=", 1) for p in pairs if "=" in p)

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.config_json.get("config") or {}).get("Labels") or {})


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


class OCILayout:
    """A directory in the OCI image-layout format, as written by ``buildah push oci:DIR``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if not (root / "oci-layout").is_file() or not (root / "index.json").is_file():
            raise ImageFormatError(f"{root} is not an OCI image layout (no oci-layout/index.json)")

    def blob_path(self, descriptor: Descriptor) -> Path:
        return self.root / "blobs" / "sha256" / descriptor.hex

    def read_blob_json(self, descriptor: Descriptor) -> dict[str, Any]:
        path = self.blob_path(descriptor)
        raw = path.read_bytes()
        if "sha256:" + hashlib.sha256(raw).hexdigest() != descriptor.digest:
            raise ImageFormatError(f"blob {descriptor.digest} does not match its digest")
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ImageFormatError(f"blob {descriptor.digest} is not a JSON object")
        return data

    def manifest(self, ref: str | None = None) -> ImageManifest:
        index = json.loads((self.root / "index.json").read_text())
        entries = [Descriptor.from_json(m) for m in index.get("manifests", [])]
        if ref is not None:
            entries = [
                e for e in entries if e.annotations.get("org.opencontainers.image.ref.name") == ref
            ]
        entries = [e for e in entries if e.media_type in MANIFEST_TYPES]
        if len(entries) != 1:
            raise ImageFormatError(
                f"{self.root}: expected one image manifest{f' for {ref!r}' if ref else ''}, "
                f"found {len(entries)}"
            )
        manifest_desc = entries[0]
        manifest = self.read_blob_json(manifest_desc)
        config = Descriptor.from_json(manifest["config"])
        layers = [Descriptor.from_json(layer) for layer in manifest.get("layers", [])]
        return ImageManifest(manifest_desc.digest, config, layers, self.read_blob_json(config))
