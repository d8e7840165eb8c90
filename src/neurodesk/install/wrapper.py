"""Rendering the per-command wrapper script from the image and the runtime's rules."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import jinja2

from neurodesk import __version__
from neurodesk.runtime.bwrap import image_args
from neurodesk.runtime.spec import PASSTHROUGH_ENV, SYSTEM_DIRS, container_env
from neurodesk.store import ImageRecord

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("neurodesk.install", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)

ROOT_VAR = "$nd_root"


def _shell_words(words: list[str]) -> str:
    """Quote words for sh, leaving ``$nd_root`` expandable inside double quotes."""
    out = []
    for word in words:
        if word.startswith(ROOT_VAR):
            out.append('"' + word.replace('"', '\\"') + '"')
        else:
            out.append(shlex.quote(word))
    return " ".join(out)


def _by_option(words: list[str]) -> list[list[str]]:
    """Split an argument list into one group per ``--option`` (one line each in the script)."""
    groups: list[list[str]] = []
    for word in words:
        if word.startswith("--") or not groups:
            groups.append([])
        groups[-1].append(word)
    return groups


def render_wrapper(record: ImageRecord, command: str, wrapper_dir: Path) -> str:
    static_env = {k: v for k, v in container_env(record, {}).items() if k not in PASSTHROUGH_ENV}
    env_words = [w for k, v in sorted(static_env.items()) for w in ("--setenv", k, v)]
    system_case = "|".join(f"{d}|{d}/*" for d in ("/", *SYSTEM_DIRS) if d != "/") + "|/"
    return _TEMPLATES.get_template("wrapper.sh.j2").render(
        command=command,
        command_q=shlex.quote(command),
        image_id=record.id,
        name=record.name,
        version=record.version,
        neurodesk_version=__version__,
        rel_rootfs=shlex.quote(os.path.relpath(record.rootfs, wrapper_dir)),
        image_args=" \\\n  ".join(
            _shell_words(group) for group in _by_option(image_args(record.rootfs, ROOT_VAR))
        ),
        env_args=_shell_words(env_words),
        system_case=system_case,
    )
