"""Where a SIF file is on an HTTP(S) server, for images read lazily (``install --lazy``).

A source is either the URL of a SIF file itself (object storage, a registry blob URL
``.../blobs/sha256:<hex>``, any HTTP server) or the base URL of a CVMFS-layout tree that keeps
``containers/<id>/<id>.sif`` beside the unpacked directories (its ``log.txt`` lists the ids).
The SIF's sha256 comes from the URL (registry blobs) or from ``<url>.sha256`` beside the file;
without one the image could not be verified, so it is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import httpx

from neurodesk.errors import NeurodeskError, NotFoundError
from neurodesk.sources.naming import split_id

_DIGEST_IN_URL = re.compile(r"sha256:([0-9a-f]{64})")
_HEX = re.compile(r"^(?:sha256:)?([0-9a-f]{64})\b")
SIF_SUFFIXES = (".sif", ".simg")


@dataclass(frozen=True)
class RemoteSif:
    url: str
    digest: str
    name: str
    version: str
    builddate: str


def is_http(source: str | None) -> bool:
    return bool(source) and urlsplit(source or "").scheme in ("http", "https")


def _is_sif_url(url: str) -> bool:
    path = unquote(urlsplit(url).path)
    return path.endswith(SIF_SUFFIXES) or bool(_DIGEST_IN_URL.search(path))


def _digest(client: httpx.Client, url: str) -> str:
    found = _DIGEST_IN_URL.search(unquote(urlsplit(url).path))
    if found:
        return f"sha256:{found.group(1)}"
    try:
        response = client.get(url + ".sha256")
    except httpx.HTTPError as exc:
        raise NeurodeskError(f"cannot reach {url}: {exc}", hint="check the URL") from None
    match = _HEX.match(response.text.strip().lower()) if response.status_code == 200 else None
    if match is None:
        raise NeurodeskError(
            f"no sha256 for {url} (looked for {url}.sha256)",
            hint="publish the SIF with its .sha256 beside it, or use a registry blob URL",
        )
    return f"sha256:{match.group(1)}"


def _from_tree(client: httpx.Client, base: str, name: str, version: str) -> tuple[str, str]:
    """(url, id) of the newest ``name``/``version`` SIF in the tree at ``base``."""
    try:
        response = client.get(base.rstrip("/") + "/log.txt")
    except httpx.HTTPError as exc:
        raise NeurodeskError(f"cannot reach {base}: {exc}", hint="check the URL") from None
    if response.status_code != 200:
        raise NotFoundError(
            f"{base} is neither a SIF URL nor a tree with log.txt (HTTP {response.status_code})",
            hint="give the URL of a .sif file",
        )
    ids = []
    for line in response.text.splitlines():
        image_id = line.split(" ", 1)[0].strip()
        parts = split_id(image_id, name) if image_id else None
        if parts and (not version or parts[1] == version):
            ids.append((parts[2], image_id))
    if not ids:
        raise NotFoundError(f"{base} has no {name}{'/' + version if version else ''}")
    image_id = max(ids)[1]
    return f"{base.rstrip('/')}/containers/{image_id}/{image_id}.sif", image_id


def find_remote_sif(spec: str, source: str, timeout: float) -> RemoteSif:
    """The SIF for ``spec`` (NAME[/VERSION]) at ``source`` (a SIF URL or a tree's base URL)."""
    name, _, version = spec.partition("/")
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        if _is_sif_url(source):
            url = source
            stem = unquote(urlsplit(url).path).rsplit("/", 1)[-1]
            for suffix in SIF_SUFFIXES:
                stem = stem.removesuffix(suffix)
            parts = split_id(stem, name)
            builddate = parts[2] if parts else datetime.now(UTC).strftime("%Y%m%d")
            version = version or (parts[1] if parts else "")
            if not version:
                raise NeurodeskError(
                    f"cannot tell the version of {name} from {url}", hint=f"write {name}/VERSION"
                )
        else:
            url, image_id = _from_tree(client, source, name, version)
            parts = split_id(image_id, name)
            assert parts is not None
            _, version, builddate = parts
        return RemoteSif(url, _digest(client, url), name, version, builddate)
