"""An OCI registry source with one or more mirrors.

Images are named ``<ns>/<name>_<version>:<builddate>`` (ours) or, with ``naming: upstream``,
``<ns>/<name>:<version>_<builddate>`` (upstream's, on quay.io/neurodesk and ghcr.io/neurodesk:
channel 4 of upstream's order).
"""

from __future__ import annotations

from pathlib import Path

from neurodesk.image.oci import Descriptor, ImageFormatError
from neurodesk.paths import Paths
from neurodesk.sources.http import BadAnswerError, parse_object
from neurodesk.sources.naming import BUILDDATE, Available, Spec, newest
from neurodesk.sources.progress import TransferProgress
from neurodesk.sources.pull import parse_manifest, pull_image
from neurodesk.sources.registry import INDEX_TYPES, Registry
from neurodesk.sources.registry_mirrors import RegistryMirrors
from neurodesk.sources.transfer import MissingError, OnBytes, SourceError
from neurodesk.store import ImageRecord


class RegistrySource(RegistryMirrors):
    kind = "registry"

    # -- what is there ---------------------------------------------------------------------------
    def _upstream_versions(self, registry: Registry, spec: Spec) -> list[Available]:
        repo = registry.address.repo(spec.name)
        found = []
        for tag in registry.tags(repo):
            version, sep, builddate = tag.rpartition("_")
            if sep and BUILDDATE.match(builddate):
                found.append(Available(spec.name, version, builddate, f"{repo}:{tag}"))
        return found

    def _versions(self, registry: Registry, spec: Spec) -> list[Available]:
        if self.naming == "upstream":
            return self._upstream_versions(registry, spec)
        if spec.version:
            repos = [registry.address.repo(f"{spec.name}_{spec.version}")]
        else:
            prefix = registry.address.repo(f"{spec.name}_")
            repos = [r for r in registry.catalog() if r.startswith(prefix)]
        found = []
        for repo in repos:
            version = repo[len(registry.address.repo(spec.name)) + 1 :]
            try:
                tags = registry.tags(repo)
            except MissingError:
                continue
            found += [Available(spec.name, version, tag, f"{repo}:{tag}") for tag in tags]
        return found

    def find(self, spec: Spec) -> Available | None:
        try:
            candidates = self.mirrors.attempt(
                lambda r: self._versions(r, spec), f"looking up {spec} in {self.label}"
            )
        except MissingError:
            return None
        dated = [c for c in candidates if BUILDDATE.match(c.builddate)]
        return newest(dated or candidates, spec)

    def available(self) -> list[Available]:
        if self.naming == "upstream":
            return []  # upstream's registries are listed by its catalog, not by /v2/_catalog

        def listing(registry: Registry) -> list[Available]:
            out = []
            for repo in registry.catalog():
                prefix = registry.address.repo("")
                if not repo.startswith(prefix):
                    continue
                name, sep, version = repo[len(prefix) :].rpartition("_")
                if sep and "/" not in name:
                    for tag in registry.tags(repo):
                        out.append(Available(name, version, tag, f"{repo}:{tag}"))
            return out

        return self.mirrors.attempt(listing, f"listing {self.label}")

    # -- fetching --------------------------------------------------------------------------------
    def _manifest(self, registry: Registry, repo: str, tag: str) -> tuple[bytes, str, str]:
        raw, media_type, digest = registry.manifest(repo, tag)
        what = f"manifest {repo}:{tag}"
        body = parse_object(raw, str(registry), what)
        if media_type in INDEX_TYPES or "manifests" in body:
            entries = body.get("manifests")
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise BadAnswerError(f"{registry}: {what}: 'manifests' is not a list of objects")

            def platform(entry: dict[str, object], key: str) -> object:
                found = entry.get("platform")
                return found.get(key) if isinstance(found, dict) else None

            chosen = [
                e
                for e in entries
                if platform(e, "architecture") in (None, "amd64")
                and platform(e, "os") in (None, "linux")
                and isinstance(e.get("digest"), str)
            ]
            if not chosen:
                raise SourceError(f"{repo}:{tag} has no linux/amd64 image")
            raw, media_type, digest = registry.manifest(repo, str(chosen[0]["digest"]))
            body = parse_object(raw, str(registry), what)
        try:
            parse_manifest(raw)
        except ImageFormatError as exc:
            raise BadAnswerError(f"{registry}: {what}: {exc.message}") from None
        return raw, media_type, digest

    def fetch(
        self, found: Available, paths: Paths, progress: TransferProgress | None = None
    ) -> ImageRecord:
        repo, _, tag = found.where.rpartition(":")
        raw, media_type, digest = self.mirrors.attempt(
            lambda r: self._manifest(r, repo, tag), f"manifest of {found.where}"
        )

        def get_blob(descriptor: Descriptor, dest: Path, on_bytes: OnBytes) -> None:
            self.mirrors.attempt(
                lambda r: r.download_blob(repo, descriptor.digest, descriptor.size, dest, on_bytes),
                f"blob {descriptor.digest[:19]} of {found.where}",
            )

        return pull_image(
            paths,
            found.name,
            found.version,
            found.builddate,
            raw,
            digest,
            media_type,
            get_blob,
            progress,
            refetch_from=[f"{r.address.base}/v2/{repo}" for r in self.registries],
        )
