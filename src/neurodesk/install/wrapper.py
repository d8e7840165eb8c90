"""Rendering the per-command wrapper script: the shell rendition of runtime/spec.py's rules.

The constants (system directories, passed-through variables, bind-path variables, the image's
environment) come from the runtime, so ``neurodesk exec`` and a wrapper decide alike.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from neurodesk import __version__
from neurodesk.install.layout import STORE_LINK, UP_TO_PREFIX
from neurodesk.install.templating import render
from neurodesk.runtime.bwrap import image_args
from neurodesk.runtime.spec import (
    BINDPATH_VARS,
    PASSTHROUGH_ENV,
    PASSTHROUGH_PREFIXES,
    SYSTEM_DIRS,
    container_env,
)
from neurodesk.store import ImageRecord

ROOT_VAR = "$nd_root"

# A shell cannot list its environment without forking, so variables passed through by prefix
# (LC_*) are spelled out: the POSIX locale categories plus glibc's.
LOCALE_VARS = (
    "LC_ALL",
    "LC_CTYPE",
    "LC_COLLATE",
    "LC_MESSAGES",
    "LC_MONETARY",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_ADDRESS",
    "LC_IDENTIFICATION",
    "LC_MEASUREMENT",
    "LC_NAME",
    "LC_PAPER",
    "LC_TELEPHONE",
)


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


def _passthrough() -> list[str]:
    names = list(PASSTHROUGH_ENV)
    names += [v for v in LOCALE_VARS if v.startswith(PASSTHROUGH_PREFIXES) and v not in names]
    return [f'${{{n}:+--setenv {n} "${n}"}}' for n in names]


def rootfs_in_store(record: ImageRecord) -> str | None:
    """The image's root filesystem relative to its store (``images/<hex>/rootfs``), if inside.

    Images used in place (a sandbox directory on CVMFS, say) live outside the store: wrappers
    refer to those by their fixed location.
    """
    if not record.rootfs.is_relative_to(record.store_root):
        return None
    return os.path.relpath(record.rootfs, record.store_root)


def render_wrapper(
    record: ImageRecord,
    command: str,
    wrapper_dir: Path | None = None,
    root_beside: str | None = None,
) -> str:
    """The wrapper for ``command``. ``wrapper_dir`` is unused: every path is relative.

    ``root_beside`` places the image's root filesystem relative to the wrapper's own directory
    (a published tree keeps the sandbox next to its wrappers) instead of in the store.
    """
    # The image's own variables first; host variables passed through come later and win.
    static_env = container_env(record, {})
    env_words = [w for k, v in sorted(static_env.items()) for w in ("--setenv", k, v)]
    system_case = "|".join(f"{d}|{d}/*" for d in SYSTEM_DIRS) + "|/"
    return render(
        "wrapper.sh.j2",
        command=command,
        image_id=record.id,
        name=record.name,
        version=record.version,
        neurodesk_version=__version__,
        up_to_prefix=UP_TO_PREFIX,
        store_link=STORE_LINK,
        root_beside=root_beside,
        rootfs_in_store=rootfs_in_store(record),
        rootfs_at_install=str(record.rootfs),
        image_args=" \\\n    ".join(
            _shell_words(group) for group in _by_option(image_args(record.rootfs, ROOT_VAR))
        ),
        env_args=" \\\n    ".join(_shell_words(g) for g in _by_option(env_words)),
        passthrough_args=" ".join(_passthrough()),
        bindpath_expr=",".join(f"${{{v}:-}}" for v in BINDPATH_VARS),
        bindpath_vars=BINDPATH_VARS,
        system_case=system_case,
    )
