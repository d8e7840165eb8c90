"""A browser desktop for GUI tools: TigerVNC's Xvnc, shown by noVNC through the Jupyter server.

Xvnc listens for VNC only on a Unix socket of mode 0600 (no TCP port at all), and X clients need
a random MIT-MAGIC-COOKIE: no other local user can watch or type into the session. The browser
reaches it through an authenticated websocket of the Jupyter server that relays bytes to that
socket: this is what websockify would do, without opening an unauthenticated port on loopback.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from neurodesk.errors import ExternalCommandError, MissingToolError

NOVNC = Path("/usr/share/novnc")
X11_DIR = Path("/tmp/.X11-unix")
PR_SET_PDEATHSIG = 1


def novnc_dir() -> Path | None:
    """Debian's noVNC client (package novnc), when installed."""
    return NOVNC if (NOVNC / "vnc.html").is_file() else None


def available() -> bool:
    return novnc_dir() is not None and all(shutil.which(p) for p in ("Xvnc", "xauth"))


def _die_with_parent() -> None:
    # Xvnc must not outlive the server, even when the server is killed with SIGKILL.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_display() -> int:
    for number in range(20, 100):
        if not Path(f"/tmp/.X{number}-lock").exists() and not (X11_DIR / f"X{number}").exists():
            return number
    raise ExternalCommandError("no free X display between :20 and :99")


@dataclass
class VncSession:
    display: int
    socket: Path
    xauthority: Path
    process: subprocess.Popen[bytes]
    # the window manager and panel running on it (see neurodesk.desktop.session)
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        return f":{self.display}"

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_session(directory: Path, geometry: str = "1280x800", timeout: float = 10) -> VncSession:
    """Start Xvnc on a free display; returns once its VNC socket accepts connections."""
    if not available():
        raise MissingToolError(
            "the browser desktop needs Xvnc, xauth and noVNC",
            hint="sudo apt-get install tigervnc-standalone-server xauth novnc",
        )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    display = free_display()
    sock = directory / f"vnc-{display}.sock"
    sock.unlink(missing_ok=True)
    xauthority = directory / "Xauthority"
    xauthority.unlink(missing_ok=True)
    cookie = secrets.token_hex(16)
    subprocess.run(
        ["xauth", "-q", "-f", str(xauthority), "add", f":{display}", ".", cookie],
        check=True,
        capture_output=True,
    )
    os.chmod(xauthority, 0o600)
    log = (directory / f"Xvnc-{display}.log").open("wb")
    argv = [
        shutil.which("Xvnc") or "Xvnc",
        f":{display}",
        "-auth",
        str(xauthority),
        "-geometry",
        geometry,
        "-depth",
        "24",
        "-rfbport",
        "-1",
        "-rfbunixpath",
        str(sock),
        "-rfbunixmode",
        "0600",
        "-SecurityTypes",
        "None",
        "-nolisten",
        "tcp",
    ]
    process = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
    )
    log.close()
    session = VncSession(display, sock, xauthority, process)
    deadline = time.monotonic() + timeout
    while not sock.exists():
        if not session.running() or time.monotonic() > deadline:
            session.stop()
            tail = (directory / f"Xvnc-{display}.log").read_text(errors="replace").splitlines()
            raise ExternalCommandError("Xvnc did not start", log_tail=tail[-10:])
        time.sleep(0.05)
    return session
