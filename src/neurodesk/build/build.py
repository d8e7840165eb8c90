"""recipe → build context → base image → builder → OCI layout → local store."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from neurodesk import __version__
from neurodesk.build.base import ensure_base
from neurodesk.build.buildah import BuildahBuilder
from neurodesk.build.builder import Builder
from neurodesk.image.oci import OCILayout
from neurodesk.paths import Paths
from neurodesk.recipe import Recipe, load_recipe
from neurodesk.recipe.context import RenderContext
from neurodesk.recipe.render_docker import render_dockerfile
from neurodesk.store import ImageRecord, Store

STEP_LINE = re.compile(r"^STEP (\d+)/(\d+): (.*)$")

Say = Callable[[str], None]
StepHook = Callable[[int, int, str], None]


@dataclass
class BuildResult:
    record: ImageRecord
    log: Path
    base_source: str


def today() -> str:
    return os.environ.get("NEURODESK_BUILDDATE") or datetime.now(UTC).strftime("%Y%m%d")


def choose_builder(paths: Paths, name: str | None = None) -> Builder:
    # Only buildah for now; podman/docker/apptainer plug in here behind the same interface.
    return BuildahBuilder(paths)


def prepare_context(recipe: Recipe, recipe_path: Path, dest: Path) -> str:
    """Write Dockerfile, README.md and build.yaml into ``dest``; return the recipe digest."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    ctx = RenderContext(recipe)
    (dest / "Dockerfile").write_text(render_dockerfile(recipe, ctx))
    (dest / "README.md").write_text(ctx.render(recipe.readme, "readme") + "\n")
    raw = recipe_path.read_bytes()
    (dest / "build.yaml").write_bytes(raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def build_recipe(
    recipe_path: Path,
    paths: Paths,
    *,
    builder: Builder | None = None,
    say: Say | None = None,
    on_step: StepHook | None = None,
) -> BuildResult:
    say = say or (lambda _m: None)
    recipe = load_recipe(recipe_path)
    builder = builder or choose_builder(paths)
    builddate = today()
    image_id = f"{recipe.tag_name}_{builddate}"
    log = paths.logs / "build" / f"{image_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")

    base_source = ensure_base(builder, recipe.build.base_image, paths, log, say)
    context = paths.cache / "build" / recipe.name
    digest = prepare_context(recipe, recipe_path, context)
    tag = f"localhost/{recipe.tag_name}:{builddate}"
    labels = {
        "org.opencontainers.image.title": recipe.name,
        "org.opencontainers.image.version": recipe.version,
        "org.opencontainers.image.created": builddate,
        "org.neurodesk.builddate": builddate,
        "org.neurodesk.recipe.digest": digest,
        "org.neurodesk.builder": f"{builder.name} {builder.version()}",
        "org.neurodesk.version": __version__,
    }

    def on_line(line: str) -> None:
        match = STEP_LINE.match(line)
        if match and on_step:
            on_step(int(match.group(1)), int(match.group(2)), match.group(3))

    say(f"building {tag} with {builder.name}")
    builder.build(context, tag, labels, log, on_line)
    store = Store(paths.store)
    export = paths.store / "tmp" / f"export-{image_id}"
    shutil.rmtree(export, ignore_errors=True)
    export.parent.mkdir(parents=True, exist_ok=True)
    try:
        say("exporting the image")
        builder.export_oci(tag, export, log)
        record = store.import_layout(
            OCILayout(export), recipe.name, recipe.version, builddate, progress=say
        )
    finally:
        shutil.rmtree(export, ignore_errors=True)
    return BuildResult(record, log, base_source)
