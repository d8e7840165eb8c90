"""``hub start`` / ``hub stop``: JupyterHub as a background process of the deployment.

The hub's pid is kept in ``state/jupyterhub.pid``; its output goes to ``logs/jupyterhub.log``.
JupyterHub starts configurable-http-proxy and the idle culler itself and, when it stops, stops
every user's server and the proxy (``cleanup_servers``, ``cleanup_proxy``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from neurodesk.errors import ExternalCommandError, NeurodeskError
from neurodesk.hub.deploy import write_generated
from neurodesk.hub.jhconfig import status_token
from neurodesk.hub.layout import HubDir
from neurodesk.hub.proxy import ensure_proxy
from neurodesk.hub.settings import HubSettings, load_settings, require_users
from neurodesk.hub.spawners import server_python, unusable_by_others


@dataclass(frozen=True)
class Started:
    url: str
    pid: int
    log: str


def public_url(settings: HubSettings) -> str:
    """Where the hub answers; a wildcard binding is reached on loopback from here."""
    host = settings.host
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{settings.port}/"


def running_pid(hub: HubDir) -> int | None:
    """The hub's pid when it is running, else None (a stale pid file is removed)."""
    try:
        pid = int(hub.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        hub.pid_file.unlink(missing_ok=True)
        return None
    except PermissionError:
        return pid
    try:
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()  # noqa: SIM115
    except OSError:
        return pid
    if b"jupyterhub" not in cmdline:  # the pid was reused by another program
        hub.pid_file.unlink(missing_ok=True)
        return None
    return pid


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "hub/api", timeout=3) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(hub: HubDir, lines: int = 12) -> list[str]:
    try:
        return hub.log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def start_hub(hub: HubDir, timeout: float = 90) -> Started:
    settings = load_settings(hub.root)
    require_users(settings, str(hub.settings))
    if settings.spawner.kind == "kubernetes":
        raise NeurodeskError(
            "spawner kubernetes runs in a cluster, not on this machine",
            hint=f"deploy with: helm upgrade --install neurodesk jupyterhub/jupyterhub "
            f"--values {hub.generated / 'z2jh-values.yaml'}",
        )
    if os.geteuid() != 0:
        raise NeurodeskError(
            "the hub must run as root to start servers as each user's own account",
            hint=f"sudo neurodesk hub start {hub.root}",
        )
    if not hub.config.is_file():
        raise NeurodeskError(f"{hub.config} is missing", hint=f"neurodesk hub init {hub.root}")
    python = server_python(settings)
    blocked = unusable_by_others(python)
    if blocked is not None:
        raise NeurodeskError(
            f"users' servers cannot run {python}: other accounts cannot reach {blocked}",
            hint="install neurodesk[hub] in a Python every account can run (e.g. python3 -m "
            "venv /opt/neurodesk/venv) and set python: to it in neurodesk-hub.yaml",
        )
    url = public_url(settings)
    pid = running_pid(hub)
    if pid is not None:
        raise NeurodeskError(
            f"the hub is already running (pid {pid}) at {url}",
            hint=f"neurodesk hub stop {hub.root}",
        )
    if _answers(url):
        raise NeurodeskError(f"{settings.bind} is in use by another server", hint="change bind:")
    ensure_proxy(hub)
    write_generated(hub, settings)
    status_token(hub)
    hub.logs.mkdir(parents=True, exist_ok=True)
    with open(hub.log, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(hub.config)],
            cwd=hub.state,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    hub.pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while not _answers(url):
        if process.poll() is not None:
            hub.pid_file.unlink(missing_ok=True)
            raise ExternalCommandError(
                f"JupyterHub exited with status {process.returncode}",
                log_tail=_tail(hub),
                hint=f"see {hub.log}",
            )
        if time.monotonic() > deadline:
            stop_hub(hub)
            raise ExternalCommandError(
                f"JupyterHub did not answer at {url} within {timeout:.0f} s",
                log_tail=_tail(hub),
                hint=f"see {hub.log}",
            )
        time.sleep(0.25)
    return Started(url, process.pid, str(hub.log))


def stop_hub(hub: HubDir, timeout: float = 60) -> int | None:
    """Stop the hub (and so every server and the proxy); returns its pid, None if not running."""
    pid = running_pid(hub)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.2)
    else:
        os.killpg(pid, signal.SIGKILL)
    hub.pid_file.unlink(missing_ok=True)
    return pid


def _alive(pid: int) -> bool:
    try:
        waited, _status = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
