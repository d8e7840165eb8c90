"""The ``template`` directive: neurodocker's 20 install templates (fsl, afni, ants, ...).

Why neurodocker's *data* with our own small renderer, rather than neurodocker as a library:

- The templates (which versions exist, their download URLs, dependency lists per package
  manager, environment, install steps) are the valuable, maintained part; we read them from the
  installed ``neurodocker`` distribution (a runtime dependency), so new neurodocker releases
  bring new versions without a change here, and we do not copy upstream's code.
- Its library API is not a good fit: ``import neurodocker`` takes 5-8 s here (it validates every
  template with jsonschema, whose format checkers build a grammar at import), which would land
  on every ``neurodesk recipe`` command and make a thousands-of-recipes property test
  impossible; its renderers keep a global mutable registry and monkeypatch template objects;
  they emit a whole Dockerfile/Singularity file (with a JSON spec and ``_default`` entrypoint)
  where we need one step in our own output; and version lists in its errors come from sets
  (nondeterministic order). We locate the package's ``templates/`` directory with
  ``importlib.util.find_spec`` (which does not import it) and read the YAML.

A template instance is rendered as upstream does: arguments (required + optional with
defaults, all strings) are attributes of ``self``; ``self.urls``, ``self.pkg_manager``,
``self.install_dependencies()`` and ``self.install([...])`` are available; strings are rendered
repeatedly until no Jinja is left (defaults refer to other arguments). The result is an
environment mapping plus a shell script; the Dockerfile and Apptainer renderers place both.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

import jinja2
import jinja2.sandbox
import yaml

from neurodesk.errors import NotFoundError
from neurodesk.recipe.slim import apt_cleanup

TEMPLATE_NAMES: tuple[str, ...] = (
    "afni",
    "ants",
    "bids_validator",
    "cat12",
    "convert3d",
    "dcm2niix",
    "freesurfer",
    "fsl",
    "jq",
    "matlabmcr",
    "minc",
    "miniconda",
    "mricron",
    "mrtrix3",
    "ndfreeze",
    "neurodebian",
    "niftyreg",
    "petpvc",
    "spm12",
    "vnc",
)
METHODS = ("binaries", "source")
# Upstream's builder ships its own copies of 12 of these templates (afni, ants, bids_validator,
# convert3d, dcm2niix, freesurfer, fsl, matlabmcr, minc, miniconda, mrtrix3, spm12) with a few
# arguments neurodocker's lack. Their names and defaults (facts of that format), and what each
# changes here: a dependency package it names, or a step around the install script.
UPSTREAM_ARGUMENTS: dict[tuple[str, str], dict[str, str]] = {
    ("fsl", "binaries"): {"fslpython_debug": "false", "fslpython_accept_tos": "false"},
    ("matlabmcr", "binaries"): {"ncurses_package": "libncurses6"},
    ("mrtrix3", "binaries"): {"libtiff_package": "libtiff6"},
}
# An argument naming the apt package that replaces the template's own (by name prefix).
PACKAGE_ARGUMENTS: dict[tuple[str, str], str] = {
    ("matlabmcr", "ncurses_package"): "libncurses",
    ("mrtrix3", "libtiff_package"): "libtiff",
}
_TRUE = ("true", "y", "yes", "1")
# Keys of a template directive that are not template arguments.
DIRECTIVE_KEYS = ("name", "method")
# Attributes of `self` inside a template; arguments may not shadow them.
_RESERVED = frozenset(
    {"urls", "pkg_manager", "install", "install_dependencies", "dependencies", "env"}
)

_ENV = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined)
# Templates say `self.version`, but Jinja reserves `self` (a reference to the template's
# blocks), so it is renamed before compiling.
_SELF = re.compile(r"(?<![\w.])self\.")


class TemplateProblem(Exception):
    """A template directive that cannot be rendered; ``key`` is the offending argument."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason


def _raise(message: str) -> NoReturn:
    raise TemplateProblem("name", str(message))


_ENV.globals["raise"] = _raise


def templates_dir() -> Path:
    spec = importlib.util.find_spec("neurodocker")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "templates"
        if candidate.is_dir():
            return candidate
    raise NotFoundError(
        "neurodocker's template data is not installed",
        hint="pip install 'neurodocker>=2.1' (it ships the install templates)",
    )


