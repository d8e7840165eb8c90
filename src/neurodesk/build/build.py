"""recipe → build context → base image → builder → OCI layout → local store → release files.

Caching is the builder's (one cached layer per Dockerfile step); this module keeps everything it
feeds the builder byte-stable for an unchanged recipe (no dates in files or early steps) and
skips the export and store import when the store already holds the very image the builder
produced (same config digest), so an unchanged rebuild costs about one cached ``bud``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from neurodesk import __version__
from neurodesk.build.base import ensure_base
from neurodesk.build.builder import Builder
from neurodesk.build.select import choose_builder
from neurodesk.build.steps import directive_of_steps, instructions
from neurodesk.catalog.appsjson import CatalogFiles, Release, release_file_version
from neurodesk.errors import ExternalCommandError, NeurodeskError, NotFoundError
from neurodesk.image.oci import OCILayout
from neurodesk.paths import Paths
from neurodesk.recipe import Recipe, load_recipe
from neurodesk.recipe.context import RenderContext, host_arch
from neurodesk.recipe.context_dir import write_build_context
from neurodesk.recipe.render_docker import render_dockerfile
from neurodesk.recipe.variants import select
from neurodesk.store import ImageRecord, Store

__all__ = ["BuildResult", "build_recipe", "choose_builder", "today"]

Say = Callable[[str], None]
StepHook = Callable[[int, int, str], None]


class BuildStepError(ExternalCommandError):
    """A Dockerfile step failed; the message names the step, its directive and its command."""


@dataclass
class BuildResult:
    record: ImageRecord
    log: Path
    base_source: str
    builder: str = ""
    image_id: str = ""
    exported: bool = True  # False: the store already held this exact image
    release: Path | None = None
    steps: list[str] = field(default_factory=list)
    #: seconds per phase: base, build (the builder's steps), store (export + import), release
    timings: dict[str, float] = field(default_factory=dict)


def new_log(directory: Path, image_id: str, stamp: str) -> Path:
    """A log file of its own for this build: ``<id>.<stamp>.log``, or ``<id>.<stamp>-N.log``
    when another build of the same image started in the same second (each keeps its log)."""
    directory.mkdir(parents=True, exist_ok=True)
    for number in range(1, 1000):
        suffix = "" if number == 1 else f"-{number}"
        log = directory / f"{image_id}.{stamp}{suffix}.log"
        try:
            with log.open("x"):
                return log
        except FileExistsError:
            continue
    raise NeurodeskError(
        f"{directory} already holds 999 logs of {image_id} for {stamp}",
        hint="remove old build logs from it and build again",
    )


def today() -> str:
    return os.environ.get("NEURODESK_BUILDDATE") or datetime.now(UTC).strftime("%Y%m%d")


def _sync_tree(staged: Path, dest: Path) -> None:
    """Make ``dest`` equal to ``staged``, rewriting only files whose bytes or mode differ (so
    mtimes stay put for an unchanged recipe) and deleting what ``staged`` lacks."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {p.relative_to(staged) for p in staged.rglob("*")}
    for old in sorted(dest.rglob("*"), reverse=True):
        if old.relative_to(dest) not in wanted:
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    for rel in sorted(wanted):
        src, dst = staged / rel, dest / rel
        if src.is_dir():
            dst.mkdir(exist_ok=True)
            continue
        mode = src.stat().st_mode & 0o7777
        same = dst.is_file() and dst.read_bytes() == src.read_bytes()
        if not same:
            src.replace(dst)
        elif dst.stat().st_mode & 0o7777 != mode:
            dst.chmod(mode)


def with_base(recipe: Recipe, base_override: str | None) -> Recipe:
    if not base_override:
        return recipe
    build = recipe.build.model_copy(update={"base_image": base_override})
    return recipe.model_copy(update={"build": build})


