"""``neurodesk base``: make a base image with debootstrap and register it with the builder."""

from __future__ import annotations

import click

from neurodesk.build.base import DEBIAN_SUITES, UBUNTU_SUITES, Distro, create_base, parse_base
from neurodesk.build.select import builder_names, choose_builder
from neurodesk.cli.output import console, emit_json, json_option_help
from neurodesk.cli.progress import PhaseReporter
from neurodesk.paths import Paths

SUITES = sorted({*DEBIAN_SUITES.values(), *UBUNTU_SUITES.values()})


@click.command()
@click.argument("image", metavar="NAME:TAG")
@click.option(
    "--suite",
    type=click.Choice(SUITES),
    help="what to bootstrap when NAME:TAG does not say (e.g. 'mybase:1 --suite bookworm')",
)
@click.option("--mirror", metavar="URL", help="package mirror (default: the one apt uses)")
@click.option("--force", is_flag=True, help="bootstrap it again even if it exists")
@click.option("--builder", type=click.Choice(builder_names()), help="builder to register it with")
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def base(
    image: str,
    suite: str | None,
    mirror: str | None,
    force: bool,
    builder: str | None,
    as_json: bool,
) -> None:
    """Create base image NAME:TAG with debootstrap and register it under that name.

    \b
    Debian suites (debian:bookworm, debian:12, debian:bullseye, debian:trixie) come from the
    apt mirror this machine uses (NEURODESK_APT_MIRROR overrides it). Ubuntu (ubuntu:22.04,
    ubuntu:jammy, ...) needs a reachable Ubuntu mirror (NEURODESK_UBUNTU_MIRROR); without
    one, build on Debian: neurodesk build NAME --base-override debian:bookworm.
    The root filesystem is cached under $NEURODESK_HOME/cache/base. Needs root.

    \b
    Examples:
      neurodesk base debian:bookworm
      neurodesk base mylab/base:2024 --suite bookworm
    """
    paths = Paths.from_env()
    chosen = choose_builder(paths, builder)
    distro = parse_base(image)
    if suite is not None:
        distro = Distro("ubuntu" if suite in UBUNTU_SUITES.values() else "debian", suite)
    if chosen.has_image(image) and not force:
        source = "already present"
    else:
        if force and distro is not None:  # a fresh debootstrap, not the cached tarball
            (paths.cache / "base" / distro.tarball_name).unlink(missing_ok=True)
        log = paths.logs / "base" / f"{image.replace('/', '_').replace(':', '_')}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        with PhaseReporter() as reporter:
            reporter.step(f"Creating base image {image}")
            create_base(chosen, image, paths, log, reporter.update, distro=distro, mirror=mirror)
            reporter.done()
        source = "debootstrap"
    image_id = chosen.image_id(image) or ""
    if as_json:
        emit_json({"image": image, "builder": chosen.name, "id": image_id, "source": source})
    else:
        console.print(f"{image} ({source}) registered with {chosen.name}: {image_id[:19]}")


def register(group: click.Group) -> None:
    group.add_command(base)
