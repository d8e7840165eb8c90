"""``neurodesk install`` / ``uninstall``."""

from __future__ import annotations

from pathlib import Path

import click

from neurodesk.cli.output import console, emit_json, json_option_help
from neurodesk.errors import NotFoundError
from neurodesk.install.installer import install_image, uninstall_image
from neurodesk.install.layout import Layout
from neurodesk.paths import Paths
from neurodesk.sources.fetch import fetch_image
from neurodesk.sources.progress import RichProgress
from neurodesk.sources.sif_lazy import lazy_image
from neurodesk.store import ImageRecord, Store
from neurodesk.store.sifmount import ensure_mounted

prefix_option = click.option(
    "--prefix",
    type=click.Path(file_okay=False, path_type=Path),
    help="install tree (default: $NEURODESK_HOME/installs); e.g. /opt/neurodesk for a site",
)


def _image(image: str, paths: Paths, source: str | None, insecure: bool) -> ImageRecord:
    """The image from the store, or fetched from the configured sources (or --from)."""
    try:
        with RichProgress() as progress:
            return fetch_image(image, paths, source, insecure, progress)
    except NotFoundError as exc:
        # A known tool in an unknown version: say which versions there are.
        name = image.partition("/")[0]
        here = sorted({f"{r.name}/{r.version}" for r in Store(paths.store).images()})
        same = [v for v in here if v.partition("/")[0] == name]
        if not same:
            raise
        raise NotFoundError(exc.message, hint=f"available: {', '.join(same)}") from exc


@click.command()
@click.argument("image", metavar="NAME[/VERSION]")
@prefix_option
@click.option(
    "--from",
    "source",
    metavar="SOURCE",
    help="take the image from this source only: a name from config.yaml or a built-in channel "
    "(cvmfs, sif-artifacts, object-storage, registry-images), a registry HOST[:PORT]/NS, an "
    "http(s):// OCI layout, a CVMFS-layout tree or OCI layout directory, or a SIF file (a path "
    "or an http(s):// URL ending in .sif or .simg)",
)
@click.option("--insecure", is_flag=True, help="the source speaks plain HTTP (no TLS)")
@click.option(
    "--gpu",
    is_flag=True,
    help="wrappers expose NVIDIA GPUs by default (NEURODESK_GPU=0 turns it off per call)",
)
@click.option(
    "--lazy/--no-lazy",
    default=None,
    help="for a SIF on an HTTP(S) source (--from URL of a .sif, a registry blob or a tree "
    "with SIFs): mount it over the network and fetch only the blocks commands read "
    "(default: 'lazy:' in config.yaml, else off)",
)
@click.option(
    "--prefetch",
    is_flag=True,
    help="with --lazy: download the whole SIF in the background, verify it, then switch to it",
)
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def install(
    image: str,
    prefix: Path | None,
    source: str | None,
    insecure: bool,
    gpu: bool,
    lazy: bool | None,
    prefetch: bool,
    as_json: bool,
) -> None:
    """Install an image from the store so its commands work like native programs.

    \b
    Writes, under the prefix:
      containers/<id>/bin/<command>   one wrapper per command (runs it in the container)
      modules/<name>/<version>.lua    Lmod module;  modulefiles/...: environment-modules
      containers/<id>/activate        for shells without modules: '. activate'
      share/applications, etc/xdg/menus   desktop menu entries

    \b
    Then either:
      module use PREFIX/modules && module load NAME/VERSION
      . PREFIX/containers/<id>/activate

    An image missing from the store is fetched from the configured sources (or --from).
    With --lazy and an HTTP(S) SIF source, the image's first command starts after reading only
    the blocks it needs (httpdirfs + squashfuse; cache under $NEURODESK_HOME/cache/):
      neurodesk install dcm2niix --lazy --from https://host/dcm2niix_1.0_20260101.sif
      neurodesk install dcm2niix --lazy --prefetch --from https://mirror/tree
    Every path in the tree is relative, so it can be moved (with its 'store' link) or shared
    read-only, e.g. an administrator installs into /opt/neurodesk and users only 'module use'.

    \b
    A site tree for every user (build state stays out of it):
      NEURODESK_HOME=/var/lib/neurodesk-build neurodesk build NAME
      NEURODESK_HOME=/var/lib/neurodesk-build neurodesk publish NAME --tree /srv/nd-images
      NEURODESK_HOME=/opt/neurodesk neurodesk install NAME --from /srv/nd-images \\
          --prefix /opt/neurodesk
    then, once, for every login shell:
      echo /opt/neurodesk/modules >> /etc/lmod/modulespath        (Lmod)
    or /etc/profile.d/neurodesk.sh with
      export MODULEPATH=/opt/neurodesk/modules${MODULEPATH:+:$MODULEPATH}
    Build storage (buildah/), caches and logs stay under the build home.
    """
    paths = Paths.from_env()
    # Not in the store (or --from): fetch it from the sources of $NEURODESK_HOME/config.yaml.
    record = lazy_image(image, paths, source, lazy, prefetch) or _image(
        image, paths, source, insecure
    )
    ensure_mounted(record.image_dir)  # a SIF held in the store: wrappers are made from its files
    root = (prefix or paths.installs).absolute()
    result = install_image(record, root, gpu=gpu)
    layout = Layout(root)
    lua = root / layout.lua_module(record.name, record.version)
    if as_json:
        emit_json(
            {
                "image": record.id,
                "prefix": str(root),
                "bin": str(result.bin_dir),
                "commands": result.commands,
                "module": f"{record.name}/{record.version}",
                "modulepath": str(lua.parent.parent),
                "files": list(result.files),
            }
        )
        return
    console.print(f"installed {record.id} into {root}: {len(result.commands)} command(s)")
    console.print(f"  {' '.join(result.commands)}", soft_wrap=True)
    console.print("use it with modules (Lmod or environment-modules):", soft_wrap=True)
    console.print(f"  module use {lua.parent.parent}", soft_wrap=True)
    console.print(f"  module load {record.name}/{record.version}", soft_wrap=True)
    console.print("or in any shell, without modules:", soft_wrap=True)
    console.print(f"  . {result.directory / 'activate'}", soft_wrap=True)


@click.command()
@click.argument("image", metavar="NAME[/VERSION]")
@prefix_option
def uninstall(image: str, prefix: Path | None) -> None:
    """Remove what 'install' wrote for NAME[/VERSION] under the prefix, and nothing else.

    Files you added beside the install stay; directories left empty are removed. The image
    stays in the store.
    """
    paths = Paths.from_env()
    removed = uninstall_image((prefix or paths.installs).absolute(), image)
    console.print(f"uninstalled {removed.image_id} ({len(removed.files)} files)")


def register(group: click.Group) -> None:
    group.add_command(install)
    group.add_command(uninstall)
