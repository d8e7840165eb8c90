"""A CVMFS-layout tree as a source: images are used in place, never copied.

Mirrors of a tree are directories (e.g. several CVMFS repositories or NFS exports of the same
content); the first one that is reachable and holds the image wins. Reading a tree needs no
network, so this source works offline whenever the file system is mounted.
"""

from __future__ import annotations

from pathlib import Path

from neurodesk.paths import Paths
from neurodesk.sources.mirrors import MirrorSet
from neurodesk.sources.naming import Available, Spec
from neurodesk.sources.progress import TransferProgress
from neurodesk.sources.transfer import MissingError, TransientError
from neurodesk.sources.tree import Tree
from neurodesk.store import ImageRecord, Store


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

    def _tree_with(self, found: Available) -> Tree:
        for tree in self.mirrors.ordered():
            if tree.sandbox(found.where).is_dir():
                return tree
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
        tree = self._tree_with(found)
        meta = tree.metadata(found.where)
        env = dict(meta.get("env") or {})
        labels = dict(meta.get("labels") or {})
        if not env:
            env = _env_from_sandbox(tree.sandbox(found.where))
        return Store(paths.store).register_sandbox(
            tree.sandbox(found.where),
            found.name,
            found.version,
            found.builddate,
            env,
            labels,
        )


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
