"""Channel 2 of upstream's order: SIF files published as referrer artifacts in registries.

Mirrors are registries holding the same images under upstream's names
(``<ns>/<name>:<version>_<date>``, e.g. quay.io/neurodesk then ghcr.io/neurodesk). The SIF blob
is downloaded by digest, so every byte is checked against what the publisher published.
"""

from __future__ import annotations

from neurodesk.paths import Paths
from neurodesk.sources.http import HttpSettings
from neurodesk.sources.naming import BUILDDATE, Available, Spec
from neurodesk.sources.origins import PUBLISHER
from neurodesk.sources.progress import NullProgress, TransferProgress
from neurodesk.sources.referrers import SifArtifact, find_sif
from neurodesk.sources.registry import Registry
from neurodesk.sources.registry_mirrors import RegistryMirrors
from neurodesk.sources.sif_store import download_dir, import_sif
from neurodesk.sources.transfer import MissingError
from neurodesk.store import ImageRecord


def image_ref(registry: Registry, spec: Spec, naming: str) -> tuple[str, str]:
    """``(repo, tag)`` of an exact image: upstream's ``<ns>/<name>:<version>_<date>`` or ours
    ``<ns>/<name>_<version>:<date>`` (what ``neurodesk publish --sif`` writes)."""
    if naming == "upstream":
        return registry.address.repo(spec.name), f"{spec.version}_{spec.builddate}"
    return registry.address.repo(f"{spec.name}_{spec.version}"), spec.builddate


class SifRegistrySource(RegistryMirrors):
    kind = "sif-registry"

    default_naming = "upstream"

    def __init__(
        self,
        label: str,
        mirrors: list[str],
        insecure: bool,
        timeout: float,
        retries: int,
        settings: HttpSettings | None = None,
        naming: str | None = None,
    ) -> None:
        super().__init__(label, mirrors, insecure, timeout, retries, settings, naming)
        self._found: dict[str, SifArtifact] = {}
        self._dates: dict[str, str] = {}

    def artifact(self, spec: Spec) -> SifArtifact | None:
        """The SIF artifact of an exact ``spec``; None when no mirror has one."""

        def lookup(registry: Registry) -> SifArtifact:
            exact = spec
            if not spec.builddate:  # ours only: the newest build of that version
                repo = registry.address.repo(f"{spec.name}_{spec.version}")
                dates = [t for t in registry.tags(repo) if BUILDDATE.match(t)]
                if not dates:
                    raise MissingError(f"{repo} has no dated builds")
                exact = Spec(spec.name, spec.version, max(dates))
            repo, tag = image_ref(registry, exact, self.naming)
            found = find_sif(registry, repo, tag)
            self._dates[str(spec)] = exact.builddate
            return found

        try:
            return self.mirrors.attempt(lookup, f"SIF artifact of {spec} in {self.label}")
        except MissingError:
            return None

    def find(self, spec: Spec) -> Available | None:
        if not spec.version:
            return None  # a registry cannot be searched by name alone: name a version
        found = self.artifact(spec)
        if found is None:
            return None
        where = f"{found.repo}@{found.digest}"
        self._found[where] = found
        builddate = spec.builddate or self._dates.get(str(spec), "")
        return Available(spec.name, spec.version, builddate, where)

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


from_config = SifRegistrySource.from_config
