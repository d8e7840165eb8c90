"""A CVMFS-layout tree as a source: images are used in place, never copied.

Trees we publish carry a per-file manifest (``files.json`` beside ``image.json``); a container is
checked against it once, when it is installed, and the check is recorded in the store (``neurodesk
verify`` checks again). A damaged copy is refused with the files that differ, and another mirror
is tried.

Mirrors of a tree are directories (e.g. several CVMFS repositories or NFS exports of the same
content); the first one that is reachable and holds the image wins. Reading a tree needs no
network, so this source works offline whenever the file system is mounted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from neurodesk.image.oci import ImageFormatError, sha256_file
from neurodesk.paths import Paths
from neurodesk.sources.mirrors import MirrorSet
from neurodesk.sources.naming import Available, Spec
from neurodesk.sources.progress import TransferProgress
from neurodesk.sources.transfer import CorruptBlobError, MissingError, TransientError
from neurodesk.sources.tree import Tree
from neurodesk.store import ImageRecord, Store
from neurodesk.store.filemanifest import MANIFEST_NAME, compare, load_manifest


def _probe(tree: Tree) -> None:
    try:
        if not tree.is_tree():
            raise MissingError(f"{tree.root} is not a CVMFS-layout tree (no containers/)")
    except OSError as exc:  # a hung or unmounted network file system
        raise TransientError(f"{tree.root}: {exc}") from None


class TreeSource:
    kind = "tree"

    def __init__(self, label: str, mirrors: list[str]) -> None:
        self.label = label
        self.trees = [Tree(Path(m.removeprefix("file://"))) for m in mirrors]
        self.mirrors: MirrorSet[Tree] = MirrorSet(
            self.trees, _probe, retries=1, label=lambda t: str(t.root)
        )

    def close(self) -> None:
        pass

    def _verified_tree(self, found: Available) -> tuple[Tree, dict[str, object]]:
        """The first mirror whose copy matches its per-file manifest, with the check's record."""
        failures: list[str] = []
        for tree in self.mirrors.ordered():
            if not tree.sandbox(found.where).is_dir():
                continue
            container = tree.container_dir(found.where)
            manifest = container / MANIFEST_NAME
            if not manifest.is_file():  # a tree not written by neurodesk (upstream CVMFS)
                return tree, {"container": str(container), "manifest": None}
            try:
                problems = compare(container, load_manifest(manifest), tree.sif_names(found.where))
            except ImageFormatError as exc:
                problems = [exc.message]
            except OSError as exc:
                problems = [f"unreadable: {exc}"]
            if not problems:
                return tree, {
                    "container": str(container),
                    "manifest": sha256_file(manifest),
                    "checked": datetime.now(UTC).isoformat(),
                }
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            failures.append(
                f"{tree.root}: {len(problems)} file(s) differ from the manifest: "
                f"{'; '.join(problems[:3])}{more}"
            )
        if failures:
            raise CorruptBlobError(
                f"{found.where} is damaged on every mirror: {' | '.join(failures)}",
                hint=f"'neurodesk verify --tree DIR' lists every file; publish {found.name} again",
            )
        raise MissingError(f"{found.where} vanished from {self.label}")

    def find(self, spec: Spec) -> Available | None:
        def lookup(tree: Tree) -> Available:
            _probe(tree)
            hit = tree.find(spec)
            if hit is None:
                raise MissingError(f"{spec} is not in {tree.root}")
            return hit

        try:
            return self.mirrors.attempt(lookup, f"looking up {spec} in {self.label}")
        except MissingError:
            return None

    def available(self) -> list[Available]:
        def listing(tree: Tree) -> list[Available]:
            _probe(tree)
            return tree.available()

        return self.mirrors.attempt(listing, self.label)

    def fetch(
        self, found: Available, paths: Paths, progress: TransferProgress | None = None
    ) -> ImageRecord:
        tree, check = self._verified_tree(found)
        meta = tree.metadata(found.where)
        env_json, labels_json = meta.get("env"), meta.get("labels")
        env: dict[str, str] = (
            {str(k): str(v) for k, v in env_json.items()} if isinstance(env_json, dict) else {}
        )
        labels = (
            {str(k): str(v) for k, v in labels_json.items()}
            if isinstance(labels_json, dict)
            else {}
        )
        if not env:
            env = _env_from_sandbox(tree.sandbox(found.where))
        store = Store(paths.store)
        record = store.register_sandbox(
            tree.sandbox(found.where),
            found.name,
            found.version,
            found.builddate,
            env,
            labels,
        )
        store.record_verification(record, check)  # verified once, here; 'neurodesk verify' again
        return record


def _strings(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _env_from_sandbox(sandbox: Path) -> dict[str, str]:
    """Upstream sandboxes keep the image environment in Singularity's env scripts."""
    env: dict[str, str] = {}
    for script in sorted((sandbox / ".singularity.d" / "env").glob("*.sh")):
        for line in script.read_text(errors="replace").splitlines():
            line = line.strip().removeprefix("export ")
            key, sep, value = line.partition("=")
            if sep and key.isidentifier() and key.startswith(("DEPLOY_", "PATH")):
                env[key] = value.strip("\"'")
    return env
