"""``neurodesk mirror SRC DST``: replicate what SRC has and DST lacks, verified (a Stratum 1).

* registry → registry: missing blobs are downloaded (digest-checked) and uploaded, then the
  manifest is pushed unchanged, so every image keeps its digest;
* tree → tree: each missing container is published into DST by the same transaction as
  ``publish --tree``, then its sandbox is compared file by file with the source's;
* registry → tree: each missing image is fetched into the local store (verified), then
  published into the tree.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from neurodesk.publish.tree import publish_tree
from neurodesk.sources.config import load_config
from neurodesk.sources.naming import Available, Spec
from neurodesk.sources.progress import NullProgress, TransferProgress
from neurodesk.sources.pull import parse_manifest
from neurodesk.sources.registry import Registry, RegistryAddress
from neurodesk.sources.registry_source import RegistrySource
from neurodesk.sources.transfer import MissingError, SourceError
from neurodesk.sources.tree import Tree
from neurodesk.store import ImageRecord
from neurodesk.store.verify import verify_container

Say = Callable[[str], None]


@dataclass(frozen=True)
class MirrorReport:
    copied: list[str]
    present: list[str]

    def to_json(self) -> dict[str, list[str]]:
        return {"copied": self.copied, "already_present": self.present}


def is_tree_location(text: str) -> bool:
    return text.startswith(("/", ".", "file://")) or Path(text).is_dir()


def _wanted(available: list[Available], names: list[str]) -> list[Available]:
    if not names:
        return available
    specs = [Spec.parse(n) for n in names]
    return [a for a in available if any(s.matches(a.name, a.version, a.builddate) for s in specs)]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _entries(root: Path) -> Iterator[tuple[str, str]]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                yield rel, f"link:{os.readlink(path)}"
            elif stat.S_ISREG(info.st_mode):
                yield rel, f"file:{info.st_size}:{_file_digest(path)}"
            elif stat.S_ISDIR(info.st_mode):
                yield rel, "dir"


def verify_same_files(src: Path, dst: Path) -> None:
    """Every file, link and directory of ``src`` is in ``dst`` with the same content."""
    theirs = dict(_entries(src))
    ours = dict(_entries(dst))
    if theirs != ours:
        differing = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
        raise NeurodeskError(
            f"the copy of {src} differs from its source in {len(differing)} path(s), "
            f"e.g. {differing[0]}",
            hint="run the mirror again; the source may have changed while being copied",
        )


def _tree_record(tree: Tree, item: Available) -> ImageRecord:
    meta = tree.metadata(item.where)
    return ImageRecord(
        item.name,
        item.version,
        item.builddate,
        str(meta.get("digest") or ""),
        tree.root,
        dict(meta.get("env") or {}),
        dict(meta.get("labels") or {}),
        external_rootfs=tree.sandbox(item.where),
        source="sandbox",
    )


def mirror_tree_to_tree(src: Path, dst: Path, names: list[str], say: Say) -> MirrorReport:
    source, target = Tree(src.absolute()), Tree(dst.absolute())
    if not source.is_tree():
        raise NeurodeskError(f"{src} is not a CVMFS-layout tree (no containers/ directory)")
    have = {a.where for a in target.available()}
    copied, present = [], []
    for item in _wanted(source.available(), names):
        if item.where in have:
            present.append(item.id)
            continue
        say(f"copying {item.id}")
        damaged = verify_container(source.container_dir(item.where)).problems
        if damaged:  # never spread a damaged copy: it is checked against its files.json first
            raise NeurodeskError(
                f"{item.id} in {src} differs from its files.json in {len(damaged)} file(s), "
                f"e.g. {damaged[0]}",
                hint=f"publish {item.name} to {src} again, or mirror from another copy",
            )
        result = publish_tree(_tree_record(source, item), target.root)
        verify_same_files(source.sandbox(item.where), result.container_dir / f"{item.id}.simg")
        copied.append(item.id)
    return MirrorReport(copied, present)


def _advance(progress: TransferProgress, key: str) -> Callable[[int], None]:
    return lambda n: progress.advance(key, n)


def _registry_images(registry: Registry, names: list[str]) -> list[Available]:
    prefix = registry.address.repo("")
    found = []
    for repo in registry.catalog():
        if not repo.startswith(prefix):
            continue
        name, sep, version = repo[len(prefix) :].rpartition("_")
        if not sep:
            continue
        for tag in registry.tags(repo):
            found.append(Available(name, version, tag, f"{repo}:{tag}"))
    return _wanted(found, names)


def mirror_registry_to_registry(
    src: str,
    dst: str,
    names: list[str],
    paths: Paths,
    insecure: bool,
    say: Say,
    progress: TransferProgress,
) -> MirrorReport:
    settings = load_config(paths.config_file)
    http = settings.http_settings()
    source = Registry(RegistryAddress.parse(src, insecure), settings.timeout, http)
    target = Registry(RegistryAddress.parse(dst, insecure), settings.timeout, http)
    work = paths.cache / "mirror"
    copied, present = [], []
    try:
        for item in _registry_images(source, names):
            repo, _, tag = item.where.rpartition(":")
            raw, media_type, digest = source.manifest(repo, tag)
            dst_repo = target.address.repo(f"{item.name}_{item.version}")
            try:
                if target.manifest(dst_repo, tag)[2] == digest:
                    present.append(item.id)
                    continue
            except MissingError:
                pass
            say(f"copying {item.id}")
            config, layers = parse_manifest(raw)
            for blob in (config, *layers):
                if target.blob_exists(dst_repo, blob.digest):
                    continue
                local = work / blob.hex
                progress.add(blob.digest, blob.hex[:12], blob.size)
                source.download_blob(
                    repo, blob.digest, blob.size, local, _advance(progress, blob.digest)
                )
                target.upload_blob(dst_repo, blob.digest, local)
                local.unlink()
            if target.put_manifest(dst_repo, tag, raw, media_type) != digest:
                raise SourceError(f"{dst} changed the digest of {item.id}")
            if target.manifest(dst_repo, tag)[2] != digest:  # read back before reporting it
                raise SourceError(f"{dst}: {item.id} does not read back as {digest}")
            copied.append(item.id)
    finally:
        source.close()
        target.close()
        shutil.rmtree(work, ignore_errors=True)
    return MirrorReport(copied, present)


def mirror_registry_to_tree(
    src: str,
    dst: Path,
    names: list[str],
    paths: Paths,
    insecure: bool,
    say: Say,
    progress: TransferProgress,
) -> MirrorReport:
    settings = load_config(paths.config_file)
    source = RegistrySource(
        src, [src], insecure, settings.timeout, settings.retries, settings.http_settings()
    )
    target = Tree(dst.absolute())
    have = {a.where for a in target.available()}
    copied, present = [], []
    try:
        for item in _wanted(source.available(), names):
            if item.id in have:
                present.append(item.id)
                continue
            say(f"copying {item.id}")
            record = source.fetch(item, paths, progress)
            publish_tree(record, target.root)
            copied.append(item.id)
    finally:
        source.close()
    return MirrorReport(copied, present)


def mirror(
    src: str,
    dst: str,
    names: list[str],
    paths: Paths,
    insecure: bool = False,
    say: Say | None = None,
    progress: TransferProgress | None = None,
) -> MirrorReport:
    say = say or (lambda _m: None)
    progress = progress or NullProgress()
    src_tree, dst_tree = is_tree_location(src), is_tree_location(dst)
    if src_tree and dst_tree:
        return mirror_tree_to_tree(Path(src), Path(dst), names, say)
    if not src_tree and not dst_tree:
        return mirror_registry_to_registry(src, dst, names, paths, insecure, say, progress)
    if not src_tree and dst_tree:
        return mirror_registry_to_tree(src, Path(dst), names, paths, insecure, say, progress)
    raise NeurodeskError(
        "mirroring a tree into a registry is not supported",
        hint="publish from the store instead: neurodesk publish NAME --registry HOST/NS",
    )