@lru_cache(maxsize=32)
def load_template(name: str) -> dict[str, Any]:
    """The parsed template ``name`` (one of TEMPLATE_NAMES)."""
    if name not in TEMPLATE_NAMES:
        raise TemplateProblem(
            "name", f"unknown template '{name}'; known: {', '.join(TEMPLATE_NAMES)}"
        )
    path = templates_dir() / f"{name}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise NotFoundError(f"cannot read template {path}: {exc}") from None
    if not isinstance(data, dict):
        raise NotFoundError(f"template {path} is not a mapping")
    return data


def methods_of(name: str) -> list[str]:
    return [m for m in METHODS if m in load_template(name)]


def versions_of(name: str, method: str) -> list[str] | None:
    """Known versions (sorted), or None when any version is accepted."""
    part = load_template(name).get(method) or {}
    if method == "source" or "*" in (part.get("urls") or {}):
        return None
    return sorted(str(v) for v in (part.get("urls") or {}))


def _method(name: str, body: dict[str, Any]) -> str:
    method = body.get("method")
    available = methods_of(name)
    if method is None:
        return "binaries" if "binaries" in available else "source"
    if method not in available:
        raise TemplateProblem(
            "method", f"template '{name}' has no method '{method}'; use one of {available}"
        )
    return str(method)


def check_arguments(body: dict[str, Any]) -> None:
    """Static checks (name, method, arguments, version); raise TemplateProblem."""
    name = body.get("name")
    if not isinstance(name, str):
        raise TemplateProblem("name", "a template needs a 'name'")
    template = load_template(name)
    method = _method(name, body)
    part = template[method]
    arguments = part.get("arguments") or {}
    required = [str(a) for a in arguments.get("required") or []]
    optional = {str(k): v for k, v in (arguments.get("optional") or {}).items()}
    optional.update(UPSTREAM_ARGUMENTS.get((name, method), {}))
    given = {k: v for k, v in body.items() if k not in DIRECTIVE_KEYS}
    for key, value in given.items():
        if key in _RESERVED:
            raise TemplateProblem(key, f"'{key}' is reserved inside templates")
        if key not in required and key not in optional:
            known = sorted([*required, *optional])
            raise TemplateProblem(
                key, f"template '{name}' ({method}) takes no '{key}'; it takes {known}"
            )
        if isinstance(value, dict | list) or value is None:
            raise TemplateProblem(key, "template arguments are strings, numbers or booleans")
    missing = [k for k in required if k not in given]
    if missing:
        raise TemplateProblem(missing[0], f"template '{name}' ({method}) needs '{missing[0]}'")
    versions = versions_of(name, method)
    if "version" in required and versions is not None:
        version = str(given["version"])
        if version not in versions and "{" not in version:
            raise TemplateProblem(
                "version",
                f"'{version}' is not a known {name} version ({method});"
                f" known: {', '.join(versions)}",
            )


@dataclass(frozen=True)
class TemplateOutput:
    env: list[tuple[str, str]]
    script: str


class _Self:
    """``self`` inside a template: its arguments plus the helper methods."""

    def __init__(self, part: dict[str, Any], pkg_manager: str, args: dict[str, str]) -> None:
        self.__dict__.update(args)
        self.urls = {str(k): str(v) for k, v in (part.get("urls") or {}).items()}
        self.pkg_manager = pkg_manager
        self._deps = part.get("dependencies") or {}
        self.env = {str(k): str(v) for k, v in (part.get("env") or {}).items()}

    def dependencies(self, pkg_manager: str) -> list[str]:
        return [str(p) for p in self._deps.get(pkg_manager) or []]

    def replace_dependency(self, prefix: str, package: str) -> None:
        """Use ``package`` instead of the apt dependency whose name starts with ``prefix``."""
        apt = [str(p) for p in self._deps.get("apt") or []]
        kept = [p for p in apt if not p.startswith(prefix)]
        self._deps = {**self._deps, "apt": [*kept, package]}

    def install(self, pkgs: list[str], opts: str | None = None) -> str:
        return install_command([str(p) for p in pkgs], self.pkg_manager, opts)

    def install_dependencies(self, opts: str | None = None) -> str:
        out = []
        pkgs = self.dependencies(self.pkg_manager)
        if pkgs:
            out.append(install_command(pkgs, self.pkg_manager, opts))
        debs = self.dependencies("debs") if self.pkg_manager == "apt" else []
        if debs:
            out.append(install_debs(debs))
        return "\n".join(out)


