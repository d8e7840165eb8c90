"""``neurodesk publish``: push images to an OCI registry or write them into a CVMFS-layout tree."""

from __future__ import annotations

from pathlib import Path

import click

from neurodesk.cli.output import console, emit_json, json_option_help
from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from neurodesk.publish.registry import push_image
from neurodesk.publish.tree import publish_tree
from neurodesk.sources.config import load_config
from neurodesk.sources.progress import RichProgress
from neurodesk.store import ImageRecord, Store


def _chosen(store: Store, images: tuple[str, ...]) -> list[ImageRecord]:
    if images:
        return [store.resolve(spec) for spec in images]
    records = [r for r in store.images() if r.source == "oci"]
    if not records:
        raise NeurodeskError("the store has no images to publish", hint="build one first")
    return records


@click.command()
@click.argument("images", nargs=-1, metavar="[NAME[/VERSION]]...")
@click.option("--registry", metavar="HOST[:PORT]/NS", help="push to this OCI registry")
@click.option(
    "--tree",
    type=click.Path(file_okay=False, path_type=Path),
    help="write into this CVMFS-layout tree (containers/, neurodesk-modules/, apps.json)",
)
@click.option("--insecure", is_flag=True, help="the registry speaks plain HTTP (no TLS)")
@click.option(
    "--sif",
    is_flag=True,
    help="with --registry: also attach the image's SIF as a referrer artifact "
    "(artifactType application/vnd.sylabs.sif.layer.v1.sif), as upstream does; with --tree: "
    "also write <id>.sif (and .sha256) beside the sandbox, for 'install --lazy'",
)
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def publish(
    images: tuple[str, ...],
    registry: str | None,
    tree: Path | None,
    insecure: bool,
    sif: bool,
    as_json: bool,
) -> None:
    """Publish images from the local store (all of them when no NAME is given).

    \b
    --registry HOST[:PORT]/NS  pushes NAME as NS/<name>_<version>:<builddate>, with the
                               digest it has in the store (blobs already there are skipped)
    --tree DIR                 writes DIR/containers/<id>/<id>.simg/ (the unpacked image),
                               commands.txt and wrappers beside it, module files under
                               DIR/neurodesk-modules/<category>/<name>/<version>.lua, and
                               updates DIR/apps.json and DIR/log.txt last; an interrupted
                               publish is rolled back by the next one
    --sif                      (with --registry) also writes the image as a SIF and pushes
                               it as an OCI 1.1 referrer of the image: registries with the
                               Referrers API index it themselves, for others the index under
                               the tag sha256-<hex> is kept (the tag schema). Credentials come
                               from $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json
                               or ~/.docker/config.json
    --sif                      (with --tree) also writes DIR/containers/<id>/<id>.sif and
                               <id>.sif.sha256: serve DIR over HTTP and 'neurodesk install
                               NAME --lazy --from http://HOST/DIR' runs it without fetching it
    \b
    Examples:
      neurodesk publish dcm2niix --registry 127.0.0.1:5000/neurodesk --insecure
      neurodesk publish dcm2niix --registry registry.lab/neurodesk --sif
      neurodesk publish --tree /srv/cvmfs/neurodesk.example.org
      neurodesk publish --tree /srv/www/neurodesk --sif
    """
    if (registry is None) == (tree is None):
        raise click.UsageError("give exactly one of --registry HOST[:PORT]/NS or --tree DIR")
    paths = Paths.from_env()
    store = Store(paths.store)
    results = []
    for record in _chosen(store, images):
        if registry is not None:
            settings = load_config(paths.config_file)
            with RichProgress() as progress:
                pushed = push_image(
                    store, record, registry, insecure, settings.timeout, settings.retries, progress
                )
            result: dict[str, object] = {
                "image": record.id,
                "reference": pushed.reference,
                "digest": pushed.digest,
                "uploaded_blobs": pushed.uploaded,
                "skipped_blobs": pushed.skipped,
            }
            if sif:
                from neurodesk.publish.sif_publish import publish_sif

                attached = publish_sif(paths, record, registry, insecure, settings)
                result["sif"] = {
                    "digest": attached.sif_digest,
                    "size": attached.size,
                    "artifact": attached.artifact,
                    "via": attached.via,
                }
                if not as_json:
                    console.print(
                        f"attached {record.id}.sif ({attached.size} bytes, "
                        f"{attached.sif_digest}) as a referrer, by the {attached.via}",
                        soft_wrap=True,
                    )
            results.append(result)
            if not as_json:
                console.print(
                    f"pushed {record.id} → {pushed.reference}@{pushed.digest} "
                    f"({pushed.uploaded} blob(s) sent, {pushed.skipped} already there)",
                    soft_wrap=True,
                )
        else:
            assert tree is not None
            done = publish_tree(record, tree, sif=sif)
            results.append(
                {
                    "image": record.id,
                    "container": str(done.container_dir),
                    "commands": done.commands,
                    "modules": [str(m) for m in done.modules],
                    "skipped": done.skipped,
                }
            )
            if not as_json:
                what = "already published" if done.skipped else "published"
                console.print(f"{what} {record.id} → {done.container_dir}", soft_wrap=True)
    if as_json:
        emit_json(results)


def register(group: click.Group) -> None:
    group.add_command(publish)
