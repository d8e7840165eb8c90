"""An OCI image layout served over plain HTTP (or from a local directory or ``.tar`` archive).

A layout holds many images; each manifest in ``index.json`` is annotated with
``org.opencontainers.image.ref.name = <name>_<version>:<builddate>`` — what
``skopeo copy ... oci:DIR:<name>_<version>:<builddate>`` writes. Any static file server can serve
it; mirrors are probed by the time they take to answer ``index.json``.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import httpx

from neurodesk.errors import NeurodeskError
from neurodesk.image.archive import extract_archive
from neurodesk.image.oci import MANIFEST_TYPES, Descriptor, ImageFormatError, sha256_file
from neurodesk.paths import Paths
from neurodesk.sources.http import (
    JSON_TYPES,
    STATIC_TYPES,
    BadAnswerError,
    HttpSettings,
    expect_status,
    expect_type,
    make_client,
    parse_object,
    request,
)
from neurodesk.sources.mirrors import MirrorSet
from neurodesk.sources.naming import Available, Spec, newest
from neurodesk.sources.progress import TransferProgress
from neurodesk.sources.pull import pull_image
from neurodesk.sources.transfer import (
    CorruptBlobError,
    MissingError,
    OnBytes,
    SourceError,
    download,
)
from neurodesk.store import ImageRecord

REF = "org.opencontainers.image.ref.name"


class LayoutMirror:
    """One copy of the layout: ``http(s)://...`` or a local directory."""

    def __init__(self, location: str, client: httpx.Client) -> None:
        self.location = location.removeprefix("file://")
        self.is_http = location.startswith(("http://", "https://"))
        self.client = client
        self.name = str(httpx.URL(location).copy_with(query=None)) if self.is_http else location

    def __str__(self) -> str:
        return self.location

    def url(self, rel: str) -> str:
        return self.location.rstrip("/") + "/" + rel

    def read(self, rel: str) -> bytes:
        if not self.is_http:
            path = Path(self.location) / rel
            if not path.is_file():
                raise MissingError(f"{path} does not exist")
            return path.read_bytes()
        answer = request(self.client, "GET", self.url(rel), mirror=self.name)
        expect_status(answer, 200)
        expect_type(answer, JSON_TYPES | STATIC_TYPES)
        return answer.content

    def fetch_blob(self, descriptor: Descriptor, dest: Path, on_bytes: OnBytes) -> None:
        rel = f"blobs/sha256/{descriptor.hex}"
        if self.is_http:
            download(
                self.client,
                self.url(rel),
                dest,
                descriptor.digest,
                descriptor.size,
                on_bytes,
                mirror=self.name,
            )
            return
        src = Path(self.location) / rel
        if not src.is_file():
            raise MissingError(f"{src} does not exist")
        tmp = dest.with_name(dest.name + ".part")
        shutil.copyfile(src, tmp)
        on_bytes(descriptor.size)
        if sha256_file(tmp) != descriptor.digest:
            tmp.unlink()
            raise CorruptBlobError(f"{src} does not match its digest {descriptor.digest}")
        tmp.replace(dest)


def _entries(index: dict[str, Any]) -> list[tuple[str, Descriptor]]:
    out = []
    for entry in index.get("manifests") or []:
        try:
            descriptor = Descriptor.from_json(entry)
        except ImageFormatError:
            continue  # a malformed entry names no image we could fetch
        ref = descriptor.annotations.get(REF, "")
        if descriptor.media_type in MANIFEST_TYPES and ref:
            out.append((ref, descriptor))
    return out


def _available(index: dict[str, Any], spec_name: str | None = None) -> list[Available]:
    found = []
    for ref, _descriptor in _entries(index):
        head, sep, builddate = ref.rpartition(":")
        if not sep:
            continue
        if spec_name is not None:
            if not head.startswith(spec_name + "_"):
                continue
            name, version = spec_name, head[len(spec_name) + 1 :]
        else:
            name, _, version = head.partition("_")
        if name and version:
            found.append(Available(name, version, builddate, ref))
    return found


class LayoutSource:
    kind = "http"

    def __init__(
        self,
        label: str,
        mirrors: list[str],
        insecure: bool,
        timeout: float,
        retries: int,
        settings: HttpSettings | None = None,
    ):
        self.label = label
        self.client = make_client(settings or HttpSettings(timeout=timeout), insecure)
        self.timeout = timeout
        self.layouts = [LayoutMirror(m, self.client) for m in mirrors]
        self.mirrors: MirrorSet[LayoutMirror] = MirrorSet(
            self.layouts, lambda m: self._probe(m), retries=retries, label=lambda m: m.name
        )
        self._index: dict[str, Any] | None = None

    def close(self) -> None:
        self.client.close()

    def _probe(self, mirror: LayoutMirror) -> None:
        mirror.read("index.json")

    def index(self) -> dict[str, Any]:
        if self._index is None:

            def read_index(mirror: LayoutMirror) -> dict[str, Any]:
                index = parse_object(mirror.read("index.json"), mirror.name, "index.json")
                if not isinstance(index.get("manifests"), list):
                    raise BadAnswerError(f"{mirror.name}: index.json: 'manifests' is not a list")
                return index

            self._index = self.mirrors.attempt(read_index, f"index of {self.label}")
        return self._index

    def find(self, spec: Spec) -> Available | None:
        return newest(_available(self.index(), spec.name), spec)

    def available(self) -> list[Available]:
        return _available(self.index())

    def fetch(
        self, found: Available, paths: Paths, progress: TransferProgress | None = None
    ) -> ImageRecord:
        descriptor = next(d for ref, d in _entries(self.index()) if ref == found.where)
        raw = self.mirrors.attempt(
            lambda m: _verified(m.read(f"blobs/sha256/{descriptor.hex}"), descriptor),
            f"manifest of {found.where}",
        )

        def get_blob(blob: Descriptor, dest: Path, on_bytes: OnBytes) -> None:
            self.mirrors.attempt(
                lambda m: m.fetch_blob(blob, dest, on_bytes), f"blob {blob.digest[:19]}"
            )

        return pull_image(
            paths,
            found.name,
            found.version,
            found.builddate,
            raw,
            descriptor.digest,
            descriptor.media_type,
            get_blob,
            progress,
        )


def _verified(raw: bytes, descriptor: Descriptor) -> bytes:
    if "sha256:" + hashlib.sha256(raw).hexdigest() != descriptor.digest:
        raise CorruptBlobError(f"manifest {descriptor.digest} arrived corrupt")
    return raw


def unpack_archive(
    location: str,
    paths: Paths,
    timeout: float,
    insecure: bool,
    progress: TransferProgress,
    settings: HttpSettings | None = None,
) -> Path:
    """Download (resumably) and unpack an OCI archive (a tar of a layout); return the layout."""
    key = location.replace("/", "_").replace(":", "_")
    cache = paths.cache / "archives"
    tar_path = cache / f"{key}"
    if location.startswith(("http://", "https://")):
        with make_client(settings or HttpSettings(timeout=timeout), insecure) as client:
            progress.add(location, location.rsplit("/", 1)[-1], None)
            download(
                client, location, tar_path, None, None, lambda n: progress.advance(location, n)
            )
    else:
        tar_path = Path(location.removeprefix("file://"))
    out = cache / f"{key}.layout"
    if not (out / "index.json").is_file():
        tmp = cache / f"{key}.unpacking"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            extract_archive(tar_path, tmp)
        except (NeurodeskError, OSError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SourceError(f"{location} is not a readable OCI archive: {exc}") from None
        shutil.rmtree(out, ignore_errors=True)
        tmp.replace(out)
    return out
