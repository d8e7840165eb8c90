"""``neurodesk publish --tree DIR``: write an image into a CVMFS-layout tree, transactionally.

A publish is a transaction, like a CVMFS publish on a Stratum 0:

1. everything is prepared under ``DIR/.neurodesk-staging/<txn>/`` (hidden, never listed);
2. a journal there names every path the publish will create or replace;
3. the container directory, module files and release file are renamed into place;
4. the catalog (``apps.json``, then ``log.txt``) is rewritten atomically: that is the commit;
5. the staging directory, journal included, is removed.

Each container directory carries ``files.json``, a per-file manifest (path, type, size, mode,
sha256) of everything in it, written last; an install from the tree checks it. With ``sif``,
the container directory also gets ``<id>.sif`` and ``<id>.sif.sha256`` (outside the manifest:
the SIF carries its own digest), for lazy installs over HTTP; a container published before
without them gets them added.

Readers never see a half-written container: a container directory appears by one rename, with
its sandbox complete. A publish interrupted before step 4 (an error, or kill -9) is rolled back
by the next publish or by :func:`recover`: what the journal names is removed (moved into
staging first, so it also disappears by one rename) and replaced files are restored.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from neurodesk.catalog.appsjson import CatalogFiles, Release, parse_log
from neurodesk.catalog.imageinfo import read_image_info
from neurodesk.errors import ExternalCommandError, NeurodeskError
from neurodesk.install.commands import discover_commands, write_commands_txt
from neurodesk.install.wrapper import render_wrapper
from neurodesk.publish.modules import render_lua
from neurodesk.publish.sif_publish import write_sif_beside
from neurodesk.sources.tree import Tree
from neurodesk.store import ImageRecord
from neurodesk.store.atomic import write_text
from neurodesk.store.filemanifest import write_manifest

UNCATEGORISED = "other"


@dataclass(frozen=True)
class TreeResult:
    image_id: str
    container_dir: Path
    commands: list[str]
    modules: list[Path]
    skipped: bool


def _published_ids(files: CatalogFiles) -> set[str]:
    if not files.log_txt.is_file():
        return set()
    return {c.id for c in parse_log(files.log_txt.read_text())}


def lock(tree: Tree) -> FileLock:
    try:
        tree.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NeurodeskError(
            f"cannot make the tree {tree.root}: {exc.strerror}",
            hint="give a directory you can write to; it is created when missing",
        ) from None
    return FileLock(str(tree.root / ".neurodesk-lock"))


def _discard(path: Path, trash: Path) -> None:
    """Remove a file or directory so that it vanishes by one rename."""
    if not (path.exists() or path.is_symlink()):
        return
    trash.mkdir(parents=True, exist_ok=True)
    target = trash / uuid.uuid4().hex
    path.replace(target)
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target, ignore_errors=True)
    else:
        target.unlink(missing_ok=True)


def recover(tree: Tree) -> list[str]:
    """Roll back interrupted publishes and clean staging; call with the tree lock held."""
    rolled_back: list[str] = []
    if not tree.staging.is_dir():
        return rolled_back
    files = CatalogFiles(tree.root)
    for txn in sorted(tree.staging.iterdir()):
        journal = txn / "journal.json"
        if journal.is_file():
            data = json.loads(journal.read_text())
            if data["id"] not in _published_ids(files):
                for rel in reversed(data["created"]):
                    _discard(tree.root / rel, tree.staging / ".trash")
                for rel in data["replaced"]:
                    backup = txn / "backup" / rel
                    if backup.exists():
                        (tree.root / rel).parent.mkdir(parents=True, exist_ok=True)
                        backup.replace(tree.root / rel)
                files.regenerate()
                rolled_back.append(str(data["id"]))
        shutil.rmtree(txn, ignore_errors=True)
    shutil.rmtree(tree.staging / ".trash", ignore_errors=True)
    return rolled_back


def _copy_tree(src: Path, dest: Path) -> None:
    proc = subprocess.run(
        ["cp", "-a", "--reflink=auto", f"{src}/.", str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ExternalCommandError(f"copying {src} failed", proc.stderr.strip().splitlines()[-20:])


def _tree_wrapper(placed: ImageRecord, command: str, sandbox: Path) -> str:
    """The install wrapper, pointed at the sandbox beside it rather than an absolute path.

    Install wrappers refer to an image used in place by its absolute path; in a tree the
    sandbox sits next to the wrapper, so the tree keeps working wherever it is mounted.
    """
    text = render_wrapper(placed, command, root_beside=sandbox.name)
    if str(sandbox.parent) in text:
        raise NeurodeskError(f"the wrapper for {command} still names the staging directory")
    return text


def publish_tree(record: ImageRecord, root: Path, sif: bool = False) -> TreeResult:
    tree = Tree(root.absolute())
    files = CatalogFiles(tree.root)
    with lock(tree):
        recover(tree)
        final = tree.container_dir(record.id)
        meta = tree.metadata(record.id)
        if record.id in _published_ids(files) and final.is_dir():
            if meta.get("digest") not in (None, record.digest):
                raise NeurodeskError(
                    f"{tree.root} already has {record.id} with digest {meta.get('digest')}",
                    hint="a build date names one build: remove that container first",
                )
            commands = (final / "commands.txt").read_text().split()
            if sif and not (final / f"{record.id}.sif.sha256").is_file():
                write_sif_beside(record, final)
            return TreeResult(record.id, final, commands, [], skipped=True)
        txn = tree.staging / uuid.uuid4().hex
        txn.mkdir(parents=True)
        try:
            result = _publish(record, tree, files, txn, sif)
        except BaseException:
            recover(tree)
            raise
        shutil.rmtree(tree.staging / ".trash", ignore_errors=True)
        return result


def _publish(
    record: ImageRecord, tree: Tree, files: CatalogFiles, txn: Path, sif: bool
) -> TreeResult:
    stage = txn / "container"
    sandbox = stage / f"{record.id}.simg"
    sandbox.mkdir(parents=True)
    _copy_tree(record.rootfs, sandbox)
    placed = dataclasses.replace(record, external_rootfs=sandbox, source="sandbox")
    info = read_image_info(sandbox, record.labels)
    commands = discover_commands(placed)
    write_commands_txt(commands, stage / "commands.txt")
    for command in commands:
        wrapper = stage / command
        wrapper.write_text(_tree_wrapper(placed, command, sandbox))
        wrapper.chmod(0o755)
    write_text(stage / "image.json", json.dumps({**record.to_json(), "commands": commands}))
    write_manifest(stage)  # files.json: every file of the container, checked at install
    if sif:
        write_sif_beside(record, stage)

    lua = render_lua(record, info, commands)
    module_rels = [
        Path("neurodesk-modules")
        / category.replace(" ", "_")
        / record.name
        / f"{record.version}.lua"
        for category in (info.categories or [UNCATEGORISED])
    ]
    for rel in module_rels:
        write_text(txn / "modules" / rel, lua)
    release = Release.for_build(
        record.name, record.version, record.builddate, info.categories, info.gui_apps
    )
    release_rel = files.release_path(record.name, record.version).relative_to(tree.root)
    container_rel = tree.container_dir(record.id).relative_to(tree.root)

    replaced = [rel for rel in [*module_rels, release_rel] if (tree.root / rel).exists()]
    for rel in replaced:
        (txn / "backup" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tree.root / rel, txn / "backup" / rel)
    created = [container_rel, *[r for r in (*module_rels, release_rel) if r not in replaced]]
    write_text(
        txn / "journal.json",
        json.dumps(
            {
                "id": record.id,
                "created": [str(r) for r in created],
                "replaced": [str(r) for r in replaced],
            }
        ),
    )
    final = tree.root / container_rel
    if final.exists():
        _discard(final, tree.staging / ".trash")  # not in the catalog: an orphan, replace it
    final.parent.mkdir(parents=True, exist_ok=True)
    stage.replace(final)
    for rel in module_rels:
        (tree.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (txn / "modules" / rel).replace(tree.root / rel)
    files.write_release(record.name, record.version, release)
    files.regenerate()  # the commit: log.txt now names the container
    shutil.rmtree(txn, ignore_errors=True)
    return TreeResult(
        record.id, final, commands, [tree.root / r for r in module_rels], skipped=False
    )
