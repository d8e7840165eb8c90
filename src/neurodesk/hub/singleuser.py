"""One user's server: the neurodesk desktop environment behind JupyterHub's login.

Started by the spawner as the user, with ``$HOME`` their home and the hub's variables
(:mod:`neurodesk.hub.spawners`). It builds the user's own ``NEURODESK_HOME`` in
``~/.neurodesk-hub`` whose ``store`` and ``installs`` are links into the shared site tree
(read-only: root owns it), links ``~/shared-data`` and ``~/scratch``, lets the desktop write its
configuration and kernelspecs there (:func:`neurodesk.desktop.server.prepare`) and takes the
desktop's environment (:func:`neurodesk.desktop.environment.server_env`). Then it becomes
``jupyterhub-singleuser``: every request needs the hub's OAuth login, and the desktop's own token
is removed so that no second way in exists.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

from neurodesk.desktop.environment import server_env
from neurodesk.desktop.server import prepare
from neurodesk.errors import NeurodeskError
from neurodesk.hub.spawners import DATA_ENV, SCRATCH_ENV, SITE_ENV, USER_HOME
from neurodesk.paths import Paths
from neurodesk.runtime.spec import BINDPATH_VARS

BINDPATH = BINDPATH_VARS[0]  # NEURODESK_BINDPATH


def _link(link: Path, target: Path, replace: bool) -> None:
    """``link`` → ``target``; a file of the user's own there is kept unless ``replace``."""
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return
        if not replace:
            return
        link.unlink()
    elif link.exists():
        if not replace:
            return
        raise NeurodeskError(f"{link} exists and is not a link; move it away")
    link.symlink_to(target)


def user_paths(home: Path, environ: Mapping[str, str]) -> Paths:
    """The user's NEURODESK_HOME, its tool links pointing into the shared site tree."""
    site = Path(environ[SITE_ENV])
    nd_home = home / USER_HOME
    nd_home.mkdir(mode=0o700, exist_ok=True)
    _link(nd_home / "store", site / "store", replace=True)
    _link(nd_home / "installs", site, replace=True)
    if environ.get(DATA_ENV):
        _link(home / "shared-data", Path(environ[DATA_ENV]), replace=False)
    if environ.get(SCRATCH_ENV):
        _link(home / "scratch", Path(environ[SCRATCH_ENV]), replace=False)
    return Paths(nd_home)


def container_binds(environ: Mapping[str, str]) -> str:
    """Binds for every container the user runs (kernels, wrappers): the shared data read-only
    and their scratch, at the same paths, so ``~/shared-data`` and ``~/scratch`` work inside."""
    binds = []
    if environ.get(DATA_ENV):
        binds.append(f"{environ[DATA_ENV]}:{environ[DATA_ENV]}:ro")
    if environ.get(SCRATCH_ENV):
        binds.append(f"{environ[SCRATCH_ENV]}:{environ[SCRATCH_ENV]}")
    return ",".join([*binds, *filter(None, [environ.get(BINDPATH, "")])])


def singleuser_env(paths: Paths, environ: Mapping[str, str]) -> dict[str, str]:
    dirs, _kernels = prepare(paths)
    env = server_env(paths, dirs, secrets.token_urlsafe(32), environ)
    env.pop("JUPYTER_TOKEN", None)  # the hub's login is the only way in
    env[BINDPATH] = container_binds(environ)
    return env


def main() -> None:
    environ = dict(os.environ)
    home = Path(environ.get("HOME") or Path.home())
    try:
        paths = user_paths(home, environ)
        env = singleuser_env(paths, environ)
    except (NeurodeskError, OSError, KeyError) as exc:
        sys.stderr.write(f"error: neurodesk hub server cannot start: {exc}\n")
        sys.exit(1)
    os.chdir(home)
    argv = [sys.executable, "-m", "jupyterhub.singleuser", *sys.argv[1:]]
    os.execve(sys.executable, argv, env)


if __name__ == "__main__":
    main()
