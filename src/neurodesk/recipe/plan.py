"""Expand a recipe's directives into a flat list of build steps, shared by both renderers.

Conditions are evaluated, groups/includes flattened with their ``with:`` variables,
``variables`` directives update ``local.*`` for the directives after them (scoped to their
group, as upstream), templates are rendered, ``deploy`` directives collected, and every file
the build context needs is listed (``context_files``: context path -> where it comes from).
The renderers only translate steps; the same recipe always yields the same steps.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from neurodesk.errors import NotFoundError, ValidationError
from neurodesk.recipe.context import FILES_DIR, RenderContext
from neurodesk.recipe.directives import (
    MAX_INCLUDE_DEPTH,
    directive_kind,
    read_include,
    resolve_include,
)
from neurodesk.recipe.model import Deploy, FileSpec, Recipe
from neurodesk.recipe.slim import apt_cleanup
from neurodesk.recipe.templates import TemplateProblem, render_template
from neurodesk.recipe.tests import one_line

# Empty directories every image carries so common host data paths can be bound in
# (upstream's global mount point list, plus /home).
MOUNT_POINTS: tuple[str, ...] = (
    "/afm01", "/afm02", "/cvmfs", "/90days", "/30days", "/QRISdata", "/RDS", "/data", "/short",
    "/proc_temp", "/TMPDIR", "/nvme", "/neurodesktop-storage", "/local", "/gpfs1", "/working",
    "/winmounts", "/state", "/tmp", "/autofs", "/cluster", "/local_mount", "/scratch",
    "/clusterdata", "/nvmescratch", "/home",
)  # fmt: skip


@dataclass(frozen=True)
class Install:
    packages: list[str]


@dataclass(frozen=True)
class Run:
    """Shell commands run in order; each stops the build on failure.

    ``locals`` names the ``--local`` directories the commands read (``get_local``): they are
    bound read-only at ``LOCALS_DIR/<key>`` for this step only.
    """

    commands: list[str]
    where: str
    locals: tuple[str, ...] = ()


@dataclass(frozen=True)
class Env:
    items: list[tuple[str, str]]


@dataclass(frozen=True)
class Workdir:
    path: str


@dataclass(frozen=True)
class User:
    name: str


@dataclass(frozen=True)
class Entrypoint:
    args: list[str]


@dataclass(frozen=True)
class Copy:
    """Copy build-context paths ``sources`` to ``dest`` in the image."""

    sources: list[str]
    dest: str


Step = Install | Run | Env | Workdir | User | Entrypoint | Copy


@dataclass(frozen=True)
class ContextFile:
    """A file the build context needs: from bytes, a file on disk, or a URL (downloaded)."""

    data: bytes | None = None
    path: Path | None = None
    spec: FileSpec | None = None
    executable: bool = False
    # A 'filename:' that is not in the recipe directory: upstream's builder compiles such a
    # recipe and fails only when it builds, so `recipe check` warns and the build refuses.
    missing: str | None = None


@dataclass
class Plan:
    base_image: str
    pkg_manager: str
    steps: list[Step] = field(default_factory=list)
    deploy_path: list[str] = field(default_factory=list)
    deploy_bins: list[str] = field(default_factory=list)
    context_files: dict[str, ContextFile] = field(default_factory=dict)
    add_tzdata: bool = False
    # --local directories used by the build: context path "local/<key>" -> host directory.
    local_dirs: dict[str, Path] = field(default_factory=dict)


def _fail(ctx: RenderContext, where: str, reason: str, hint: str | None = None) -> ValidationError:
    prefix = f"{ctx.recipe.source}: " if ctx.recipe.source is not None else ""
    line = one_line(f"{prefix}{where}: {reason}")
    return ValidationError(line, [line], hint=hint)


# A user is a name or uid (optionally :group), or a shell variable set earlier (${NB_UID}).
_USER = re.compile(r"[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?")
_SHELL_USER = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?(:\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)?")

STARTUP = "/neurodocker/startup.sh"


def _startup_script() -> list[str]:
    return [
        "mkdir -p /neurodocker",
        f"if [ ! -f {STARTUP} ]; then"
        f" printf '%s\\n' '#!/usr/bin/env bash' 'set -e' 'export USER=\"${{USER:=$(whoami)}}\"'"
        f' \'if [ -n "$1" ]; then "$@"; else /usr/bin/env bash; fi\' > {STARTUP}; fi',
        "chmod -R 777 /neurodocker && chmod a+s /neurodocker",
    ]


def default_template(pkg_manager: str, recipe: Recipe) -> list[Step]:
    """What upstream's builder adds first unless ``add-default-template: false``: an en_US.UTF-8
    locale, the basic download tools, a world-writable /opt and the startup entrypoint."""
    env = Env([("LANG", "en_US.UTF-8"), ("LC_ALL", "en_US.UTF-8"), ("ND_ENTRYPOINT", STARTUP)])
    where = "build.add-default-template"
    if pkg_manager == "apt":
        commands = [
            "apt-get update -qq",
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends"
            " apt-utils bzip2 ca-certificates curl locales unzip",
            *apt_cleanup(),
            "sed -i -e 's/# en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen",
            "dpkg-reconfigure --frontend=noninteractive locales",
            'update-locale LANG="en_US.UTF-8"',
        ]
    else:
        commands = [
            "yum install -y -q bzip2 ca-certificates glibc-langpack-en glibc-locale-source unzip",
            "yum clean all",
            "rm -rf /var/cache/yum/*",
        ]
        if not recipe.build.fix_locale_def:
            commands.append("localedef -i en_US -f UTF-8 en_US.UTF-8")
    commands += ["chmod 777 /opt && chmod a+s /opt", *_startup_script()]
    return [env, Run(commands, where)]


def _safe_relative(name: str) -> bool:
    p = PurePosixPath(name)
    return bool(name) and not p.is_absolute() and ".." not in p.parts and "\\" not in name


class Planner:
    def __init__(self, recipe: Recipe, ctx: RenderContext) -> None:
        self.recipe = recipe
        self.ctx = ctx
        base = ctx.render(recipe.build.base_image, "build.base-image").strip()
        if not base or any(c.isspace() for c in base):
            raise _fail(ctx, "build.base-image", f"not an image reference: {base!r}")
        self.plan = Plan(
            base_image=base,
            pkg_manager=recipe.build.pkg_manager,
            add_tzdata=recipe.build.tzdata,
        )
        self.include_depth = 0

    def build(self) -> Plan:
        if self.recipe.build.add_default_template:
            self.plan.steps.extend(default_template(self.plan.pkg_manager, self.recipe))
        for index, spec in enumerate(self.recipe.files):
            where = f"files[{index}]"
            if spec.condition is not None and not self.ctx.condition(
                spec.condition, f"{where}.condition"
            ):
                continue
            self._declare_file(spec, where)
        self._directives(self.recipe.build.directives, "build.directives", {})
        if self.recipe.build.add_default_template and not any(
            isinstance(step, Entrypoint) for step in self.plan.steps
        ):
            self.plan.steps.append(Entrypoint([STARTUP]))
        top = self.recipe.deploy
        # As upstream: deploy directives win; the top-level deploy applies when they give none.
        if not self.plan.deploy_path:
            self.plan.deploy_path = self._strings(top.path, "deploy.path", {})
        if not self.plan.deploy_bins:
            self.plan.deploy_bins = self._strings(top.bins, "deploy.bins", {})
        # Entries are joined with ':' into DEPLOY_PATH/DEPLOY_BINS, so "a:b" is two entries.
        self.plan.deploy_path = [p for e in self.plan.deploy_path for p in e.split(":")]
        self.plan.deploy_bins = [b for e in self.plan.deploy_bins for b in e.split(":")]
        for where, items in (
            ("deploy.path", self.plan.deploy_path),
            ("deploy.bins", self.plan.deploy_bins),
        ):
            bad = [i for i in items if not i or ":" in i or "\n" in i]
            if bad:
                raise _fail(self.ctx, where, f"entries may not be empty or contain ':' ({bad})")
        return self.plan

    # -- walking ------------------------------------------------------------------------------

    def _directives(self, directives: list[Any], where: str, local: dict[str, Any]) -> None:
        for index, directive in enumerate(directives):
            self._one(directive, f"{where}[{index}]", local)

    def _one(self, directive: dict[str, Any], where: str, local: dict[str, Any]) -> None:
        kind = directive_kind(directive)
        if kind is None:
            raise _fail(self.ctx, where, "a directive has exactly one kind")
        if "condition" in directive and not self.ctx.condition(
            directive["condition"], f"{where}.condition", local
        ):
            return
        getattr(self, f"_{kind}")(directive, directive[kind], f"{where}.{kind}", local)

    def _render(self, value: Any, where: str, local: dict[str, Any]) -> str:
        if isinstance(value, bool | int | float):
            return str(value)
        return self.ctx.render(value, where, local)

    def _strings(self, value: Any, where: str, local: dict[str, Any]) -> list[str]:
        if isinstance(value, str):
            value = [value]
        return [self._render(v, f"{where}[{i}]", local) for i, v in enumerate(value)]

    # -- directive kinds ----------------------------------------------------------------------

    def _install(self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]) -> None:
        if isinstance(value, str):
            packages = self._render(value, where, local).split()
        else:
            packages = [p for v in self._strings(value, where, local) for p in v.split()]
        if not packages:
            raise _fail(self.ctx, where, "no packages left after rendering")
        bad = [p for p in packages if not all(c.isalnum() or c in ".+-:=~_*/" for c in p)]
        if bad:
            raise _fail(self.ctx, where, f"not a package name: {bad}")
        self.plan.steps.append(Install(packages))

    def _run(self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]) -> None:
        used_before = len(self.ctx.used_locals)
        commands = [c for c in self._strings(value, where, local) if c.strip()]
        used = tuple(dict.fromkeys(self.ctx.used_locals[used_before:]))
        for key in used:
            self.plan.local_dirs[f"local/{key}"] = Path(self.ctx.locals[key])
        if commands:
            self.plan.steps.append(Run(commands, where, used))

    def _workdir(self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]) -> None:
        path = self._render(value, where, local).strip()
        if not path.startswith("/") or "\n" in path:
            raise _fail(self.ctx, where, f"workdir must be an absolute path, got {path!r}")
        self.plan.steps.append(Workdir(path))

    def _user(self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]) -> None:
        name = self._render(value, where, local).strip()
        if not (_USER.fullmatch(name) or _SHELL_USER.fullmatch(name)):
            raise _fail(self.ctx, where, f"not a user name, uid or ${{VARIABLE}}: {name!r}")
        self.plan.steps.append(User(name))

    def _entrypoint(self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]) -> None:
        text = self._render(value, where, local)
        try:
            args = shlex.split(text)
        except ValueError as exc:
            raise _fail(self.ctx, where, f"cannot split into arguments: {exc}") from None
        if not args:
            raise _fail(self.ctx, where, "an entrypoint needs a command")
        self.plan.steps.append(Entrypoint(args))

    def _environment(
        self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]
    ) -> None:
        items = []
        for key, item in value.items():
            name = self._render(str(key), f"{where}.{key}", local)
            text = self._render(item, f"{where}.{key}", local)
            if not name.isidentifier():
                raise _fail(self.ctx, f"{where}.{key}", f"not an environment name: {name!r}")
            if any(ord(c) < 32 for c in text):
                raise _fail(self.ctx, f"{where}.{key}", "environment values are one line of text")
            items.append((name, text))
        self.plan.steps.append(Env(items))

    def _copy(self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]) -> None:
        parts = (
            self._render(value, where, local).split()
            if isinstance(value, str)
            else self._strings(value, where, local)
        )
        if len(parts) < 2:
            raise _fail(self.ctx, where, "copy needs one or more sources and a destination")
        *sources, dest = parts
        context_paths = []
        for source in sources:
            if source in self.ctx.files:  # a declared file (files: or a file directive)
                context_paths.append(f"files/{source}")
                continue
            if not _safe_relative(source):
                raise _fail(
                    self.ctx,
                    where,
                    f"copy sources are paths inside the recipe directory: {source!r}",
                )
            on_disk = self.recipe.source_dir / source
            if not (on_disk.is_file() or on_disk.is_dir()):
                raise _fail(self.ctx, where, f"{source} not found in {self.recipe.source_dir}")
            self.plan.context_files[f"recipe/{source}"] = ContextFile(path=on_disk)
            context_paths.append(f"recipe/{source}")
        self.plan.steps.append(Copy(context_paths, dest))

    def _file(self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]) -> None:
        rendered = self.ctx.evaluate(value, where, local)
        try:
            spec = FileSpec.model_validate(rendered)
        except PydanticValidationError as exc:
            raise _fail(self.ctx, where, exc.errors()[0]["msg"]) from None
        self._declare_file(spec, where, lambda text, _where: text)

    def _declare_file(self, spec: FileSpec, where: str, render: Any = None) -> None:
        render = render or self.ctx.render
        name = render(spec.name, f"{where}.name")
        if not _safe_relative(name) or "/" in name:
            raise _fail(self.ctx, f"{where}.name", f"a file name is one path component: {name!r}")
        spec = spec.model_copy(update={"name": name})
        if spec.contents is not None:
            data = render(spec.contents, f"{where}.contents").encode()
            source = ContextFile(data=data, executable=spec.executable)
        elif spec.filename is not None:
            filename = render(spec.filename, f"{where}.filename")
            on_disk = self.recipe.source_dir / filename
            if not _safe_relative(filename):
                raise _fail(
                    self.ctx,
                    f"{where}.filename",
                    f"a file of the recipe directory is a relative path inside it: {filename!r}",
                )
            missing = None
            if not on_disk.is_file():
                missing = _fail(
                    self.ctx,
                    f"{where}.filename",
                    f"{filename} not found in {self.recipe.source_dir}",
                    "add the file beside build.yaml",
                ).message
                if missing not in self.ctx.warnings:
                    self.ctx.warnings.append(missing)
            source = ContextFile(path=on_disk, executable=spec.executable, missing=missing)
        else:
            url = render(spec.url or "", f"{where}.url")
            if not url.startswith(("http://", "https://", "file://")):
                raise _fail(self.ctx, f"{where}.url", f"not an http(s) URL: {url!r}")
            spec = spec.model_copy(update={"url": url})
            source = ContextFile(spec=spec, executable=spec.executable)
        self.ctx.files[name] = spec
        self.plan.context_files[f"files/{name}"] = source
        self.plan.steps.append(Copy([f"files/{name}"], f"{FILES_DIR}/{name}"))

    def _template(self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]) -> None:
        body = {k: self._render(v, f"{where}.{k}", local) for k, v in value.items()}
        try:
            out = render_template(body, self.plan.pkg_manager, self.ctx.arch)
        except TemplateProblem as exc:
            raise _fail(self.ctx, f"{where}.{exc.key}", exc.reason) from None
        except NotFoundError:
            raise
        if out.env:
            self.plan.steps.append(Env(out.env))
        if out.script:
            self.plan.steps.append(Run([out.script], where))

    def _with(self, d: dict[str, Any], where: str, local: dict[str, Any]) -> dict[str, Any]:
        scoped = dict(local)
        for key, value in (d.get("with") or {}).items():
            base = where.rsplit(".", 1)[0]
            scoped[key] = self.ctx.evaluate(value, f"{base}.with.{key}", scoped)
        return scoped

    def _group(self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]) -> None:
        self._directives(value, where, self._with(d, where, local))

    def _include(self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]) -> None:
        name = self._render(value, where, local)
        path = resolve_include(name, self.recipe.source_dir)
        if path is None:
            raise _fail(self.ctx, where, f"include file '{name}' not found")
        if self.include_depth >= MAX_INCLUDE_DEPTH:
            raise _fail(self.ctx, where, f"includes nest deeper than {MAX_INCLUDE_DEPTH}")
        directives, problem = read_include(path)
        if problem or directives is None:
            raise _fail(self.ctx, where, problem or "bad include")
        from neurodesk.recipe.directives import DirectiveChecker

        problems: list[str] = []
        checker = DirectiveChecker(
            path.parent,
            lambda w, r: problems.append(one_line(f"{path}: {w}: {r}")),
            lambda p: lambda w, r: problems.append(one_line(f"{p}: {w}: {r}")),
        )
        checker.check_list(directives, "directives")
        if problems:
            raise ValidationError(problems[0], problems)
        self.include_depth += 1
        try:
            self._directives(directives, f"{where}({name}).directives", self._with(d, where, local))
        finally:
            self.include_depth -= 1

    def _variables(self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]) -> None:
        for key, item in value.items():
            local[key] = self.ctx.evaluate(item, f"{where}.{key}", local)

    def _test(self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]) -> None:
        return None  # tests run after the build, in the built image (see recipe.tests)

    def _deploy(self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]) -> None:
        try:
            deploy = Deploy.model_validate(value)
        except PydanticValidationError as exc:
            raise _fail(self.ctx, where, exc.errors()[0]["msg"]) from None
        self.plan.deploy_path.extend(self._strings(deploy.path, f"{where}.path", local))
        self.plan.deploy_bins.extend(self._strings(deploy.bins, f"{where}.bins", local))

    def _boutique(self, d: dict[str, Any], value: Any, where: str, local: dict[str, Any]) -> None:
        name = str(value["name"])
        try:
            data = (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
        except (TypeError, ValueError) as exc:
            raise _fail(self.ctx, where, f"not representable as JSON: {exc}") from None
        self.plan.context_files[f"boutique/{name}.json"] = ContextFile(data=data)
        self.plan.steps.append(Copy([f"boutique/{name}.json"], f"/boutique/{name}.json"))


def make_plan(recipe: Recipe, ctx: RenderContext | None = None) -> Plan:
    """The build steps of ``recipe`` (raises ValidationError naming the key path of a problem)."""
    return Planner(recipe, ctx or RenderContext(recipe)).build()
