"""Channel 3 of upstream's order: ``<id>.simg`` SIF files on object storage (S3, Swift, CDN).

Every mirror is asked (HEAD, in parallel) whether it has the file; all that have it, with the
same size, serve it together in Range pieces (:mod:`neurodesk.sources.ranged`), resumably.
Object storage publishes no digest, so the file is checked against the SIF artifact digest a
registry channel publishes for the same container when one answers; otherwise its sha256 is
recorded and shown as unverified-by-publisher.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from neurodesk.paths import Paths
from neurodesk.sources.config import Config, SourceConfig
from neurodesk.sources.http import HttpSettings, make_client, mirror_name, request
from neurodesk.sources.naming import Available, Spec
from neurodesk.sources.origins import PUBLISHER, UNVERIFIED
from neurodesk.sources.progress import NullProgress, TransferProgress
from neurodesk.sources.ranged import finish, ranged_download
from neurodesk.sources.sif_store import download_dir, import_sif
from neurodesk.sources.throttle import wait_retry_after
from neurodesk.sources.transfer import SourceError
from neurodesk.store import ImageRecord

# Given an exact spec, the digest a publisher published for its SIF, or None.
DigestLookup = Callable[[Spec], str | None]


class SifHttpSource:
    kind = "sif-http"

    def __init__(
        self,
        label: str,
        mirrors: list[str],
        insecure: bool,
        settings: HttpSettings,
        publisher_digest: DigestLookup | None = None,
    ) -> None:
        self.label = label
        self.bases = [m if m.endswith("/") else m + "/" for m in mirrors]
        self.insecure = insecure
        self.settings = settings
        self.publisher_digest = publisher_digest
        self._found: dict[str, tuple[int, list[str]]] = {}
        self.last_errors: list[str] = []

    def close(self) -> None:
        pass

    def _head(self, client: httpx.Client, url: str) -> int | None:
        """The file's size at ``url``; None when absent; SourceError when the mirror fails."""
        answer = request(client, "HEAD", url)
        if wait_retry_after(answer.status, answer.headers):
            answer = request(client, "HEAD", url)
        if answer.status in (403, 404):
            return None  # S3 answers 403 for a missing key in a bucket that is not listable
        if answer.status != 200:
            raise SourceError(f"{mirror_name(url)}: HEAD: HTTP {answer.status}")
        length = answer.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) == 0:
            raise SourceError(f"{mirror_name(url)}: HEAD: no file size")
        return int(length)

    def find(self, spec: Spec) -> Available | None:
        name = f"{spec.name}_{spec.version}_{spec.builddate}.simg"
        urls = [base + name for base in self.bases]
        self.last_errors = []

        def ask(url: str) -> tuple[str, int | None]:
            try:
                return url, self._head(client, url)
            except SourceError as exc:
                self.last_errors.append(exc.message)
                return url, None

        # One client for all mirrors (its TLS context is made once), asked in parallel.
        with (
            make_client(self.settings, self.insecure) as client,
            ThreadPoolExecutor(max_workers=max(1, min(8, len(urls)))) as pool,
        ):
            answers = [(u, n) for u, n in pool.map(ask, urls) if n is not None]
        if not answers:
            if self.last_errors and len(self.last_errors) == len(urls):
                raise SourceError(f"no mirror answered ({self.last_errors[-1]})")
            return None
        size, _ = Counter(n for _u, n in answers).most_common(1)[0]
        having = [u for u, n in answers if n == size]  # mirrors disagreeing on size are left out
        where = name.removesuffix(".simg")
        self._found[where] = (size, having)
        return Available(spec.name, spec.version, spec.builddate, where)

    def available(self) -> list[Available]:
        return []  # object storage is not listed: upstream's catalog says what exists

    def fetch(
        self, found: Available, paths: Paths, progress: TransferProgress | None = None
    ) -> ImageRecord:
        size, urls = self._found[found.where]
        expected = None
        if self.publisher_digest is not None:
            expected = self.publisher_digest(Spec(found.name, found.version, found.builddate))
        show = progress or NullProgress()
        show.add(found.where, f"{found.where}.simg ({self.label}, {len(urls)} mirrors)", size)
        dest = download_dir(paths) / f"{found.where}.simg"
        digest, _served = ranged_download(
            urls, size, dest, self.settings, self.insecure, lambda n: show.advance(found.where, n)
        )
        finish(dest, digest, expected)
        return import_sif(
            paths,
            dest,
            found.name,
            found.version,
            found.builddate,
            self.label,
            " ".join(urls),
            digest,
            PUBLISHER if expected else UNVERIFIED,
        )


def _publisher_digest(settings: Config, paths: Paths) -> DigestLookup:
    def lookup(spec: Spec) -> str | None:
        from neurodesk.sources.sif_registry_source import from_config as registry_channel

        for config in settings.channels():
            if config.kind != "sif-registry":
                continue
            channel = registry_channel(config, settings, paths)
            try:
                artifact = channel.artifact(spec)
            except SourceError:
                continue  # that registry is down: try the next, else unverified
            finally:
                channel.close()
            if artifact is not None:
                return artifact.digest
        return None

    return lookup


def from_config(config: SourceConfig, settings: Config, paths: Paths) -> SifHttpSource:
    return SifHttpSource(
        config.name,
        config.mirrors,
        config.insecure,
        settings.http_settings(),
        _publisher_digest(settings, paths),
    )
