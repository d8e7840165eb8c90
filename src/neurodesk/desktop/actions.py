"""What the panel's buttons do, apart from any web framework: install, load, unload, uninstall.

Installing may mean building the recipe or downloading the image first (tens of seconds), so it
runs as a background job the panel polls, with its progress (build steps, bytes). Loading puts a
tool's wrapper directory first on the server's PATH: terminals and host kernels started
afterwards inherit it (the way Lmod's ``module load`` changes the environment of the shell it
runs in); unloading takes it off again.
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
from neurodesk.catalog.collect import build_catalog
from neurodesk.desktop.catalog import Tool, list_tools
from neurodesk.desktop.environment import DesktopDirs
from neurodesk.desktop.kernels import write_kernelspecs
from neurodesk.errors import NeurodeskError, NotFoundError
from neurodesk.install.installer import install_image, uninstall_image
from neurodesk.paths import Paths
from neurodesk.recipe.load import find_recipe
from neurodesk.sources.fetch import fetch_image


@dataclass
class Job:
    id: str
    tool: str
    action: str = "install"  # install | uninstall
    state: str = "running"  # running | done | failed
    message: str = ""
    progress: float | None = None  # 0..1 when known
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


class JobProgress:
    """Build steps and downloaded bytes, as the job's message and fraction."""

    def __init__(self, job: Job | None) -> None:
        self.job = job
        self.totals: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.lock = threading.Lock()

    def say(self, message: str, fraction: float | None = None) -> None:
        if self.job is not None:
            self.job.message = message
            self.job.progress = fraction

    def step(self, number: int, total: int, text: str) -> None:
        self.say(f"building: step {number}/{total}: {text[:80]}", number / max(total, 1))

    def add(self, key: str, description: str, total: int | None) -> None:
        with self.lock:
            self.totals[key] = total or 0
            self.done.setdefault(key, 0)

    def advance(self, key: str, amount: int) -> None:
        with self.lock:
            self.done[key] = self.done.get(key, 0) + amount
            total, done = sum(self.totals.values()), sum(self.done.values())
        fraction = done / total if total else None
        self.say(f"downloading: {done / 1e6:.1f} of {total / 1e6:.1f} MB", fraction)


def install_tool(
    paths: Paths, dirs: DesktopDirs, name: str, version: str, job: Job | None = None
) -> str:
    """Build the recipe or fetch the image when needed, install, refresh kernels.

    A version only a configured source or catalog offers is fetched from there.
    """
    local = [t for t in list_tools(paths) if t.name == name and version in ("", t.version)]
    progress = JobProgress(job)
    built = ""
    tool = local[-1] if local else None
    if tool is not None and tool.state == "available":
        progress.say("building the image from its recipe")
        result = build_recipe(find_recipe(name), paths, on_step=progress.step)
        if result.record.version != tool.version:
            raise NotFoundError(
                f"the recipe of '{name}' now builds version {result.record.version}, not "
                f"{tool.version}"
            )
        built = f"built {result.record.id}; "
    wanted = tool.version if tool is not None else version
    record = fetch_image(f"{name}/{wanted}" if wanted else name, paths, progress=progress)
    progress.say("writing wrappers, modules and menu entries")
    installed = install_image(record, paths.installs)
    write_kernelspecs(paths, dirs.kernels)
    return f"{built}installed {record.id}: {len(installed.commands)} command(s)"


def uninstall_tool(paths: Paths, dirs: DesktopDirs, name: str, version: str) -> str:
    """Remove the install of ``name/version`` (the image stays in the store)."""
    tool = find_tool(paths, name, version)
    if tool.state != "installed" or not tool.image_id:
        raise NotFoundError(f"'{name}/{tool.version}' is not installed")
    unload_tool(paths, name, os.environ)
    removed = uninstall_image(paths.installs, tool.image_id)
    write_kernelspecs(paths, dirs.kernels)
    return f"uninstalled {removed.image_id} ({len(removed.files)} files)"


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


def unload_tool(paths: Paths, name: str, environ: MutableMapping[str, str]) -> list[str]:
    """Take every version of ``name`` off PATH; returns the directories removed."""
    dirs = {t.bin_dir for t in list_tools(paths) if t.name == name and t.bin_dir}
    removed = [p for p in loaded_dirs(environ) if p in dirs]
    environ["PATH"] = ":".join(p for p in loaded_dirs(environ) if p not in dirs)
    return removed


class Jobs:
    """Install and uninstall jobs, one at a time (builds share the store lock and two cores)."""

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

    def start(self, name: str, version: str, action: str = "install") -> Job:
        if action == "uninstall" or name not in build_catalog(self.paths).tools:
            find_tool(self.paths, name, version)  # fail now, not in the thread, when unknown
        with self._guard:
            job = Job(str(next(self._ids)), f"{name}/{version}", action, started=time.time())
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job, name, version), daemon=True).start()
        return job

    def _run(self, job: Job, name: str, version: str) -> None:
        job.message = "waiting for the previous job" if self._serial.locked() else "starting"
        with self._serial:
            try:
                if job.action == "uninstall":
                    job.message = uninstall_tool(self.paths, self.dirs, name, version)
                else:
                    job.message = install_tool(self.paths, self.dirs, name, version, job)
                    tool = find_tool(self.paths, name, version)
                    if tool.bin_dir:
                        load_tool(self.paths, name, tool.version, os.environ)
                        job.message += f"; {name}/{tool.version} loaded"
                job.state, job.progress = "done", 1.0
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
