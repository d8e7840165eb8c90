"""The build context a recipe needs besides its Dockerfile: declared files, copied files,
Boutiques descriptors, the README, and the Apptainer definition.

``files:`` entries with a ``url`` are downloaded once into ``$NEURODESK_HOME/cache/files/``
(named by the SHA-256 of the URL, written to a temporary name and renamed, checked against
``sha256:`` when the recipe gives one) and hard-linked or copied into the context from there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from neurodesk.errors import NotFoundError, ValidationError
from neurodesk.paths import Paths
from neurodesk.recipe.context import RenderContext
from neurodesk.recipe.model import FileSpec, Recipe
from neurodesk.recipe.plan import ContextFile, make_plan
from neurodesk.recipe.render_apptainer import render_apptainer

DOWNLOAD_TIMEOUT = 60.0


def files_cache() -> Path:
    return Paths.from_env().cache / "files"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_cached(spec: FileSpec, cache: Path | None = None) -> Path:
    """The cached copy of ``spec.url``, downloading it on first use (every time with
    ``refresh: true``); ``insecure: true`` skips the TLS certificate check, as upstream's
    ``curl --insecure`` (a ``sha256:`` still verifies the bytes); ``retry`` is the attempts."""
    assert spec.url is not None
    cache = cache or files_cache()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / hashlib.sha256(spec.url.encode()).hexdigest()
    tls = None
    if spec.insecure:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    if target.is_file() and target.stat().st_size > 0 and not spec.refresh:
        if spec.sha256 is None or _sha256(target) == spec.sha256:
            return target
        target.unlink()  # a stale or corrupted cache entry: fetch again
    last_error = ""
    for _attempt in range(spec.retry):
        fd, tmp_name = tempfile.mkstemp(dir=cache, prefix=".download-")
        tmp = Path(tmp_name)
        try:
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(spec.url, timeout=DOWNLOAD_TIMEOUT, context=tls) as response,
            ):
                shutil.copyfileobj(response, out)
            if spec.sha256 is not None and _sha256(tmp) != spec.sha256:
                last_error = f"SHA-256 mismatch (expected {spec.sha256})"
                continue
            os.replace(tmp, target)
            return target
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last_error = str(getattr(exc, "reason", exc))
        finally:
            tmp.unlink(missing_ok=True)
    raise NotFoundError(
        f"cannot download {spec.url} for file '{spec.name}': {last_error}",
        hint="check the URL and the network, or give the file with 'filename:' instead",
    )


def _place(source: ContextFile, dest: Path) -> None:
    if source.missing is not None:
        raise ValidationError(
            source.missing, [source.missing], hint="add the file beside build.yaml"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.data is not None:
        dest.write_bytes(source.data)
    elif source.path is not None and source.path.is_dir():
        shutil.copytree(source.path, dest, symlinks=True, dirs_exist_ok=True)
        return
    elif source.path is not None:
        shutil.copyfile(source.path, dest)
    else:
        assert source.spec is not None
        cached = fetch_cached(source.spec)
        shutil.copyfile(cached, dest)
    os.chmod(dest, 0o755 if source.executable else 0o644)


def render_readme(recipe: Recipe, ctx: RenderContext | None = None) -> str:
    """The ``/README.md`` text: ``readme`` (Jinja), else the recipe directory's README.md (as
    upstream's builder does), else built from ``structured_readme``."""
    ctx = ctx or RenderContext(recipe)
    if recipe.readme.strip():
        return ctx.render(recipe.readme, "readme").rstrip("\n") + "\n"
    beside = recipe.source_dir / "README.md"
    if recipe.source is not None and beside.is_file():
        try:
            text = beside.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
        if text.strip():
            return ctx.render(text, "README.md").rstrip("\n") + "\n"
    parts = [f"## {recipe.name}/{recipe.version}"]
    sr = recipe.structured_readme
    if sr is not None:
        if sr.description:
            parts.append(ctx.render(sr.description, "structured_readme.description").strip())
        if sr.example:
            example = ctx.render(sr.example, "structured_readme.example").strip()
            parts.append(f"Example:\n```\n{example}\n```")
        if sr.documentation:
            parts.append(
                "Documentation: "
                + ctx.render(sr.documentation, "structured_readme.documentation").strip()
            )
        if sr.citation:
            parts.append(
                "Citation: " + ctx.render(sr.citation, "structured_readme.citation").strip()
            )
    if recipe.readme_url:
        parts.append(f"More: {recipe.readme_url}")
    return "\n\n".join(parts) + "\n"


def write_build_context(
    recipe: Recipe, recipe_path: Path, dest: Path, ctx: RenderContext | None = None
) -> None:
    """Write the files the Dockerfile's ``COPY`` lines need, ``README.md`` and ``Singularity``.

    ``dest`` already holds the Dockerfile and ``build.yaml`` (see build.prepare_context).
    """
    if recipe.source is None:
        recipe._source = recipe_path
    ctx = ctx or RenderContext(recipe)
    plan = make_plan(recipe, ctx)
    root = dest.resolve()
    for relative, source in sorted(plan.context_files.items()):
        target = (dest / relative).resolve()
        if root not in target.parents:
            line = f"{recipe_path}: {relative}: escapes the build context"
            raise ValidationError(line, [line])
        _place(source, target)
    for relative, directory in sorted(plan.local_dirs.items()):
        if not directory.is_dir():
            raise NotFoundError(f"--local directory {directory} does not exist")
        shutil.copytree(directory, dest / relative, symlinks=True, dirs_exist_ok=True)
    (dest / "README.md").write_text(render_readme(recipe, RenderContext(recipe, ctx.arch)))
    (dest / "Singularity").write_text(render_apptainer(recipe, RenderContext(recipe, ctx.arch)))
