"""``neurodesk images``, ``import``, ``rm``, ``gc`` and ``du``: the local store."""

from __future__ import annotations

from pathlib import Path

import click

from neurodesk.cli.output import (
    console,
    emit_json,
    err_console,
    json_option_help,
    print_table,
    short_digest,
)
from neurodesk.paths import Paths
from neurodesk.sources.pull import clean_fetch_cache
from neurodesk.store import Store
from neurodesk.store.imports import import_path
from neurodesk.store.maintenance import du as store_du
from neurodesk.store.maintenance import gc as store_gc
from neurodesk.store.sifstore import held


def _store() -> Store:
    return Store(Paths.from_env().store)


def human(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


@click.command()
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def images(as_json: bool) -> None:
    """List the images in the local store.

    VERIFIED says who vouches for an image's bytes: "publisher" (they matched a digest its
    publisher published, e.g. a registry manifest) or "unverified-by-publisher" (a SIF from
    object storage or a URL that no registry had a digest for: only our own sha256 is known);
    "-" for images built or imported here.
    """
    from neurodesk.sources.origins import read_origin

    paths = Paths.from_env()
    records = Store(paths.store).images()
    verified = {r.id: str(read_origin(paths, r.id).get("verified") or "-") for r in records}
    if as_json:
        emit_json(
            [
                {
                    **r.to_json(),
                    "id": r.id,
                    "rootfs": str(r.rootfs),
                    "held": held(r),
                    "verified": verified[r.id],
                }
                for r in records
            ]
        )
        return
    print_table(
        None,
        ["NAME", "VERSION", "BUILD DATE", "SOURCE", "HELD", "VERIFIED", "DIGEST"],
        [
            (
                r.name,
                r.version,
                r.builddate,
                r.source,
                held(r),
                verified[r.id],
                short_digest(r.digest),
            )
            for r in records
        ],
    )


@click.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="image name (default: from the image's tag or file name)")
@click.option("--version", "version", help="tool version (default: from the tag or file name)")
@click.option("--builddate", help="build date YYYYMMDD (default: from the tag, else today)")
def import_(path: Path, name: str | None, version: str | None, builddate: str | None) -> None:
    """Bring an image into the store from PATH.

    \b
    PATH may be:
      an OCI image layout directory, or an OCI archive (.tar of a layout)
      a docker-archive tarball (docker save, skopeo copy ... docker-archive:FILE)
      a squashfs file (.sqfs) or a SIF file (.sif, its squashfs partition)
      an unpacked sandbox directory (CVMFS <id>.simg/): used in place, never copied
    Example:
      neurodesk import dcm2niix.sif --name dcm2niix --version 1.0.20220720
    """
    record = import_path(
        _store(),
        path,
        name,
        version,
        builddate,
        progress=lambda m: err_console.print(f"  {m}", markup=False),
    )
    console.print(f"imported {record.id} ({record.source}) → {record.rootfs}", markup=False)


@click.command("rm")
@click.argument("image")
def rm(image: str) -> None:
    """Remove IMAGE (NAME[/VERSION[/DATE]]) from the store; every build date unless given.

    Its unpacked files go at once; blobs and files shared with other images go with 'gc'.
    Sandbox images used in place are only forgotten, never deleted.
    """
    for record in _store().remove(image):
        console.print(f"removed {record.id}", markup=False)


@click.command()
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def gc(as_json: bool) -> None:
    """Delete what no image needs: unreferenced images, blobs, shared files, interrupted work,
    and corrupt or leftover copies in the fetch cache."""
    report = store_gc(_store())
    report.cache, cache_bytes = clean_fetch_cache(Paths.from_env())
    report.bytes_freed += cache_bytes
    if as_json:
        emit_json(report.to_json())
        return
    console.print(
        f"removed {len(report.images)} image(s), {report.blobs} blob(s), "
        f"{report.layers} layer state(s), {report.files} shared file(s), {report.tmp} leftover(s), "
        f"{report.cache} cached fetch file(s): "
        f"{human(report.bytes_freed)} freed",
        markup=False,
    )
    if report.kept_blobs_reason:
        console.print(f"kept all blobs: {report.kept_blobs_reason}", markup=False)


@click.command()
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def du(as_json: bool) -> None:
    """Disk usage per image, and how much storing shared files once saves."""
    report = store_du(_store())
    if as_json:
        emit_json(report.to_json())
        return
    print_table(
        None,
        ["IMAGE", "SOURCE", "SIZE", "EXCLUSIVE"],
        [(u.record.id, u.record.source, human(u.size), human(u.exclusive)) for u in report.images],
    )
    console.print(
        f"images {human(report.logical)} as files, {human(report.physical)} on disk "
        f"(deduplication ratio {report.ratio:.2f}x); blobs {human(report.blobs)}",
        markup=False,
    )
    console.print(
        f"store {human(report.store)} on disk for {human(report.unpacked)} of unpacked images "
        f"(footprint {report.footprint:.2f}x)",
        markup=False,
    )


def register(group: click.Group) -> None:
    for command in (images, import_, rm, gc, du):
        group.add_command(command)
