"""A small client for the OCI distribution (registry v2) API, on httpx.

Images are stored as ``<namespace>/<name>_<version>:<builddate>``, upstream's naming. Anonymous
bearer tokens (``WWW-Authenticate: Bearer realm=...``) are fetched when a registry asks, which
covers public pulls from GHCR and Docker Hub; ``--insecure`` means plain HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from neurodesk.sources.auth import credentials_for
from neurodesk.sources.http import (
    JSON_TYPES,
    STATIC_TYPES,
    Answer,
    BadAnswerError,
    HttpSettings,
    expect_status,
    expect_type,
    field,
    json_object,
    make_client,
)
from neurodesk.sources.http import request as http_request
from neurodesk.sources.throttle import wait_retry_after
from neurodesk.sources.transfer import OnBytes, SourceError, TransientError, download

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
CHUNK_SIZE = 16 << 20  # uploads above this are sent in PATCH chunks
MAX_LISTING = 100_000  # repositories in a catalog: past this, a listing that never ends
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def _basic(credentials: tuple[str, str]) -> dict[str, str]:
    raw = base64.b64encode(":".join(credentials).encode()).decode()
    return {"Authorization": f"Basic {raw}"}


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
    """One registry mirror. Every answer is checked (status, content type, JSON shape) before
    use, and every error names this mirror (see :mod:`neurodesk.sources.http`)."""

    def __init__(
        self, address: RegistryAddress, timeout: float = 10.0, settings: HttpSettings | None = None
    ) -> None:
        self.address = address
        self.settings = settings or HttpSettings(timeout=timeout)
        self.client = make_client(self.settings, insecure=not address.secure)
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

    def _wait_retry_after(self, answer: Answer) -> bool:
        """A 429 with a short ``Retry-After``: wait and say retry (:mod:`.throttle`)."""
        return wait_retry_after(answer.status, answer.headers)

    def _fetch_token(self, challenge: str, scope: str) -> bool:
        credentials = credentials_for(self.address.host)
        if challenge.lower().startswith("basic") and credentials:
            self._basic = _basic(credentials)["Authorization"]
            return True
        if not challenge.lower().startswith("bearer"):
            return False
        params = dict(_CHALLENGE.findall(challenge))
        if "realm" not in params:
            return False
        query = {"service": params.get("service", ""), "scope": params.get("scope", scope)}
        if not params["realm"].startswith(("https://", "http://")):
            raise BadAnswerError(f"{self}: token realm '{params['realm'][:80]}' is not a URL")
        basic = _basic(credentials) if credentials else {}
        answer = http_request(
            self.client, "GET", params["realm"], mirror=str(self), params=query, headers=basic
        )
        if answer.status != 200:
            return False
        body = json_object(answer, JSON_TYPES | {"text/plain", ""})
        token = body.get("token") or body.get("access_token") or ""
        if not isinstance(token, str):
            raise BadAnswerError(f"{self}: the token endpoint answered a {type(token).__name__}")
        self._token[scope] = token
        return bool(token)

    def request(self, method: str, url: str, scope: str = "", **kwargs: Any) -> Answer:
        """One request (relative URLs are on this registry), with an anonymous token fetched
        when the registry asks for one; the body is read under the limits of ``settings``."""
        if not url.startswith("http"):
            url = self.address.base + url
        headers = {**kwargs.pop("headers", {}), **self._auth_headers(scope)}
        answer = http_request(self.client, method, url, mirror=str(self), headers=headers, **kwargs)
        if answer.status == 401 and self._fetch_token(
            answer.headers.get("WWW-Authenticate", ""), scope
        ):
            headers.update(self._auth_headers(scope))
            answer = http_request(
                self.client, method, url, mirror=str(self), headers=headers, **kwargs
            )
        if self._wait_retry_after(answer):
            answer = http_request(
                self.client, method, url, mirror=str(self), headers=headers, **kwargs
            )
        return answer

    def _pull_scope(self, repo: str) -> str:
        return f"repository:{repo}:pull"

    def _push_scope(self, repo: str) -> str:
        return f"repository:{repo}:pull,push"

    # -- reading -------------------------------------------------------------------------------
    def ping(self) -> None:
        answer = self.request("GET", "/v2/")
        expect_status(answer, 200, 401)
        if answer.status == 200:  # a registry answers JSON ({} or true); a web server HTML
            expect_type(answer, JSON_TYPES | STATIC_TYPES)

    def catalog(self) -> list[str]:
        repos: list[str] = []
        url = "/v2/_catalog?n=1000"
        seen: set[str] = set()
        while url:
            if url in seen or len(seen) > MAX_LISTING // 100:
                raise BadAnswerError(f"{self}: the repository listing does not end")
            seen.add(url)
            answer = self.request("GET", url, scope="registry:catalog:*")
            body = json_object(answer)
            repos += field(body, "repositories", list, str(self), answer.what, each=str)
            link = answer.headers.get("Link", "")
            match = re.match(r"<([^>]+)>", link)
            url = match.group(1) if match else ""
            if len(repos) > MAX_LISTING or (
                url.startswith("http") and not url.startswith(self.address.base + "/")
            ):
                raise BadAnswerError(f"{self}: the repository listing does not end")
        return repos

    def tags(self, repo: str) -> list[str]:
        answer = self.request("GET", f"/v2/{repo}/tags/list", scope=self._pull_scope(repo))
        body = json_object(answer)
        return list(field(body, "tags", list, str(self), answer.what, [], each=str))

    def manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """``(raw bytes, media type, digest)``; the digest is computed, and checked against the
        registry's when it sends one."""
        answer = self.request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            scope=self._pull_scope(repo),
            headers={"Accept": MANIFEST_ACCEPT},
        )
        body = json_object(answer, JSON_TYPES)
        raw = answer.content
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        claimed = answer.headers.get("Docker-Content-Digest")
        if (claimed and claimed != digest) or (
            reference.startswith("sha256:") and reference != digest
        ):
            raise TransientError(f"{self}: manifest {repo}:{reference} arrived corrupt")
        media_type = answer.content_type
        if media_type == "application/json":
            media_type = str(body.get("mediaType") or OCI_MANIFEST)
        return raw, media_type, digest

    def blob_exists(self, repo: str, digest: str) -> bool:
        answer = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=self._pull_scope(repo))
        if answer.status == 404:
            return False
        expect_status(answer, 200)
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
            mirror=str(self),
            settings=self.settings,
        )

    # -- writing -------------------------------------------------------------------------------
    def upload_blob(
        self, repo: str, digest: str, path: Path, on_bytes: OnBytes | None = None
    ) -> None:
        """Monolithic PUT for small blobs, PATCH chunks then PUT for large ones."""
        scope = self._push_scope(repo)
        start = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope)
        expect_status(start, 202)
        location = start.headers.get("Location", "")
        if not location:
            raise BadAnswerError(f"{self}: {start.what}: no upload Location in the answer")
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
                        expect_status(response, 202)
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
        except httpx.InvalidURL:
            raise BadAnswerError(f"{self}: upload Location '{location[:80]}' is no URL") from None
        expect_status(response, 201)
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != digest:
            raise BadAnswerError(f"{self}: stored blob {digest} as {stored}")
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
        expect_status(response, 201)
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        claimed = response.headers.get("Docker-Content-Digest")
        if claimed and claimed != digest:
            raise BadAnswerError(f"{self}: stored {repo}:{tag} as {claimed}, expected {digest}")
        return digest
