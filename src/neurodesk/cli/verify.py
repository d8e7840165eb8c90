"""``neurodesk verify``: check images, the whole store or a tree again, file by file."""

from __future__ import annotations

from pathlib import Path

import click

from neurodesk.cli.output import console, emit_json, json_option_help
from neurodesk.errors import NeurodeskError, NotFoundError
from neurodesk.paths import Paths
from neurodesk.store import Store
from neurodesk.store.verify import VerifyResult, verify_container, verify_record, verify_store
from neurodesk.store.verify import verify_tree as check_tree


@click.command()
@click.argument("names", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="every image and blob of the store")
@click.option(
    "--tree",
    "tree",
    type=click.Path(path_type=Path, file_okay=False),
    help="every container of the CVMFS-layout tree DIR",
)
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def verify(names: tuple[str, ...], everything: bool, tree: Path | None, as_json: bool) -> None:
    """Check images again and report every file that differs.

    \b
    NAME is an image (NAME[/VERSION[/DATE]]) or a tree's container directory.
    Store images: every blob against its digest, every unpacked file against the per-file
    manifest written when it was unpacked. Images used in place from a tree: every file of the
    container against the tree's files.json, and files.json against the one checked at install.
    Exit status 1 when anything differs.
    Examples:
      neurodesk verify dcm2niix
      neurodesk verify --all
      neurodesk verify --tree /cvmfs/neurodesk.example.org
    """
    if not names and not everything and tree is None:
        raise click.UsageError("name an image, or give --all or --tree DIR")
    store = Store(Paths.from_env().store)
    results: list[VerifyResult] = []
    if everything:
        results += verify_store(store)
    if tree is not None:
        if not (tree / "containers").is_dir():
            raise NotFoundError(f"{tree} is not a CVMFS-layout tree (no containers/)")
        results += check_tree(tree)
    for name in names:
        path = Path(name)
        if name.startswith(("/", ".")) or ("/" in name and path.is_dir()):
            if not path.is_dir():
                raise NotFoundError(
                    f"{name} is not a container directory",
                    hint="name an image, or a tree's containers/<id>/ directory",
                )
            results.append(verify_container(path))
            continue
        results.append(verify_record(store, store.resolve(name)))
    if as_json:
        emit_json([r.to_json() for r in results])
    else:
        for result in results:
            state = "ok" if result.ok else f"{len(result.problems)} difference(s)"
            note = f" ({result.note})" if result.note else ""
            console.print(
                f"{result.kind} {result.what}: {result.checked} checked, {state}{note}",
                markup=False,
                soft_wrap=True,
            )
            for problem in result.problems:
                console.print(f"  {problem}", markup=False, soft_wrap=True)
    bad = [r for r in results if not r.ok]
    if bad:
        count = sum(len(r.problems) for r in bad)
        raise NeurodeskError(
            f"{count} difference(s) in {len(bad)} of {len(results)} checked",
            hint="reinstall the image (neurodesk rm, then install) or publish it again",
        )


def register(group: click.Group) -> None:
    group.add_command(verify)
