"""Render a recipe to an Apptainer (Singularity) definition file, deterministically.

Apptainer differs from Docker in ways the translation has to bridge:

- ``%files`` runs before ``%post``, but a recipe may ``copy`` into a directory that an earlier
  ``run`` created; so files are staged under ``/.neurodesk/stage/<n>/`` and copied into place
  at their position in ``%post`` (the staging directory is removed at the end).
- ``%post`` is one shell script: each ``run`` starts with ``cd`` to the current ``workdir``
  (as each Docker ``RUN`` starts in ``WORKDIR``), and an ``environment`` directive is exported
  there for later build steps *and* listed in ``%environment`` for run time.
- There is no ``USER``: the user is created as in the Dockerfile, and later ``run`` steps are
  run as that user with ``su``; at run time Apptainer runs as the calling user anyway.
- ``entrypoint`` becomes ``%runscript`` (``exec <args> "$@"``).

Build with ``apptainer build image.sif Singularity`` from the build context directory.
"""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath

from neurodesk.recipe.context import LOCALS_DIR, RenderContext
from neurodesk.recipe.model import Recipe
from neurodesk.recipe.plan import (
    MOUNT_POINTS,
    Copy,
    Entrypoint,
    Env,
    Install,
    Run,
    User,
    Workdir,
    make_plan,
)
from neurodesk.recipe.render_docker import HEADER, TZDATA, create_user, install_line
from neurodesk.recipe.shell import double_quote, join_commands

STAGE = "/.neurodesk/stage"


def _bootstrap(base_image: str) -> tuple[str, str]:
    for prefix, agent in (("docker://", "docker"), ("library://", "library"), ("oras://", "oras")):
        if base_image.startswith(prefix):
            return agent, base_image[len(prefix) :]
    return "docker", base_image


def render_apptainer(recipe: Recipe, ctx: RenderContext | None = None) -> str:
    ctx = ctx or RenderContext(recipe)
    plan = make_plan(recipe, ctx)
    files = ["README.md /README.md", "build.yaml /build.yaml"]
    post = ["mkdir -p " + " ".join(MOUNT_POINTS)]
    environment: list[tuple[str, str]] = []
    runscript: list[str] = []
    users = {"root"}
    user = "root"
    workdir = "/"

    def export(items: list[tuple[str, str]]) -> None:
        environment.extend(items)
        post.extend(f"export {k}={double_quote(v)}" for k, v in items)

    if plan.add_tzdata and plan.pkg_manager == "apt":
        export([("DEBIAN_FRONTEND", "noninteractive"), ("TZ", "UTC")])
        post.extend([install_line("apt", ["tzdata"]), TZDATA])
    for index, step in enumerate(plan.steps):
        if isinstance(step, Install):
            post.append(install_line(plan.pkg_manager, step.packages))
        elif isinstance(step, Run):
            body = "\n".join(join_commands(step.commands))
            if not body:
                continue
            if user == "root":
                post.append(f"cd {shlex.quote(workdir)}")
                post.append(body)
            else:
                script = f"cd {shlex.quote(workdir)} && {body}"
                post.append(f"su -s /bin/sh {user} -c {shlex.quote(script)}")
        elif isinstance(step, Env):
            export(step.items)
        elif isinstance(step, Workdir):
            workdir = step.path
            post.append(f"mkdir -p {shlex.quote(workdir)}")
        elif isinstance(step, User):
            if step.name not in users:
                post.append(create_user(step.name))
                users.add(step.name)
            user = step.name
        elif isinstance(step, Entrypoint):
            runscript = [f'exec {shlex.join(step.args)} "$@"']
        elif isinstance(step, Copy):
            stage = f"{STAGE}/{index}"
            names = [PurePosixPath(s).name for s in step.sources]
            files.extend(f"{s} {stage}/{n}" for s, n in zip(step.sources, names, strict=True))
            dest = step.dest if step.dest.startswith("/") else f"{workdir.rstrip('/')}/{step.dest}"
            if len(names) > 1 or dest.endswith("/"):
                post.append(f"mkdir -p {shlex.quote(dest)}")
                staged = " ".join(shlex.quote(f"{stage}/{n}") for n in names)
                post.append(f"cp -a {staged} {shlex.quote(dest)}")
            else:
                parent = str(PurePosixPath(dest).parent)
                post.append(f"mkdir -p {shlex.quote(parent)}")
                post.append(f"cp -a {shlex.quote(f'{stage}/{names[0]}')} {shlex.quote(dest)}")
    post.append(f"rm -rf {STAGE}")
    if plan.local_dirs:  # --local directories: present during %post only
        files.extend(f"{rel} {LOCALS_DIR}/{rel.removeprefix('local/')}" for rel in plan.local_dirs)
        post.append(f"rm -rf {LOCALS_DIR}")
    environment.extend(
        [("DEPLOY_PATH", ":".join(plan.deploy_path)), ("DEPLOY_BINS", ":".join(plan.deploy_bins))]
    )

    agent, image = _bootstrap(plan.base_image)
    out = [HEADER, f"Bootstrap: {agent}", f"From: {image}", "", "%files"]
    out += [f"    {line}" for line in files]
    out += ["", "%post", *post, "", "%environment"]
    out += [f"    export {k}={double_quote(v)}" for k, v in environment]
    if runscript:
        out += ["", "%runscript", *(f"    {line}" for line in runscript)]
    out += [
        "",
        "%labels",
        f"    org.opencontainers.image.title {recipe.name}",
        f"    org.opencontainers.image.version {recipe.version}",
    ]
    if recipe.epoch is not None:
        out.append(f"    org.neurodesk.epoch {recipe.epoch}")
    return "\n".join(out) + "\n"