def prepare_context(
    recipe: Recipe, recipe_path: Path, dest: Path, locals_: dict[str, str] | None = None
) -> str:
    """Write the build context (Dockerfile, README.md, build.yaml, the recipe's files, the
    Apptainer definition) into ``dest``; return the recipe digest.

    The context is staged in a fresh directory and synced into ``dest`` so that an unchanged
    recipe leaves every file (bytes and mtime) as it was and every step stays cached; nothing
    in it depends on the date or the machine.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".stage-", dir=dest.parent))
    try:
        ctx = RenderContext(recipe, locals_=locals_)
        raw = recipe_path.read_bytes()
        (staged / "Dockerfile").write_text(render_dockerfile(recipe, ctx))
        (staged / "README.md").write_text(ctx.render(recipe.readme, "readme") + "\n")
        (staged / "build.yaml").write_bytes(raw)
        # files:, copy sources, Boutiques descriptors, structured README, Apptainer definition
        write_build_context(recipe, recipe_path, staged, ctx)
        _sync_tree(staged, dest)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def image_labels(
    recipe: Recipe, builddate: str, digest: str, builder: Builder, base: str
) -> dict[str, str]:
    """The OCI labels of every image we build."""
    return {
        "org.opencontainers.image.title": recipe.image_name,
        "org.opencontainers.image.version": recipe.version,
        "org.opencontainers.image.created": builddate,
        "org.opencontainers.image.base.name": base,
        "org.neurodesk.builddate": builddate,
        "org.neurodesk.recipe.digest": digest,
        "org.neurodesk.builder": f"{builder.name} {builder.version()}",
        "org.neurodesk.version": __version__,
    }


def stored_config_digest(store: Store, name: str, version: str, builddate: str) -> str | None:
    """The config digest of the image the store holds under that name, if any."""
    ref = store.root / "refs" / name / version / f"{builddate}.json"
    try:
        manifest_digest = json.loads(ref.read_text())["digest"]
        manifest = json.loads(store.blob_path(manifest_digest).read_bytes())
        digest = manifest["config"]["digest"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    rootfs = store.root / "images" / manifest_digest.removeprefix("sha256:") / "rootfs"
    return str(digest) if rootfs.is_dir() else None


class StepTracker:
    """Follows the builder's ``STEP n/m`` lines; remembers the step a failure happened in."""

    def __init__(self, builder: Builder, labels: list[str], hook: StepHook | None) -> None:
        self.pattern = re.compile(builder.step_pattern) if builder.step_pattern else None
        self.labels = labels
        self.hook = hook
        self.current: tuple[int, int, str] | None = None

    def directive(self, number: int) -> str:
        # Builders count from 1 and add one LABEL step per --label after the Dockerfile's own.
        index = number - 1
        if 0 <= index < len(self.labels):
            return self.labels[index]
        return "labels" if self.labels and index >= len(self.labels) else ""

    def __call__(self, line: str) -> None:
        match = self.pattern.match(line) if self.pattern else None
        if not match:
            return
        number, total, text = int(match.group(1)), int(match.group(2)), match.group(3)
        self.current = (number, total, text)
        if self.hook:
            where = self.directive(number)
            self.hook(number, total, f"[{where}] {text}" if where else text)

    def failure(self, exc: ExternalCommandError, log: Path) -> BuildStepError:
        if self.current is None:
            return BuildStepError(str(exc.message), exc.log_tail, hint=f"full log: {log}")
        number, total, text = self.current
        where = self.directive(number)
        command = " ".join(text.split())
        command = command if len(command) <= 300 else command[:297] + "..."
        return BuildStepError(
            f"build failed at step {number}/{total}"
            + (f" ({where})" if where else "")
            + f": {command}",
            exc.log_tail,
            hint=f"full log: {log}",
        )


