"""Reading OCI image layouts (``index.json`` → manifest → config + layers)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurodesk.errors import NeurodeskError

MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}


_HEX64 = re.compile(r"[0-9a-f]{64}")


class ImageFormatError(NeurodeskError):
    """An image on disk is malformed or fails digest verification."""


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"size {value!r} is not a byte count")
    return value


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Descriptor:
        if not isinstance(data, dict):
            raise ImageFormatError(f"malformed OCI descriptor: {str(data)[:60]!r} is not an object")
        try:
            return cls(
                media_type=str(data["mediaType"]),
                digest=str(data["digest"]),
                size=_size(data["size"]),
                annotations=dict(data.get("annotations") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ImageFormatError(f"malformed OCI descriptor: {exc}") from None

    @property
    def hex(self) -> str:
        algorithm, _, value = self.digest.partition(":")
        if algorithm != "sha256" or not _HEX64.fullmatch(value):
            raise ImageFormatError(f"unsupported digest {self.digest!r}: only sha256 is accepted")
        return value


@dataclass(frozen=True)
class ImageManifest:
    digest: str
    config: Descriptor
    layers: list[Descriptor]
    config_json: dict[str, Any]

    @property
    def _config(self) -> dict[str, Any]:
        inner = self.config_json.get("config")
        return inner if isinstance(inner, dict) else {}

    @property
    def env(self) -> dict[str, str]:
        pairs = self._config.get("Env")
        if not isinstance(pairs, list):
            return {}
        return dict(p.split("=", 1) for p in pairs if isinstance(p, str) and "=" in p)

    @property
    def labels(self) -> dict[str, str]:
        labels = self._config.get("Labels")
        if not isinstance(labels, dict):
            return {}
        return {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)}


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
        if not path.is_file():
            raise ImageFormatError(
                f"{self.root}: blob {descriptor.digest} is missing",
                hint="the layout is incomplete: copy or export it again",
            )
        raw = path.read_bytes()
        if "sha256:" + hashlib.sha256(raw).hexdigest() != descriptor.digest:
            raise ImageFormatError(f"blob {descriptor.digest} does not match its digest")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ImageFormatError(f"blob {descriptor.digest} is not JSON") from None
        if not isinstance(data, dict):
            raise ImageFormatError(f"blob {descriptor.digest} is not a JSON object")
        return data

    def manifest(self, ref: str | None = None) -> ImageManifest:
        try:
            index = json.loads((self.root / "index.json").read_bytes())
        except (ValueError, UnicodeDecodeError, OSError):
            raise ImageFormatError(f"{self.root}/index.json is not readable JSON") from None
        listed = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(listed, list):
            raise ImageFormatError(f"{self.root}/index.json has no 'manifests' list")
        entries = [Descriptor.from_json(m) for m in listed]
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
        layers_json = manifest.get("layers") or []
        if not isinstance(layers_json, list):
            raise ImageFormatError(f"manifest {manifest_desc.digest}: 'layers' is not a list")
        config = Descriptor.from_json(manifest.get("config"))  # type: ignore[arg-type]
        layers = [Descriptor.from_json(layer) for layer in layers_json]
        return ImageManifest(manifest_desc.digest, config, layers, self.read_blob_json(config))
