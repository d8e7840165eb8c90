"""A small client for the OCI distribution (registry v2) API, on httpx.

Images are stored as ``<namespace>/<name>_<version>:<builddate>``, upstream's naming. Anonymous
bearer tokens (``WWW-Authenticate: Bearer realm=...``) are fetched when a registry asks, which
covers public pulls from GHCR and Docker Hub; ``--insecure`` means plain HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from neurodesk.sources.auth import credentials_for
from neurodesk.sources.transfer import (
    OnBytes,
    SourceError,
    TransientError,
    check_status,
    download,
    make_client,
)

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
RETRY_AFTER_MAX = 30  # seconds a 429's Retry-After is honoured; longer: fall through
CHUNK_SIZE = 16 << 20  # uploads above this are sent in PATCH chunks
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class RegistryAddress:
    """``[http(s)://|docker://]HOST[:PORT][/NAMESPACE]``."""

    host: str
    namespace: str
    secure: bool

    @classmethod
    def parse(cls, text: str, insecure: bool = False) -> RegistryAddress:
        secure = not insecure
        for prefix in ("docker://", "https://", "http://"):
            if text.startswith(prefix):
                text = text.removeprefix(prefix)
                secure = secure and prefix != "http://"
        host, _, namespace = text.strip("/").partition("/")
        if not host or not re.fullmatch(r"[A-Za-z0-9.\-]+(:\d+)?", host):
            raise SourceError(
                f"'{text}' is not a registry address", hint="use HOST[:PORT]/NAMESPACE"
            )
        return cls(host, namespace, secure)

    @property
    def base(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host}"

    def repo(self, name_version: str) -> str:
        return f"{self.namespace}/{name_version}" if self.namespace else name_version

    def __str__(self) -> str:
        return f"{self.host}/{self.namespace}" if self.namespace else self.host


class Registry:
    def __init__(self, address: RegistryAddress, timeout: float = 10.0) -> None:
        self.address = address
        self.client = make_client(timeout, insecure=not address.secure)
        self._token: dict[str, str] = {}

    def __str__(self) -> str:
        return str(self.address)

    def close(self) -> None:
        self.client.close()

    # -- requests with anonymous bearer auth ----------------------------------------------------
    def _auth_headers(self, scope: str) -> dict[str, str]:
        token = self._token.get(scope)
        if token:
            return {"Authorization": f"Bearer {token}"}
        basic = getattr(self, "_basic", "")
        return {"Authorization": basic} if basic else {}

    def _wait_retry_after(self, response: httpx.Response) -> bool:
        """A 429 with ``Retry-After`` (seconds) up to :data:`RETRY_AFTER_MAX`: wait, say retry."""
        text = response.headers.get("Retry-After", "").strip()
        if response.status_code != 429 or not text.isdigit():
            return False
        if int(text) > RETRY_AFTER_MAX:
            return False  # too long to wait here: the next channel is tried instead
        time.sleep(int(text))
        return True

    def _fetch_token(self, challenge: str, scope: str) -> bool:
        credentials = credentials_for(self.address.host)
        if challenge.lower().startswith("basic") and credentials:
            raw = base64.b64encode(":".join(credentials).encode()).decode()
            self._basic = f"Basic {raw}"
            return True
        if not challenge.lower().startswith("bearer"):
            return False
        params = dict(_CHALLENGE.findall(challenge))
        if "realm" not in params:
            return False
        query = {"service": params.get("service", ""), "scope": params.get("scope", scope)}
        response = self.client.get(params["realm"], params=query, auth=credentials)
        if response.status_code != 200:
            return False
        body = response.json()
        self._token[scope] = str(body.get("token") or body.get("access_token") or "")
        return bool(self._token[scope])

    def request(self, method: str, url: str, scope: str = "", **kwargs: Any) -> httpx.Response:
        if not url.startswith("http"):
            url = self.address.base + url
        headers = {**kwargs.pop("headers", {}), **self._auth_headers(scope)}
        try:
            response = self.client.request(method, url, headers=headers, **kwargs)
            if response.status_code == 401 and self._fetch_token(
                response.headers.get("WWW-Authenticate", ""), scope
            ):
                headers.update(self._auth_headers(scope))
                response = self.client.request(method, url, headers=headers, **kwargs)
            if self._wait_retry_after(response):
                response = self.client.request(method, url, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise TransientError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
        return response

    def _pull_scope(self, repo: str) -> str:
        return f"repository:{repo}:pull"

    def _push_scope(self, repo: str) -> str:
        return f"repository:{repo}:pull,push"

    # -- reading -------------------------------------------------------------------------------
    def ping(self) -> None:
        response = self.request("GET", "/v2/")
        if response.status_code not in (200, 401):
            check_status(response, "GET /v2/")
            raise SourceError(f"{self}: /v2/ answered HTTP {response.status_code}")

    def catalog(self) -> list[str]:
        repos: list[str] = []
        url = "/v2/_catalog?n=1000"
        while url:
            response = self.request("GET", url, scope="registry:catalog:*")
            check_status(response, f"{self}: list repositories")
            repos += response.json().get("repositories") or []
            link = response.headers.get("Link", "")
            match = re.match(r"<([^>]+)>", link)
            url = match.group(1) if match else ""
        return repos

    def tags(self, repo: str) -> list[str]:
        response = self.request("GET", f"/v2/{repo}/tags/list", scope=self._pull_scope(repo))
        check_status(response, f"{self}: tags of {repo}")
        return list(response.json().get("tags") or [])

    def manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """``(raw bytes, media type, digest)``; the digest is computed, and checked against the
        registry's when it sends one."""
        response = self.request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            scope=self._pull_scope(repo),
            headers={"Accept": MANIFEST_ACCEPT},
        )
        check_status(response, f"manifest {repo}:{reference}")
        raw = response.content
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        claimed = response.headers.get("Docker-Content-Digest")
        if (claimed and claimed != digest) or (
            reference.startswith("sha256:") and reference != digest
        ):
            raise TransientError(f"manifest {repo}:{reference} arrived corrupt")
        media_type = response.headers.get("Content-Type", "").split(";")[0] or OCI_MANIFEST
        return raw, media_type, digest

    def blob_exists(self, repo: str, digest: str) -> bool:
        response = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=self._pull_scope(repo))
        if response.status_code == 404:
            return False
        check_status(response, f"HEAD blob {digest}")
        return True

    def download_blob(
        self, repo: str, digest: str, size: int | None, dest: Path, on_bytes: OnBytes | None
    ) -> Path:
        scope = self._pull_scope(repo)
        if not self._token.get(scope):
            self.blob_exists(repo, digest)  # obtains a token where one is needed
        return download(
            self.client,
            f"{self.address.base}/v2/{repo}/blobs/{digest}",
            dest,
            digest,
            size,
            on_bytes,
            headers=self._auth_headers(scope),
        )

    # -- writing -------------------------------------------------------------------------------
    def upload_blob(
        self, repo: str, digest: str, path: Path, on_bytes: OnBytes | None = None
    ) -> None:
        """Monolithic PUT for small blobs, PATCH chunks then PUT for large ones."""
        scope = self._push_scope(repo)
        start = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope)
        check_status(start, f"start upload to {repo}")
        location = start.headers["Location"]
        size = path.stat().st_size
        try:
            with path.open("rb") as handle:
                if size > CHUNK_SIZE:
                    offset = 0
                    while chunk := handle.read(CHUNK_SIZE):
                        response = self.request(
                            "PATCH",
                            location,
                            scope=scope,
                            content=chunk,
                            headers={
                                "Content-Type": "application/octet-stream",
                                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                            },
                        )
                        check_status(response, f"upload {digest}")
                        location = response.headers.get("Location", location)
                        offset += len(chunk)
                        if on_bytes:
                            on_bytes(len(chunk))
                    body = b""
                else:
                    body = handle.read()
            if not location.startswith("http"):
                location = self.address.base + location
            # The upload URL carries the registry's own state in its query: add to it.
            final = str(httpx.URL(location).copy_merge_params({"digest": digest}))
            response = self.request(
                "PUT",
                final,
                scope=scope,
                content=body,
                headers={"Content-Type": "application/octet-stream"},
            )
        except httpx.TransportError as exc:
            raise TransientError(f"upload {digest}: {exc}") from None
        check_status(response, f"finish upload {digest}")
        if on_bytes and body:
            on_bytes(len(body))

    def put_manifest(self, repo: str, tag: str, raw: bytes, media_type: str) -> str:
        response = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{tag}",
            scope=self._push_scope(repo),
            content=raw,
            headers={"Content-Type": media_type},
        )
        check_status(response, f"push manifest {repo}:{tag}")
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        claimed = response.headers.get("Docker-Content-Digest")
        if claimed and claimed != digest:
            raise SourceError(f"{self} stored {repo}:{tag} as {claimed}, expected {digest}")
        return digest