def build_recipe(
    recipe_path: Path,
    paths: Paths,
    *,
    builder: Builder | None = None,
    say: Say | None = None,
    on_step: StepHook | None = None,
    base_override: str | None = None,
    releases: Path | None = None,
    locals_: dict[str, str] | None = None,
    variant: str | None = None,
) -> BuildResult:
    """Build the recipe at ``recipe_path`` into the store; write its release files.

    ``releases`` is a catalog root (``releases/``, ``apps.json``, ``log.txt``); by default
    ``$NEURODESK_HOME/catalog``. On failure nothing new is registered: no store ref, and a tag
    the failed build created is removed again.
    """
    say = say or (lambda _m: None)
    recipe = with_base(load_recipe(recipe_path), base_override)
    if variant:
        try:
            chosen = select(recipe, variant, host_arch())
        except ValueError as exc:
            raise NotFoundError(str(exc)) from None
        recipe = recipe.with_variant(chosen.variant, dict(chosen.options))
    builder = builder or choose_builder(paths)
    builddate = today()
    image_id = f"{recipe.tag_name}_{builddate}"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    log = new_log(paths.logs / "build", image_id, stamp)
    log.write_text(f"# neurodesk build {recipe_path} with {builder.name} at {stamp}\n")
    latest = paths.logs / "build" / f"{image_id}.log"
    latest.unlink(missing_ok=True)
    latest.symlink_to(log.name)

    base = recipe.build.base_image
    clock = time.monotonic()
    timings: dict[str, float] = {}

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[phase] = round(now - clock, 3)
        clock = now

    base_source = ensure_base(builder, base, paths, log, say)
    lap("base")
    context = paths.cache / "build" / recipe.image_name / recipe.version
    digest = prepare_context(recipe, recipe_path, context, locals_)
    steps = directive_of_steps(recipe)
    if len(steps) != len(instructions((context / "Dockerfile").read_text())):
        steps = []  # the renderer did something we cannot attribute; show plain steps
    tag = f"localhost/{recipe.tag_name}:{builddate}"
    labels = image_labels(recipe, builddate, digest, builder, base)
    tracker = StepTracker(builder, steps, on_step)

    before = builder.image_id(tag)
    say(f"building {tag} with {builder.name}")
    try:
        builder.build(context, tag, labels, log, tracker)
    except ExternalCommandError as exc:
        if builder.image_id(tag) != before:
            builder.remove_image(tag)
        raise tracker.failure(exc, log) from None
    built = builder.image_id(tag)
    lap("build")
    if built is None:
        raise NotFoundError(f"{builder.name} reported success but has no image {tag}")

    store = Store(paths.store)
    exported = stored_config_digest(store, recipe.image_name, recipe.version, builddate) != built
    if exported:
        record = _export(builder, store, tag, recipe, builddate, paths, log, say, before, built)
    else:
        say("unchanged: the store already holds this image")
        record = store.resolve(f"{recipe.image_name}/{recipe.version}/{builddate}")
    lap("store")

    files = CatalogFiles(releases) if releases else CatalogFiles.default(paths.home)
    arch = host_arch()
    release = Release.for_build(
        recipe.image_name,
        recipe.version,
        builddate,
        recipe.categories,
        [(app.name, app.exec) for app in recipe.gui_apps],
        apptainer_args=recipe.apptainer_args,
        architecture=arch,
        show_in_menu=recipe.show_in_menu,
        show_in_applist=recipe.show_in_applist,
        variant=recipe.variant or None,
    )
    release_path = files.write_release(
        recipe.image_name, release_file_version(recipe.version, arch, recipe.variant), release
    )
    files.regenerate()
    lap("release")
    return BuildResult(
        record, log, base_source, builder.name, built, exported, release_path, steps, timings
    )


def _export(
    builder: Builder,
    store: Store,
    tag: str,
    recipe: Recipe,
    builddate: str,
    paths: Paths,
    log: Path,
    say: Say,
    before: str | None,
    built: str,
) -> ImageRecord:
    export = paths.store / "tmp" / f"export-{recipe.tag_name}_{builddate}"
    shutil.rmtree(export, ignore_errors=True)
    export.parent.mkdir(parents=True, exist_ok=True)
    try:
        say("exporting the image")
        # Only the layers the store lacks; a builder that cannot exports everything.
        if not builder.export_layers(tag, export, store.layers_held):
            shutil.rmtree(export, ignore_errors=True)
            builder.export_oci(tag, export, log)
        return store.import_layout(
            OCILayout(export), recipe.image_name, recipe.version, builddate, progress=say
        )
    except BaseException:
        if before != built:  # leave no tag the store does not know
            builder.remove_image(tag)
        raise
    finally:
        shutil.rmtree(export, ignore_errors=True)