def install_command(pkgs: list[str], pkg_manager: str, opts: str | None = None) -> str:
    """Multi-line install script for a template (one command per line)."""
    if pkg_manager == "apt":
        flags = "-q --no-install-recommends" if opts is None else opts
        install = f"DEBIAN_FRONTEND=noninteractive apt-get install -y {flags} {' '.join(pkgs)}"
        return "\n".join(["apt-get update -qq", install, *apt_cleanup()])
    flags = "-q" if opts is None else opts
    return f"yum install -y {flags} {' '.join(pkgs)}\nyum clean all\nrm -rf /var/cache/yum/*"


def install_debs(urls: list[str]) -> str:
    lines = []
    for i, url in enumerate(urls):
        lines.append(f"curl -fsSL --retry 5 -o /tmp/neurodesk-{i}.deb {url}")
        lines.append(f"apt-get install -y -q /tmp/neurodesk-{i}.deb")
        lines.append(f"rm /tmp/neurodesk-{i}.deb")
    lines.extend(apt_cleanup())
    return "\n".join(lines)


def _render(text: str, me: _Self) -> str:
    # Defaults refer to other arguments ("/opt/fsl-{{ self.version }}"): render to a fixpoint.
    for _ in range(10):
        if "{{" not in text and "{%" not in text:
            return text
        try:
            text = _ENV.from_string(_SELF.sub("this.", text)).render({"this": me})
        except TemplateProblem:
            raise
        except jinja2.TemplateError as exc:
            raise TemplateProblem("name", f"template rendering failed: {exc}") from None
        except Exception as exc:
            raise TemplateProblem(
                "name", f"template rendering failed: {type(exc).__name__}"
            ) from None
    raise TemplateProblem("name", "template values refer to each other in a loop")


def render_template(body: dict[str, Any], pkg_manager: str, arch: str = "x86_64") -> TemplateOutput:
    """Render a template directive whose argument values are already rendered strings.

    ``arch`` is the image's architecture: a template that takes an ``arch`` argument (miniconda)
    gets it unless the recipe gives one, as upstream's builder does.
    """
    check_arguments(body)
    name = str(body["name"])
    method = _method(name, body)
    part = load_template(name)[method]
    arguments = part.get("arguments") or {}
    args = {str(k): str(v) for k, v in (arguments.get("optional") or {}).items()}
    args.update(UPSTREAM_ARGUMENTS.get((name, method), {}))
    if "arch" in args:
        args["arch"] = arch
    args.update({k: _as_str(v) for k, v in body.items() if k not in DIRECTIVE_KEYS})
    me = _Self(part, pkg_manager, args)
    for key in list(args):  # resolve argument defaults first, as attributes other values use
        setattr(me, key, _render(args[key], me))
    for (template, key), prefix in PACKAGE_ARGUMENTS.items():
        if template == name and key in args:
            me.replace_dependency(prefix, getattr(me, key))
    env = [(_render(str(k), me), _render(str(v), me)) for k, v in (part.get("env") or {}).items()]
    script = _render(str(part.get("instructions") or ""), me).strip()
    if name == "fsl":
        script = _fsl_extras(script, me)
    return TemplateOutput(env, script)


def _fsl_extras(script: str, me: _Self) -> str:
    """upstream's fsl arguments: accept conda's terms non-interactively; show logs on failure."""
    lines = []
    if str(getattr(me, "fslpython_accept_tos", "")).lower() in _TRUE:
        lines.append("export CONDA_PLUGINS_AUTO_ACCEPT_TOS=yes")
    if str(getattr(me, "fslpython_debug", "")).lower() in _TRUE:
        lines.append(
            "trap '[ $? -eq 0 ] || cat /tmp/fslpython*/*.log /tmp/fsl_installation*.log"
            " 2>/dev/null || true' EXIT"
        )
    return "\n".join([*lines, script]) if lines else script


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
