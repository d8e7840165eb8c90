"""Applying a lock file: the exact images it names, in the local store, digest-verified.

Each tool is looked for in the store first (same name, version, build date *and* digest), then
pulled **by digest** from the registry its reference names (so a tag moved since does not
matter), then fetched by name from the source the lock names (a configured source of that
name, else its location) and from the configured sources. A fetched image whose digest
differs from the lock's is taken out of the store again and the sync fails: the locked digest
can no longer be had.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from neurodesk.errors import NeurodeskError, NotFoundError
from neurodesk.image.oci import Descriptor
from neurodesk.paths import Paths
from neurodesk.repro.lockfile import LockedTool, LockFile
from neurodesk.repro.reference import Reference, remember_reference
from neurodesk.sources.config import load_config
from neurodesk.sources.fetch import fetch_image
from neurodesk.sources.progress import TransferProgress
from neurodesk.sources.pull import pull_image
from neurodesk.sources.registry import Registry, RegistryAddress
from neurodesk.sources.transfer import OnBytes
from neurodesk.store import ImageRecord, Store


class DigestMismatchError(NeurodeskError):
    """The lock's digest cannot be had: the source serves something else under that name."""

    exit_code = 6


@dataclass(frozen=True)
class Synced:
    tool: LockedTool
    how: str  # "present" or "fetched from <source>"


Say = Callable[[str], None]


def _in_store(store: Store, tool: LockedTool) -> bool:
    try:
        return store.resolve(tool.spec).digest == tool.digest
    except NotFoundError:
        return False


def _candidates(paths: Paths, tool: LockedTool, override: str | None) -> list[str | None]:
    """Sources to try, in order: --from alone; else the lock's (by configured name, else its
    location), then all configured ones."""
    if override:
        return [override]
    settings = load_config(paths.config_file)
    out: list[str | None] = []
    if tool.source.name and settings.named(tool.source.name) is not None:
        out.append(tool.source.name)
    elif tool.source.location and tool.source.kind != "store":
        out.append(tool.source.location)
    out.append(None)
    return out


def _insecure_for(paths: Paths, location: str, insecure: bool) -> bool:
    settings = load_config(paths.config_file)
    return insecure or any(
        c.insecure for c in settings.sources if c.kind == "registry" and location in c.mirrors
    )


def pull_by_digest(
    paths: Paths, tool: LockedTool, insecure: bool, progress: TransferProgress | None
) -> ImageRecord | None:
    """The locked manifest itself from the lock's registry, by digest (a tag that moved since
    does not matter); None when the lock names no registry or the registry lacks the digest."""
    reference = Reference.parse(tool.reference)
    if not reference.location:
        return None
    try:
        address = RegistryAddress.parse(
            reference.location, _insecure_for(paths, reference.location, insecure)
        )
    except NeurodeskError:
        return None
    registry = Registry(address, load_config(paths.config_file).timeout)
    repo = address.repo(reference.repo)
    try:
        try:
            raw, media_type, digest = registry.manifest(repo, tool.digest)
        except NeurodeskError:
            return None  # not there (or unreachable): the other sources are tried next

        def get_blob(descriptor: Descriptor, dest: Path, on_bytes: OnBytes) -> None:
            registry.download_blob(repo, descriptor.digest, descriptor.size, dest, on_bytes)

        return pull_image(
            paths, tool.name, tool.version, tool.builddate, raw, digest, media_type, get_blob,
            progress,
        )  # fmt: skip
    finally:
        registry.close()


def sync_tool(
    paths: Paths,
    tool: LockedTool,
    insecure: bool = False,
    progress: TransferProgress | None = None,
    source: str | None = None,
) -> Synced:
    store = Store(paths.store)
    if _in_store(store, tool):
        return Synced(tool, "present")
    existing = {(r.name, r.version, r.builddate) for r in store.images()}
    if (tool.name, tool.version, tool.builddate) in existing:
        held = store.resolve(tool.spec)
        raise DigestMismatchError(
            f"{tool.id}: the store holds {held.digest}, the lock wants {tool.digest}",
            hint=f"remove it (neurodesk rm {tool.spec}) and sync again",
        )
    if source is None:
        pulled = pull_by_digest(paths, tool, insecure, progress)
        if pulled is not None and pulled.digest == tool.digest:
            remember_reference(paths, tool.reference)
            return Synced(
                tool, f"fetched by digest from {Reference.parse(tool.reference).location}"
            )
    problems: list[str] = []
    for candidate in _candidates(paths, tool, source):
        label = candidate or "the configured sources"
        try:
            record = fetch_image(tool.spec, paths, candidate, insecure, progress)
        except NeurodeskError as exc:
            problems.append(f"{label}: {exc.message}")
            continue
        if record.digest != tool.digest:
            store.remove(tool.spec)  # nothing half-done: the wrong image does not stay
            raise DigestMismatchError(
                f"{tool.id}: {label} serves {record.digest}, the lock wants {tool.digest}",
                hint="that digest can no longer be had there; find a source that keeps it",
            )
        if tool.source.kind == "registry" and Reference.parse(tool.reference).location:
            remember_reference(paths, tool.reference)
        return Synced(tool, f"fetched from {label}")
    raise NotFoundError(
        f"{tool.id}@{tool.digest} cannot be had: " + "; ".join(problems),
        hint="configure a source that has it in $NEURODESK_HOME/config.yaml or name one "
        "with --from",
    )


def sync_lock(
    paths: Paths,
    lock: LockFile,
    insecure: bool = False,
    progress: TransferProgress | None = None,
    say: Say | None = None,
    source: str | None = None,
) -> list[Synced]:
    done = []
    for tool in lock.tools:
        result = sync_tool(paths, tool, insecure, progress, source)
        if say:
            say(f"{tool.id}: {result.how}")
        done.append(result)
    return done
