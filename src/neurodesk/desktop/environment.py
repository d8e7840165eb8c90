"""What the desktop's JupyterLab server runs with: directories, environment, token, address.

Everything Jupyter needs from us lives under ``$NEURODESK_HOME/desktop``::

    jupyter/kernels/nd-*/kernel.json     container kernels (on JUPYTER_PATH)
    jupyter/labextensions/neurodesk/     the launcher entry (on JUPYTER_PATH)
    config/jupyter_server_config.d/      enables our server extension (on JUPYTER_CONFIG_PATH)
    config/jupyter_server_config.json    terminal shell settings
    bashrc                               terminals: the user's rc, then Lmod, then our PATH

Terminals and host kernels inherit the server's environment, so putting the wrapper directories
on PATH and the module directory on MODULEPATH here is what makes tools run by name in them.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from neurodesk.desktop.catalog import list_tools
from neurodesk.desktop.lmod import LMOD_CMD
from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from neurodesk.store.atomic import write_text

EXTENSION_MODULE = "neurodesk.desktop.extension"
LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")
TOKEN_ENV = "NEURODESK_DESKTOP_TOKEN"
MIN_TOKEN_LENGTH = 16


class DesktopError(NeurodeskError):
    """The desktop cannot start as asked (unsafe address or token, server failure)."""


@dataclass(frozen=True)
class DesktopDirs:
    root: Path

    @classmethod
    def of(cls, paths: Paths) -> DesktopDirs:
        return cls(paths.home / "desktop")

    @property
    def jupyter_path(self) -> Path:
        return self.root / "jupyter"

    @property
    def kernels(self) -> Path:
        return self.jupyter_path / "kernels"

    @property
    def labextensions(self) -> Path:
        return self.jupyter_path / "labextensions"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def bashrc(self) -> Path:
        return self.root / "bashrc"

    @property
    def vnc(self) -> Path:
        return self.root / "vnc"


def modules_dir(paths: Paths) -> Path:
    """Where install writes Lmod module files: ``<install prefix>/modules/<name>/<version>.lua``."""
    return paths.installs / "modules"


def is_loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def choose_token(environ: Mapping[str, str]) -> str:
    """A fresh random token, or the one in $NEURODESK_DESKTOP_TOKEN; never an empty one."""
    if TOKEN_ENV not in environ:
        return secrets.token_urlsafe(32)
    token = environ[TOKEN_ENV]
    if len(token) < MIN_TOKEN_LENGTH or token != token.strip():
        raise DesktopError(
            f"${TOKEN_ENV} must be at least {MIN_TOKEN_LENGTH} characters without spaces",
            hint=f"unset it for a random token, or: export {TOKEN_ENV}=$(openssl rand -hex 24)",
        )
    return token


def tool_path(paths: Paths) -> list[str]:
    """Wrapper directories of installed tools, the newest version of each name first."""
    # list_tools sorts by name then version: reversed, each name's newest version comes first.
    return [t.bin_dir for t in reversed(list_tools(paths)) if t.bin_dir]


def lmod_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Lmod settings for everything the server starts (terminals, kernels, GUI apps).

    No pager: ``module avail``/``spider``/``help`` print and return instead of waiting in
    ``less`` (a kernel or a script has no one to press q). LMOD_CMD lets a host kernel's
    ``%module`` find Lmod.
    """
    env = {"LMOD_PAGER": "none"}
    if "LMOD_CMD" not in environ and LMOD_CMD.is_file():
        env["LMOD_CMD"] = str(LMOD_CMD)
    return env


def server_env(
    paths: Paths, dirs: DesktopDirs, token: str, environ: Mapping[str, str]
) -> dict[str, str]:
    env = dict(environ)
    env["NEURODESK_HOME"] = str(paths.home)
    env["JUPYTER_TOKEN"] = token
    env.pop(TOKEN_ENV, None)
    env["JUPYTER_PATH"] = os.pathsep.join(
        [str(dirs.jupyter_path), *filter(None, environ.get("JUPYTER_PATH", "").split(os.pathsep))]
    )
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        [str(dirs.config), *filter(None, environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep))]
    )
    env.update(lmod_env(environ))
    modules = str(modules_dir(paths))
    others = [p for p in environ.get("MODULEPATH", "").split(":") if p and p != modules]
    env["MODULEPATH"] = ":".join([modules, *others])
    host_path = [p for p in environ.get("PATH", os.defpath).split(":") if p]
    env["PATH"] = ":".join([*tool_path(paths), *host_path])
    return env


def _bashrc(paths: Paths) -> str:
    # Login shells would run /etc/profile, which resets PATH on Debian; so terminals start an
    # interactive non-login bash with this file instead, then re-apply our PATH and MODULEPATH.
    lines = [
        "# written by 'neurodesk desktop': the shell of JupyterLab terminals",
        "nd_path=$PATH nd_modulepath=$MODULEPATH",
        "[ -f /etc/bash.bashrc ] && . /etc/bash.bashrc",
        '[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"',
        f"[ -f {shlex.quote(str(LMOD_INIT))} ] && . {shlex.quote(str(LMOD_INIT))}",
        'export PATH="$nd_path" MODULEPATH="$nd_modulepath"',
        "unset nd_path nd_modulepath",
        # Lmod in a terminal: no pager unless the user's rc chose one; messages on stdout so
        # 'module avail | grep x' works.
        'export LMOD_PAGER="${LMOD_PAGER:-none}" LMOD_REDIRECT="${LMOD_REDIRECT:-yes}"',
        "",
    ]
    return "\n".join(lines)


def write_config(paths: Paths, dirs: DesktopDirs) -> None:
    """The Jupyter configuration that enables our extension and sets the terminals' shell."""
    write_text(dirs.bashrc, _bashrc(paths))
    enable = {"ServerApp": {"jpserver_extensions": {EXTENSION_MODULE: True}}}
    write_text(
        dirs.config / "jupyter_server_config.d" / "neurodesk.json", json.dumps(enable, indent=2)
    )
    terminals = {
        "ServerApp": {
            "terminado_settings": {"shell_command": ["bash", "--rcfile", str(dirs.bashrc), "-i"]}
        }
    }
    write_text(dirs.config / "jupyter_server_config.json", json.dumps(terminals, indent=2))
    # Desktops often run offline (clusters, air-gapped labs): no news feed, no update check.
    quiet = {
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}
    }
    write_text(dirs.config / "jupyter_lab_config.json", json.dumps(quiet, indent=2))
