"""Making a lock file: which tools (named, installed or loaded) and where each can be had.

The source of each image is found by asking the configured sources whether they serve that very
digest (a registry's manifest for ``<ns>/<name>_<version>:<builddate>``, a CVMFS-layout tree
holding the sandbox the image is used from), then by what this machine remembers
(:mod:`neurodesk.repro.reference`); an image found nowhere is locked as ``store`` (built here:
publish it somewhere, then lock again, for others to sync it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from neurodesk.errors import NeurodeskError, NotFoundError
from neurodesk.paths import Paths
from neurodesk.repro.lockfile import LockedSource, LockedTool, LockFile
from neurodesk.repro.reference import (
    Reference,
    catalog_reference,
    known_references,
    registry_reference,
    remember_reference,
)
from neurodesk.sources.config import SourceConfig, load_config
from neurodesk.sources.registry import INDEX_TYPES, Registry, RegistryAddress
from neurodesk.store import ImageRecord, Store

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Selected:
    """An image chosen for the lock, and why (``named``, ``installed`` or ``loaded``)."""

    spec: str
    why: str


def _install_manifest(bin_dir: Path) -> dict[str, str] | None:
    try:
        data = json.loads((bin_dir.parent / "install.json").read_text())
        image = data["image"]
        return {k: str(image[k]) for k in ("name", "version", "builddate")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def installed_or_loaded(paths: Paths, path_env: str | None = None) -> list[Selected]:
    """Images installed under the default prefix, and those whose wrappers are on ``PATH``
    (loaded with ``module load`` or ``. activate``, from any prefix)."""
    found: dict[str, Selected] = {}
    for directory in (path_env if path_env is not None else os.environ.get("PATH", "")).split(":"):
        bin_dir = Path(directory)
        if bin_dir.name == "bin" and bin_dir.parent.parent.name == "containers":
            image = _install_manifest(bin_dir)
            if image:
                spec = f"{image['name']}/{image['version']}/{image['builddate']}"
                found.setdefault(spec, Selected(spec, "loaded"))
    for manifest in sorted((paths.installs / "containers").glob("*/install.json")):
        image = _install_manifest(manifest.parent / "bin")
        if image:
            spec = f"{image['name']}/{image['version']}/{image['builddate']}"
            found.setdefault(spec, Selected(spec, "installed"))
    return list(found.values())


def _manifest_digests(registry: Registry, repo: str, tag: str) -> set[str]:
    """The digest a tag names, plus those of the images of an index it names."""
    raw, media_type, digest = registry.manifest(repo, tag)
    digests = {digest}
    data = json.loads(raw)
    if media_type in INDEX_TYPES or "manifests" in data:
        digests |= {str(e.get("digest")) for e in data.get("manifests") or []}
    return digests


def _ask_registry(config: SourceConfig, record: ImageRecord, timeout: float) -> str | None:
    for mirror in config.mirrors:
        try:
            address = RegistryAddress.parse(mirror, config.insecure)
            registry = Registry(address, timeout)
        except NeurodeskError:
            continue
        try:
            repo = address.repo(f"{record.name}_{record.version}")
            if record.digest in _manifest_digests(registry, repo, record.builddate):
                return registry_reference(
                    str(address), record.name, record.version, record.builddate, record.digest
                )
        except (NeurodeskError, httpx.HTTPError, ValueError, OSError):
            continue
        finally:
            registry.close()
    return None


def find_source(
    paths: Paths, record: ImageRecord, ask_sources: bool = True, warn: Warn | None = None
) -> tuple[LockedSource, str]:
    """Where ``record`` (that exact digest) can be had, and its resolvable reference."""
    settings = load_config(paths.config_file)
    if ask_sources:
        for config in settings.ordered():
            if config.kind == "tree" and record.external_rootfs is not None:
                for mirror in config.mirrors:
                    containers = Path(mirror.removeprefix("file://")) / "containers"
                    if record.external_rootfs.is_relative_to(containers):
                        tree = LockedSource(kind="tree", location=mirror, name=config.name)
                        return tree, catalog_reference(record.id, record.digest)
            if config.kind == "registry":
                served = _ask_registry(config, record, settings.timeout)
                if served:
                    remember_reference(paths, served)
                    location = Reference.parse(served).location
                    registry = LockedSource(kind="registry", location=location, name=config.name)
                    return registry, served
    for reference in known_references(paths, record.digest):
        location = Reference.parse(reference).location
        named = next((c.name for c in settings.sources if location in c.mirrors), "")
        return LockedSource(kind="registry", location=location, name=named), reference
    if warn:
        warn(
            f"{record.id} is in no configured source: locked as 'store' "
            "(publish it to a registry and lock again so others can sync it)"
        )
    return LockedSource(kind="store"), catalog_reference(record.id, record.digest)


def lock_images(
    paths: Paths,
    specs: Iterable[str],
    ask_sources: bool = True,
    warn: Warn | None = None,
) -> LockFile:
    """A lock file of the images ``specs`` (``NAME[/VERSION[/DATE]]``) from the store."""
    store = Store(paths.store)
    tools: dict[str, LockedTool] = {}
    for spec in specs:
        record = store.resolve(spec)
        if record.id in tools:
            continue
        source, reference = find_source(paths, record, ask_sources, warn)
        tools[record.id] = LockedTool(
            name=record.name,
            version=record.version,
            builddate=record.builddate,
            id=record.id,
            digest=record.digest,
            reference=reference,
            source=source,
        )
    if not tools:
        raise NotFoundError(
            "nothing to lock: no tool is installed or loaded",
            hint="name the tools: neurodesk lock NAME NAME/VERSION ...",
        )
    return LockFile.new(list(tools.values()))
