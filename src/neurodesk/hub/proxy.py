"""configurable-http-proxy, installed from npm into the deployment by the project itself."""

from __future__ import annotations

import os
import shutil
import subprocess

from neurodesk.errors import ExternalCommandError, MissingToolError
from neurodesk.hub.layout import HubDir

PACKAGE = "configurable-http-proxy@^5"


def proxy_binary(hub: HubDir) -> str:
    return str(hub.proxy / "node_modules" / ".bin" / "configurable-http-proxy")


def proxy_command(hub: HubDir) -> list[str]:
    return [proxy_binary(hub)]


def ensure_proxy(hub: HubDir) -> str:
    """The proxy's path; ``npm install --prefix DIR/proxy`` it first when missing."""
    binary = proxy_binary(hub)
    if os.path.exists(binary):
        return binary
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise MissingToolError(
            "configurable-http-proxy needs Node.js and npm",
            hint="apt-get install nodejs npm (or scripts/bootstrap.sh)",
        )
    hub.proxy.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(hub.proxy),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            PACKAGE,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        raise ExternalCommandError(
            f"npm could not install {PACKAGE}",
            log_tail=(proc.stdout + proc.stderr).splitlines()[-10:],
            hint="check that the npm registry is reachable",
        )
    return binary
