"""Starting JupyterLab for ``neurodesk desktop`` and proving it demands the token.

The token reaches the server in its environment (``JUPYTER_TOKEN``), never on a command line
other users could read in ``ps``. Once the server answers, we ask it for data without the token:
if it answers (a user's Jupyter config can switch authentication off), we stop it and refuse.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from neurodesk.desktop.environment import (
    DesktopDirs,
    DesktopError,
    choose_token,
    is_loopback,
    server_env,
    write_config,
)
from neurodesk.desktop.hostkernel import write_host_kernelspec
from neurodesk.desktop.kernels import write_kernelspecs
from neurodesk.errors import MissingToolError
from neurodesk.paths import Paths

LABEXTENSION = Path(__file__).parent / "labextension"
# Data endpoints probed without the token: each must refuse.
PROBES = ("api/kernelspecs", "api/contents", "neurodesk/api/tools")


@dataclass
class Desktop:
    process: subprocess.Popen[bytes]
    url: str
    token: str
    log: Path
    kernels: dict[str, str]

    @property
    def lab_url(self) -> str:
        return f"{self.url}lab?token={self.token}"

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET) as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


def _url_host(ip: str) -> str:
    """The host to reach the server at: the loopback address for a wildcard binding."""
    if ip in ("0.0.0.0", ""):
        return "127.0.0.1"
    if ip == "::":
        return "[::1]"
    return f"[{ip}]" if ":" in ip else ip


def _status(url: str, token: str | None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def install_labextension(dirs: DesktopDirs) -> None:
    """Copy the launcher entry where JupyterLab looks for prebuilt extensions."""
    if not (LABEXTENSION / "package.json").is_file():
        return
    target = dirs.labextensions / "neurodesk-launcher"
    staging = target.with_name(".neurodesk-launcher.new")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(LABEXTENSION, staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.replace(target)


def prepare(paths: Paths) -> tuple[DesktopDirs, dict[str, str]]:
    """Write config, kernelspecs and the launcher entry; returns image id → kernel name."""
    dirs = DesktopDirs.of(paths)
    write_config(paths, dirs)
    install_labextension(dirs)
    write_host_kernelspec(dirs.kernels)
    return dirs, write_kernelspecs(paths, dirs.kernels)


def start_desktop(
    paths: Paths,
    *,
    ip: str = "127.0.0.1",
    port: int = 8888,
    root_dir: Path | None = None,
    environ: dict[str, str] | None = None,
    timeout: float = 60,
) -> Desktop:
    environ = dict(os.environ if environ is None else environ)
    if importlib.util.find_spec("jupyterlab") is None:
        raise MissingToolError(
            "JupyterLab is not installed", hint="pip install 'neurodesk[desktop]'"
        )
    token = choose_token(environ)
    if not token:  # choose_token never returns one; kept as the last line of defence
        raise DesktopError("refusing to start without a token")
    if port == 0:
        port = free_port(ip if is_loopback(ip) else "0.0.0.0")
    dirs, kernels = prepare(paths)
    log = paths.logs / "desktop.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir or Path.cwd()}",
    ]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the log shows the token
    with os.fdopen(fd, "wb") as out:
        process = subprocess.Popen(
            argv,
            env=server_env(paths, dirs, token, environ),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    desktop = Desktop(process, f"http://{_url_host(ip)}:{port}/", token, log, kernels)
    try:
        _wait_ready(desktop, timeout)
        _check_refuses_without_token(desktop)
    except BaseException:
        desktop.stop()
        raise
    return desktop


def _wait_ready(desktop: Desktop, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if desktop.process.poll() is not None:
            tail = desktop.log.read_text(errors="replace").splitlines()[-10:]
            raise DesktopError(
                f"JupyterLab exited with status {desktop.process.returncode}: "
                + (tail[-1] if tail else "no output"),
                hint=f"see {desktop.log}",
            )
        try:
            if _status(desktop.url + "api/status", desktop.token) == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise DesktopError(f"JupyterLab did not answer within {timeout:.0f} s")
        time.sleep(0.2)


def _check_refuses_without_token(desktop: Desktop) -> None:
    for probe in PROBES:
        status = _status(desktop.url + probe, None)
        if status not in (401, 403):
            raise DesktopError(
                f"the server answered {desktop.url}{probe} without the token (HTTP {status})",
                hint="a Jupyter config file disables authentication (token = '' or "
                "allow_unauthenticated_access); remove that setting",
            )
