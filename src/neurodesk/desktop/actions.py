"""What the panel's buttons do, apart from any web framework: install and load tools.

Installing may mean building the recipe first (tens of seconds), so it runs as a background job
the panel polls. Loading puts a tool's wrapper directory first on the server's PATH: terminals
and host kernels started afterwards inherit it (the way Lmod's ``module load`` changes the
environment of the shell it runs in).
"""

from __future__ import annotations

import itertools
import os
import shlex
import sys
import threading
import time
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass
from typing import Any

from neurodesk.build.build import build_recipe
from neurodesk.desktop.catalog import Tool, list_tools
from neurodesk.desktop.environment import DesktopDirs
from neurodesk.desktop.kernels import write_kernelspecs
from neurodesk.errors import NeurodeskError, NotFoundError
from neurodesk.install.installer import install_image
from neurodesk.paths import Paths
from neurodesk.recipe.load import find_recipe
from neurodesk.store import Store


@dataclass
class Job:
    id: str
    tool: str
    state: str = "running"  # running | done | failed
    message: str = ""
    started: float = 0.0
    finished: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def find_tool(paths: Paths, name: str, version: str) -> Tool:
    """The newest tool version matching ``name`` and, when given, ``version``."""
    matches = [
        t for t in list_tools(paths) if t.name == name and (not version or t.version == version)
    ]
    if not matches:
        raise NotFoundError(f"no tool '{name}/{version}'", hint="see /neurodesk/api/tools")
    return matches[-1]


def install_tool(paths: Paths, dirs: DesktopDirs, name: str, version: str) -> str:
    """Build (when only the recipe exists), install, refresh kernels; returns a summary."""
    tool = find_tool(paths, name, version)
    store = Store(paths.store)
    built = ""
    if tool.state == "available":
        result = build_recipe(find_recipe(name), paths)
        if result.record.version != tool.version:
            raise NotFoundError(
                f"the recipe of '{name}' now builds version {result.record.version}, not "
                f"{tool.version}"
            )
        built = f"built {result.record.id}; "
    record = store.resolve(f"{name}/{tool.version}")
    installed = install_image(record, paths.installs)
    write_kernelspecs(paths, dirs.kernels)
    return f"{built}installed {record.id}: {len(installed.commands)} command(s)"


def loaded_dirs(environ: MutableMapping[str, str]) -> list[str]:
    return [p for p in environ.get("PATH", "").split(":") if p]


def load_tool(paths: Paths, name: str, version: str, environ: MutableMapping[str, str]) -> Tool:
    """Put ``name/version`` first on PATH, dropping other versions of the same tool."""
    tools = [t for t in list_tools(paths) if t.name == name]
    tool = next((t for t in tools if not version or t.version == version), None)
    if tool is None or tool.state != "installed" or not tool.bin_dir:
        raise NotFoundError(
            f"'{name}/{version}' is not installed", hint="install it from the panel first"
        )
    others = {t.bin_dir for t in tools if t.bin_dir}
    rest = [p for p in loaded_dirs(environ) if p not in others]
    environ["PATH"] = ":".join([tool.bin_dir, *rest])
    return tool


class Jobs:
    """Install jobs, one at a time (builds share the store lock and two cores anyway)."""

    def __init__(self, paths: Paths, dirs: DesktopDirs) -> None:
        self.paths = paths
        self.dirs = dirs
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._serial = threading.Lock()
        self._guard = threading.Lock()

    def get(self, job_id: str) -> Job:
        with self._guard:
            if job_id not in self._jobs:
                raise NotFoundError(f"no job '{job_id}'")
            return self._jobs[job_id]

    def start(self, name: str, version: str) -> Job:
        find_tool(self.paths, name, version)  # fail now, not in the thread, for unknown tools
        with self._guard:
            job = Job(str(next(self._ids)), f"{name}/{version}", started=time.time())
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job, name, version), daemon=True).start()
        return job

    def _run(self, job: Job, name: str, version: str) -> None:
        with self._serial:
            try:
                job.message = install_tool(self.paths, self.dirs, name, version)
                tool = find_tool(self.paths, name, version)
                if tool.bin_dir:
                    load_tool(self.paths, name, tool.version, os.environ)
                job.state = "done"
            except NeurodeskError as exc:
                job.state, job.message = "failed", str(exc)
            except Exception as exc:  # a job must always end with a state the panel can show
                job.state, job.message = "failed", f"{type(exc).__name__}: {exc}"
            finally:
                job.finished = time.time()


def gui_argv(tool: Tool, app: str, vnc_dir: str) -> list[str]:
    """The command that runs GUI app ``app`` of ``tool`` in its container.

    It goes through ``neurodesk exec`` rather than a wrapper so any ``exec`` line of the recipe
    works (arguments included); the VNC directory is bound for the X cookie in XAUTHORITY.
    """
    found = next((a for a in tool.gui_apps if a["name"] == app), None)
    if found is None or tool.state != "installed" or not tool.image_id:
        known = ", ".join(a["name"] for a in tool.gui_apps) or "none"
        raise NotFoundError(
            f"'{tool.name}/{tool.version}' has no installed GUI app '{app}'",
            hint=f"its GUI apps: {known}; install the tool first",
        )
    image = tool.image_id.removeprefix(f"{tool.name}_{tool.version}_")
    return [
        sys.executable,
        "-m",
        "neurodesk",
        "exec",
        "--bind",
        vnc_dir,
        f"{tool.name}/{tool.version}/{image}",
        "--",
        *shlex.split(found["exec"]),
    ]
