"""Channel 2 of upstream's order: SIF files published as referrer artifacts in registries.

Mirrors are registries holding the same images under upstream's names
(``<ns>/<name>:<version>_<date>``, e.g. quay.io/neurodesk then ghcr.io/neurodesk). The SIF blob
is downloaded by digest, so every byte is checked against what the publisher published.
"""

from __future__ import annotations

from neurodesk.paths import Paths
from neurodesk.sources.config import Config, SourceConfig
from neurodesk.sources.mirrors import MirrorSet
from neurodesk.sources.naming import Available, Spec
from neurodesk.sources.origins import PUBLISHER
from neurodesk.sources.progress import NullProgress, TransferProgress
from neurodesk.sources.referrers import SifArtifact, find_sif
from neurodesk.sources.registry import Registry, RegistryAddress
from neurodesk.sources.sif_store import download_dir, import_sif
from neurodesk.sources.transfer import MissingError
from neurodesk.store import ImageRecord


def upstream_ref(registry: Registry, spec: Spec) -> tuple[str, str]:
    """``(repo, tag)`` of an upstream-named image: ``<ns>/<name>``, ``<version>_<date>``."""
    return registry.address.repo(spec.name), f"{spec.version}_{spec.builddate}"


class SifRegistrySource:
    kind = "sif-registry"

    def __init__(
        self, label: str, mirrors: list[str], insecure: bool, timeout: float, retries: int
    ) -> None:
        self.label = label
        self.registries = [Registry(RegistryAddress.parse(m, insecure), timeout) for m in mirrors]
        self.mirrors: MirrorSet[Registry] = MirrorSet(
            self.registries, lambda r: r.ping(), retries=retries
        )
        self._found: dict[str, SifArtifact] = {}

    def close(self) -> None:
        for registry in self.registries:
            registry.close()

    def artifact(self, spec: Spec) -> SifArtifact | None:
        """The SIF artifact of an exact ``spec``; None when no mirror has one."""

        def lookup(registry: Registry) -> SifArtifact:
            repo, tag = upstream_ref(registry, spec)
            return find_sif(registry, repo, tag)

        try:
            return self.mirrors.attempt(lookup, f"SIF artifact of {spec} in {self.label}")
        except MissingError:
            return None

    def find(self, spec: Spec) -> Available | None:
        found = self.artifact(spec)
        if found is None:
            return None
        where = f"{found.repo}@{found.digest}"
        self._found[where] = found
        return Available(spec.name, spec.version, spec.builddate, where)

    def available(self) -> list[Available]:
        return []  # served from upstream's catalog, not listed

    def fetch(
        self, found: Available, paths: Paths, progress: TransferProgress | None = None
    ) -> ImageRecord:
        artifact = self._found[found.where]
        show = progress or NullProgress()
        key = artifact.digest
        show.add(key, f"{found.id}.sif ({self.label})", artifact.size)
        dest = download_dir(paths) / f"{artifact.digest.removeprefix('sha256:')}.sif"

        def get(registry: Registry) -> str:
            registry.download_blob(
                artifact.repo,
                artifact.digest,
                artifact.size,
                dest,
                lambda n: show.advance(key, n),
            )
            return f"{registry.address}/{artifact.repo}@{artifact.digest}"

        url = self.mirrors.attempt(get, f"SIF {artifact.digest[:19]} of {found.id}")
        return import_sif(
            paths,
            dest,
            found.name,
            found.version,
            found.builddate,
            self.label,
            url,
            artifact.digest,
            PUBLISHER,
        )


def from_config(config: SourceConfig, settings: Config, paths: Paths) -> SifRegistrySource:
    return SifRegistrySource(
        config.name, config.mirrors, config.insecure, settings.timeout, settings.retries
    )
