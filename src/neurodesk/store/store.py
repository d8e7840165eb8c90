"""The local store: verified blobs by digest, one unpacked root filesystem per image, refs.

Layout under ``$NEURODESK_HOME/store``::

    blobs/sha256/<hex>                 OCI blobs (manifests, configs, layers), verified on entry
    images/<hex>/rootfs/               the unpacked, runnable root filesystem
    images/<hex>/image.json            the image config (Env, Labels, ...)
    files/<key>                        one inode per distinct file, hard-linked into rootfs dirs
    refs/<name>/<version>/<date>.json  name → digest, plus what install needs
    tmp/nd-*                           work in progress; renamed into place when complete
    lock                               writers take it; readers never need it

``<hex>`` is the manifest digest for OCI images and the digest of the file for squashfs/SIF
images. A sandbox directory (an unpacked image as published on CVMFS) is only referenced: its
ref names the directory, which is used in place and never copied or changed.

Every change is prepared under ``tmp/`` and published by one ``rename``, so a crash at any point
leaves either the old state or the new one; ``gc`` removes what a crash left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from filelock import FileLock

from neurodesk.errors import NeurodeskError, NotFoundError
from neurodesk.image.layers import LayerApplier
from neurodesk.image.limits import Budget, UnpackLimits
from neurodesk.image.oci import (
    Descriptor,
    ImageFormatError,
    ImageManifest,
    OCILayout,
    sha256_file,
)
from neurodesk.store.atomic import write_text
from neurodesk.store.dedupe import dedupe_tree, file_key, pool_link
from neurodesk.store.filemanifest import MANIFEST_NAME, write_manifest
from neurodesk.store.layerstate import (
    CHAINS_NAME,
    LayerStates,
    apply_dir_modes,
    chain_ids,
    clone_tree,
    share_new_files,
    write_state,
)
from neurodesk.store.sifmount import unmount_all
from neurodesk.store.tarsplit import TarSplitError, assemble, rebuild
from neurodesk.store.version import version_key

Progress = Callable[[str], None]

# A layer smaller than this (an ENV or LABEL step) keeps its blob and gets no stored state of
# its own: the next import that needs it replays it on the state below, which costs nothing,
# while a state costs a directory tree.
SMALL_LAYER = 1 << 20

# Work directories the store itself creates under tmp/; anything else there belongs to others.
WORK_PREFIX = "nd-"


class UnpackAgain(NeurodeskError):
    """Raised by ``ready`` or a reader given to :meth:`Store.import_layout` when a layer was
    unpacked as it arrived from bytes that are not the verified ones (a corrupt copy dropped
    and fetched again from another mirror): the import unpacks again from the verified blob."""


@dataclass(frozen=True)
class ImageRecord:
    """One named image in the store."""

    name: str
    version: str
    builddate: str
    digest: str
    store_root: Path
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    # Set for images used in place (sandbox directories): the rootfs is not in the store.
    external_rootfs: Path | None = None
    source: str = "oci"

    @property
    def id(self) -> str:
        """The flat container id, ``<name>_<version>_<builddate>``."""
        return f"{self.name}_{self.version}_{self.builddate}"

    @property
    def image_dir(self) -> Path:
        return self.store_root / "images" / self.digest.removeprefix("sha256:")

    @property
    def rootfs(self) -> Path:
        if self.external_rootfs is not None:
            return self.external_rootfs
        return self.image_dir / "rootfs"

    def deploy_env(self, key: str) -> list[str]:
        return [p for p in self.env.get(key, "").split(":") if p]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "builddate": self.builddate,
            "digest": self.digest,
            "env": self.env,
            "labels": self.labels,
            "source": self.source,
        }
        if self.external_rootfs is not None:
            data["rootfs"] = str(self.external_rootfs)
        return data


MAX_NAME_BYTES = 200  # refs/<name>/<version>/<builddate>.json: each a file name (255 bytes)


def _check_name(kind: str, value: str) -> None:
    # Names become directory names under refs/: keep them to one safe path component.
    if not value or value in (".", "..") or "/" in value or value.startswith("."):
        raise ImageFormatError(
            f"invalid image {kind} {value!r}", hint=f"use a plain {kind} without '/'"
        )
    if len(value.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise ImageFormatError(
            f"image {kind} {value[:40]!r}... is longer than {MAX_NAME_BYTES} bytes",
            hint=f"use a shorter {kind}",
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ImageFormatError(
            f"invalid image {kind} {value!r}: control characters are not allowed",
            hint=f"use a plain {kind}",
        )


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root

    # -- paths ---------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def image_dir(self, digest: str) -> Path:
        return self.root / "images" / digest.removeprefix("sha256:")

    @property
    def files_dir(self) -> Path:
        return self.root / "files"

    @property
    def tmp_root(self) -> Path:
        return self.root / "tmp"

    def _ref_path(self, name: str, version: str, builddate: str) -> Path:
        return self.root / "refs" / name / version / f"{builddate}.json"

    def lock(self) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / "lock"))

    def _tmpdir(self) -> Path:
        self.tmp_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=self.tmp_root))
        # mkdtemp makes it 0700; work dirs become image dirs, which every account must be able
        # to read when a site store is shared (wrappers of other users run from it).
        work.chmod(0o755)
        return work

    @contextmanager
    def workdir(self) -> Iterator[Path]:
        """A scratch directory on the store's file system (renames into the store are atomic)."""
        work = self._tmpdir()
        try:
            yield work
        finally:
            _rmtree_writable(work)

    # -- writing -------------------------------------------------------------------------------
    def drop_corrupt_blob(self, digest: str) -> None:
        """Remove a blob whose bytes no longer match its digest (it is fetched again)."""
        with self.lock():
            self.blob_path(digest).unlink(missing_ok=True)

    def _add_blob(self, source: Path, descriptor: Descriptor) -> Path:
        """Copy one blob in, verifying its digest and size while copying.

        A blob already in the store is reused only when it is ``source`` itself (a hard link the
        fetch made after checking it) or still matches its digest; a corrupt one is replaced."""
        final = self.blob_path(descriptor.digest)
        descriptor.hex  # noqa: B018 - validates the digest form before it names a file
        if final.exists():
            try:
                if source.exists() and os.path.samefile(source, final):
                    return final
            except OSError:
                pass
            if final.stat().st_size == descriptor.size and sha256_file(final) == descriptor.digest:
                return final
            final.unlink()  # corrupt: replaced by the verified copy below
        if not source.is_file():
            raise ImageFormatError(
                f"blob {descriptor.digest} is missing from {source.parent}",
                hint="the image is incomplete: fetch, export or build it again",
            )
        final.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        self.tmp_root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=WORK_PREFIX + "blob-", dir=self.tmp_root)
        try:
            with source.open("rb") as src, os.fdopen(fd, "wb") as out:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            actual = "sha256:" + digest.hexdigest()
            if actual != descriptor.digest or size != descriptor.size:
                raise ImageFormatError(
                    f"blob {descriptor.digest} is corrupt (got {actual}, {size} bytes)",
                    hint="fetch or build the image again",
                )
            os.chmod(tmp_name, 0o444)
            os.replace(tmp_name, final)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return final

    def import_layout(
        self,
        layout: OCILayout,
        name: str,
        version: str,
        builddate: str,
        progress: Progress | None = None,
        ref: str | None = None,
        refetch_from: list[str] | None = None,
        ready: Callable[[str], None] | None = None,
        arriving: Callable[[str], IO[bytes] | None] | None = None,
    ) -> ImageRecord:
        """Bring the single image of ``layout`` into the store under ``name/version/builddate``.

        ``refetch_from`` (a registry pull): the caller has verified the layout's blobs against
        their digests and names where each can be fetched again by digest. Layer blobs of
        :data:`SMALL_LAYER` or more are then unpacked straight from the layout and not kept:
        ``refetch/<hex>.json`` records where they come from (publishing fetches them again
        and checks the digest), so the store holds such an image about once, not twice.

        ``ready(digest)``: blocks until the layout's blob ``digest`` is complete and verified
        (or raises); called before each blob is read, so a pull unpacks the first layers while
        later ones still download, into a work directory nothing sees until all is done.
        ``arriving(digest)``: a seekable reader of a blob left in the layout (see
        ``refetch_from``) that blocks until the bytes asked for have arrived, or None: such a
        layer is unpacked while it downloads, and ``ready`` is called once it is read."""
        wait = ready or (lambda _digest: None)
        say = progress or (lambda _message: None)
        for kind, value in (("name", name), ("version", version), ("build date", builddate)):
            _check_name(kind, value)
        manifest = layout.manifest(ref)
        with self.lock():
            say("verifying blobs")
            manifest_blob = layout.root / "blobs" / "sha256" / manifest.digest.split(":")[-1]
            own = Descriptor("manifest", manifest.digest, manifest_blob.stat().st_size)
            held = self.layers_held([d.digest for d in manifest.layers])
            outside: dict[str, Path] = {}  # layer digest -> verified blob left in the layout
            for descriptor in [own, manifest.config, *manifest.layers]:
                source = layout.blob_path(descriptor)
                if descriptor.digest in held and not source.exists():
                    continue  # left out of the export: the store has its state or its blob
                if (
                    refetch_from is not None
                    and descriptor in manifest.layers
                    and descriptor.size >= SMALL_LAYER
                    and not self.blob_path(descriptor.digest).is_file()
                ):
                    descriptor.hex  # noqa: B018 - validates the digest form before it names a file
                    outside[descriptor.digest] = source  # waited for when unpacked
                    continue
                wait(descriptor.digest)
                self._add_blob(source, descriptor)
            self._add_records(layout.root / "tarsplit", manifest)
            record = self._record(name, version, builddate, manifest)
            if not record.image_dir.is_dir():
                shared = refetch_from is not None
                try:
                    self._unpack(manifest, record.image_dir, say, outside, shared, wait, arriving)
                except UnpackAgain as again:
                    say(f"{again.message}: unpacking from the verified copy")
                    self._unpack(manifest, record.image_dir, say, outside, shared, wait)
            for digest in outside:  # before the ref: a named image never lacks its record
                wait(digest)  # (already done when unpacked): every download checked
                self._mark_refetchable(digest, refetch_from or [])
            self._write_ref(record)
        return record

    # -- layer blobs not kept (fetched again by digest when needed) ----------------------------
    def refetch_path(self, digest: str) -> Path:
        return self.root / "refetch" / f"{digest.removeprefix('sha256:')}.json"

    def refetch_sources(self, digest: str) -> list[str]:
        """Where the dropped layer blob ``digest`` can be fetched again (opaque to the store:
        written and read by the sources and publish layers); empty when not recorded."""
        try:
            data = json.loads(self.refetch_path(digest).read_text())
        except (OSError, ValueError):
            return []
        return [str(s) for s in data] if isinstance(data, list) else []

    def _mark_refetchable(self, digest: str, sources: list[str]) -> None:
        """Record that blob ``digest`` is not kept, and where it can be fetched again."""
        known = self.refetch_sources(digest)
        merged = known + [s for s in sources if s not in known]
        if merged != known or not self.refetch_path(digest).is_file():
            write_text(self.refetch_path(digest), json.dumps(merged))

    # -- per-layer state -----------------------------------------------------------------------
    def tarsplit_path(self, digest: str) -> Path:
        return self.root / "tarsplit" / f"{digest.removeprefix('sha256:')}.gz"

    def layers_held(self, digests: list[str]) -> set[str]:
        """The layers (of an image with these layer digests, bottom first) an import needs no
        blob for: those the stored per-layer state covers, and those whose blob is here."""
        start = LayerStates(self.root).longest_prefix(chain_ids(digests))
        count = start.count if start else 0
        return set(digests[:count]) | {d for d in digests[count:] if self.blob_path(d).is_file()}

    def _add_records(self, source: Path, manifest: ImageManifest) -> None:
        """Keep the tar-split records an export brought (they let a layer's blob be dropped
        and rebuilt); a damaged one only means that blob is kept."""
        for descriptor in manifest.layers:
            record = source / f"{descriptor.hex}.gz"
            final = self.tarsplit_path(descriptor.digest)
            if final.is_file() or not record.is_file():
                continue
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=WORK_PREFIX + "ts-", dir=self._tmp_ready())
            try:
                with record.open("rb") as src, os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(src, out)
                os.replace(tmp_name, final)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise

    def _tmp_ready(self) -> Path:
        self.tmp_root.mkdir(parents=True, exist_ok=True)
        return self.tmp_root

    def _rebuildable(self, descriptor: Descriptor, state: Path) -> bool:
        """True when the layer's exact tar comes back from its tar-split record and ``state``
        (the tree right after this layer): then its blob need not be kept."""
        record = self.tarsplit_path(descriptor.digest)
        if not record.is_file():
            return False
        try:
            with open(os.devnull, "wb") as sink:
                digest, size = assemble(record, state, sink)
        except TarSplitError:
            return False
        return digest == descriptor.digest and size == descriptor.size

    @contextmanager
    def layer_blob(self, digest: str) -> Iterator[Path]:
        """A path holding blob ``digest`` while the block runs: the stored blob, or a layer
        blob the store dropped, rebuilt from its tar-split record and the stored state of that
        layer (checked against the digest) into a scratch file removed afterwards, so
        publishing does not bring the blob back into the store for good."""
        final = self.blob_path(digest)
        if final.is_file():
            yield final
            return
        self.tmp_root.mkdir(parents=True, exist_ok=True)
        # Not the store's own nd- prefix: gc leaves this alone while it is fresh.
        scratch = Path(tempfile.mkdtemp(prefix="publish-", dir=self.tmp_root))
        try:
            with self.lock():
                state = self._state_of_layer(digest)
                if state is None or not self.tarsplit_path(digest).is_file():
                    raise NotFoundError(
                        f"the store has neither blob {digest[:19]} nor what rebuilds it",
                        hint="install or build the image again",
                    )
                rebuild(self.tarsplit_path(digest), state, scratch / "blob", digest)
            yield scratch / "blob"
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _state_of_layer(self, digest: str) -> Path | None:
        """The tree right after layer ``digest`` in some stored image."""
        states = LayerStates(self.root)
        for record in self.images():
            manifest_path = self.blob_path(record.digest)
            if record.source != "oci" or not manifest_path.is_file():
                continue
            try:
                layers = [
                    str(d["digest"]) for d in json.loads(manifest_path.read_bytes())["layers"]
                ]
            except (ValueError, KeyError, TypeError):
                continue
            if digest not in layers:
                continue
            chains = chain_ids(layers)
            index = layers.index(digest)
            candidate = states.path(chains[index]) / "rootfs"
            if index == len(layers) - 1:
                candidate = record.rootfs
            if candidate.is_dir():
                return candidate
        return None

    def import_rootfs(
        self,
        digest: str,
        fill: Callable[[Path], dict[str, Any]],
        name: str,
        version: str,
        builddate: str,
        source: str,
        progress: Progress | None = None,
    ) -> ImageRecord:
        """Store an image whose root filesystem ``fill(dir)`` writes (squashfs, SIF, ...).

        ``digest`` names the content (e.g. the sha256 of the squashfs file); ``fill`` populates
        the empty directory it is given and returns the image config (``{"config": {"Env":
        [...], "Labels": {...}}}``).
        """
        say = progress or (lambda _message: None)
        for kind, value in (("name", name), ("version", version), ("build date", builddate)):
            _check_name(kind, value)
        with self.lock():
            image_dir = self.image_dir(digest)
            if not image_dir.is_dir():
                say("unpacking the root filesystem")
                self._make_image_dir(image_dir, fill, say)
            config = json.loads((image_dir / "image.json").read_text())
            env, labels = _env_labels(config)
            record = ImageRecord(
                name, version, builddate, digest, self.root, env, labels, source=source
            )
            self._write_ref(record)
        return record

    def register_sandbox(
        self,
        rootfs: Path,
        name: str,
        version: str,
        builddate: str,
        env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> ImageRecord:
        """Reference an unpacked image directory (CVMFS ``<id>.simg/``) to be used in place."""
        for kind, value in (("name", name), ("version", version), ("build date", builddate)):
            _check_name(kind, value)
        rootfs = rootfs.absolute()
        if not rootfs.is_dir():
            raise NotFoundError(f"sandbox directory {rootfs} does not exist")
        digest = "sha256:" + hashlib.sha256(f"sandbox:{rootfs}".encode()).hexdigest()
        record = ImageRecord(
            name,
            version,
            builddate,
            digest,
            self.root,
            dict(env or {}),
            dict(labels or {}),
            external_rootfs=rootfs,
            source="sandbox",
        )
        with self.lock():
            self._write_ref(record)
        return record

    def verification_path(self, record: ImageRecord) -> Path:
        return self.root / "verified" / f"{record.digest.removeprefix('sha256:')}.json"

    def record_verification(self, record: ImageRecord, check: dict[str, object]) -> None:
        """Remember that (and how) an image used in place was verified at install."""
        write_text(self.verification_path(record), json.dumps(check, indent=2))

    def verification(self, record: ImageRecord) -> dict[str, Any] | None:
        try:
            data = json.loads(self.verification_path(record).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _write_ref(self, record: ImageRecord) -> None:
        write_text(
            self._ref_path(record.name, record.version, record.builddate),
            json.dumps({**record.to_json(), "created": datetime.now(UTC).isoformat()}, indent=2),
        )

    def _record(
        self, name: str, version: str, builddate: str, manifest: ImageManifest
    ) -> ImageRecord:
        return ImageRecord(
            name, version, builddate, manifest.digest, self.root, manifest.env, manifest.labels
        )

    def _unpack(
        self,
        manifest: ImageManifest,
        image_dir: Path,
        say: Progress,
        outside: dict[str, Path] | None = None,
        shared_states_only: bool = False,
        ready: Callable[[str], None] | None = None,
        arriving: Callable[[str], IO[bytes] | None] | None = None,
    ) -> None:
        """Unpack the image's layers, starting from the stored state of its longest prefix of
        layers the store already holds (see :mod:`neurodesk.store.layerstate`): only the
        layers after it are read, and the state after each new layer is kept for the next.

        ``shared_states_only`` (registry pulls): keep the state after a layer only when another
        stored image has the same prefix of layers. A state costs a link per entry of the tree
        (about a tenth of a pulled image's install time); a pulled image's own layers rarely
        serve another image, while a prefix two images share (a common base) will serve more."""
        digests = [d.digest for d in manifest.layers]
        chains = chain_ids(digests)
        states = LayerStates(self.root)
        start = states.longest_prefix(chains)
        count = start.count if start else 0
        new = manifest.layers[count:]
        shared = states.used_chains() if shared_states_only else set()
        reused = f" on the stored state of the first {count}" if count else ""
        say(f"unpacking {len(new)} of {len(chains)} layer(s){reused}")
        work = self._tmpdir()
        try:
            rootfs = work / "rootfs"
            if start is None:
                rootfs.mkdir()
                modes: dict[Path, tuple[int, int]] = {}
                known: dict[int, str] = {}
                hashes: dict[str, str] = {}
            else:
                modes, inodes = clone_tree(start.rootfs, rootfs)
                hashes = dict(start.hashes)
                known = {ino: hashes[rel] for rel, ino in inodes.items() if rel in hashes}
            budget = Budget(
                UnpackLimits.load(self.root.parent / "config.yaml"),
                sum(d.size for d in new),
                f"image {manifest.digest[:19]}",
            )
            applier = LayerApplier(rootfs, budget)
            applier.dir_modes.update(modes)
            made: set[str] = set()  # the pool's subdirectories known to exist

            def share(path: str, st: os.stat_result, sha: str) -> int | None:
                inode, held = pool_link(path, st, file_key(path, st, sha), self.files_dir, made)
                return inode if held else None

            applier.share = share  # each file joins the pool as it is written
            droppable: list[Path] = []
            for index, descriptor in enumerate(new, start=count):
                blob = (outside or {}).get(descriptor.digest)
                stream = arriving(descriptor.digest) if blob is not None and arriving else None
                if stream is not None:
                    try:
                        with stream:  # unpacked as it downloads
                            applier.apply_stream(stream, descriptor.hex)
                    except NeurodeskError:
                        # Unverified bytes that do not unpack: the download's own verdict
                        # (corrupt, or fetched again elsewhere: UnpackAgain) comes first.
                        if ready is not None:
                            ready(descriptor.digest)
                        raise
                    if ready is not None:
                        ready(descriptor.digest)  # verified before anything is kept
                else:
                    if blob is None:
                        blob = self.blob_path(descriptor.digest)
                    elif ready is not None:
                        ready(descriptor.digest)  # downloaded and verified
                    if not blob.is_file():
                        raise ImageFormatError(
                            f"blob {descriptor.digest} is missing from {blob.parent}",
                            hint="the image is incomplete: fetch it again",
                        )
                    applier.apply(blob)
                known.update(applier.shared)  # the walk below has nothing to do for those
                hashes, known = share_new_files(rootfs, self.files_dir, known, applier.hashes)
                applier.hashes.clear()  # the next layer's files only
                applier.shared.clear()
                if descriptor.size < SMALL_LAYER:
                    continue  # blob kept: replaying it on the state below costs nothing
                if self._rebuildable(descriptor, rootfs):
                    droppable.append(self.blob_path(descriptor.digest))
                if shared_states_only and chains[index].removeprefix("sha256:") not in shared:
                    continue  # no other image starts with these layers: no state kept
                if index < len(chains) - 1:
                    self._snapshot(rootfs, chains[index], applier.dir_modes, hashes)
            applier.finish()
            write_text(work / "image.json", json.dumps(manifest.config_json, indent=2))
            write_text(work / CHAINS_NAME, json.dumps(chains))
            write_state(work, hashes)
            write_manifest(rootfs, work / MANIFEST_NAME, known=hashes)
            image_dir.parent.mkdir(parents=True, exist_ok=True)
            work.replace(image_dir)
        except BaseException:
            _rmtree_writable(work)
            raise
        for blob in droppable:  # rebuilt on demand by layer_blob
            blob.unlink(missing_ok=True)

    def _snapshot(
        self, rootfs: Path, chain: str, modes: dict[Path, tuple[int, int]], hashes: dict[str, str]
    ) -> None:
        """Keep the state of ``rootfs`` (being unpacked) as the state after ``chain``."""
        final = LayerStates(self.root).path(chain)
        if final.is_dir():
            return
        work = self._tmpdir()
        try:
            copy = work / "rootfs"
            own, _inodes = clone_tree(rootfs, copy, modes)
            apply_dir_modes(copy, own)
            write_state(work, hashes)
            final.parent.mkdir(parents=True, exist_ok=True)
            work.replace(final)
        except BaseException:
            _rmtree_writable(work)
            raise

    def _make_image_dir(
        self,
        image_dir: Path,
        fill: Callable[[Path], dict[str, Any]],
        say: Progress | None = None,
        known: dict[str, str] | None = None,
    ) -> None:
        """Build ``image_dir`` (rootfs filled by ``fill``, its config, files shared) under tmp/
        and publish it with one rename, so readers never see a half-made image. ``known``
        (filled by ``fill``): file hashes already computed (see ``dedupe_tree``)."""
        work = self._tmpdir()
        try:
            (work / "rootfs").mkdir()
            config = fill(work / "rootfs")
            write_text(work / "image.json", json.dumps(config, indent=2))
            if say:
                say("sharing files already in the store")
            shared = dedupe_tree(work / "rootfs", self.files_dir, known)
            write_manifest(work / "rootfs", work / MANIFEST_NAME, known=shared.hashes)
            image_dir.parent.mkdir(parents=True, exist_ok=True)
            work.replace(image_dir)
        except BaseException:
            _rmtree_writable(work)
            raise

    def remove(self, spec: str) -> list[ImageRecord]:
        """Remove the refs matching ``NAME[/VERSION[/DATE]]`` (all build dates unless given).

        Unpacked images no other ref uses go too; blobs and shared files are left to ``gc``.
        """
        name, _, rest = spec.partition("/")
        version, _, builddate = rest.partition("/")
        with self.lock():
            matching = [
                r
                for r in self.images()
                if r.name == name
                and (not version or r.version == version)
                and (not builddate or r.builddate == builddate)
            ]
            if not matching:
                self.resolve(spec)  # raises the helpful not-found error
            for record in matching:
                path = self._ref_path(record.name, record.version, record.builddate)
                path.unlink(missing_ok=True)
                for parent in (path.parent, path.parent.parent):
                    try:
                        parent.rmdir()
                    except OSError:
                        break
            still_used = {r.digest for r in self.images()}
            for record in matching:
                if record.external_rootfs is None and record.digest not in still_used:
                    self.drop_image_dir(record.image_dir)
        return matching

    def drop_image_dir(self, image_dir: Path) -> None:
        """Remove an unpacked image: first renamed out of sight (atomic), then deleted."""
        if not image_dir.exists():
            return
        unmount_all(image_dir)  # a SIF held in the store may be mounted
        trash = self._tmpdir()
        image_dir.replace(trash / "image")
        _rmtree_writable(trash)

    # -- reading -------------------------------------------------------------------------------
    def _load_ref(self, path: Path) -> ImageRecord:
        data = json.loads(path.read_text())
        external = data.get("rootfs")
        return ImageRecord(
            data["name"],
            data["version"],
            data["builddate"],
            data["digest"],
            self.root,
            dict(data.get("env") or {}),
            dict(data.get("labels") or {}),
            external_rootfs=Path(external) if external else None,
            source=str(data.get("source") or "oci"),
        )

    def images(self) -> list[ImageRecord]:
        refs = sorted((self.root / "refs").glob("*/*/*.json"))
        records = [self._load_ref(p) for p in refs]
        return sorted(records, key=lambda r: (r.name, version_key(r.version), r.builddate))

    def resolve(self, spec: str) -> ImageRecord:
        """``NAME``, ``NAME/VERSION`` or ``NAME/VERSION/BUILDDATE`` → the newest matching image."""
        name, _, rest = spec.partition("/")
        version, _, builddate = rest.partition("/")
        candidates = [r for r in self.images() if r.name == name]
        if not candidates:
            known = sorted({r.name for r in self.images()})
            raise NotFoundError(
                f"no image named '{name}' in the store",
                hint=f"build it with 'neurodesk build {name}'"
                + (f"; images here: {', '.join(known)}" if known else ""),
            )
        matching = [
            r
            for r in candidates
            if (not version or r.version == version) and (not builddate or r.builddate == builddate)
        ]
        if not matching:
            versions = ", ".join(sorted({f"{r.name}/{r.version}" for r in candidates}))
            raise NotFoundError(f"no image '{spec}' in the store", hint=f"available: {versions}")
        return matching[-1]


def _env_labels(config: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    inner = config.get("config") or {}
    env = dict(p.split("=", 1) for p in inner.get("Env") or [] if "=" in p)
    return env, dict(inner.get("Labels") or {})


def _rmtree_writable(path: Path) -> None:
    """rmtree that first makes read-only directories (as images have) writable."""
    for dirpath, dirnames, _files in os.walk(path):
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o700)
    shutil.rmtree(path, ignore_errors=True)
