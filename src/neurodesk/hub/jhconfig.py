"""The body of ``jupyterhub_config.py``: turns ``neurodesk-hub.yaml`` into JupyterHub traits.

JupyterHub executes the config file with a ``c`` object; the file written by ``hub init`` calls
:func:`configure` and the organiser may override anything below that call. Ports other than the
public one (hub API, proxy API) are free loopback ports chosen at each start.
"""

from __future__ import annotations

import importlib
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

from neurodesk.hub.auth import authenticator_config
from neurodesk.hub.layout import HubDir
from neurodesk.hub.proxy import proxy_command
from neurodesk.hub.settings import HubSettings, load_settings
from neurodesk.hub.spawners import SCRATCH_ENV, USER_HOME, spawner_config
from neurodesk.hub.users import (
    HubUserError,
    close_home,
    ensure_system_user,
    private_dir,
    system_user,
    user_scratch,
)

STATUS_SERVICE = "neurodesk-status"
CULLER_SERVICE = "idle-culler"
# Spawners whose servers run as this machine's (or the cluster's) system accounts.
SYSTEM_ACCOUNT_SPAWNERS = ("local", "systemd", "slurm")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def status_token(hub: HubDir) -> str:
    """The token ``hub status`` reads the REST API with (root-only file, made once)."""
    hub.state.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not hub.status_token.is_file():
        fd = os.open(hub.status_token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return hub.status_token.read_text().strip()


def services(
    hub: HubDir, settings: HubSettings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(services, roles): the idle culler and the token of ``hub status``."""
    services: list[dict[str, Any]] = [{"name": STATUS_SERVICE, "api_token": status_token(hub)}]
    roles: list[dict[str, Any]] = [
        {
            "name": STATUS_SERVICE,
            "scopes": ["list:users", "read:users", "read:servers", "admin:server_state"],
            "services": [STATUS_SERVICE],
        }
    ]
    idle = settings.idle_seconds
    if idle:
        services.append(
            {
                "name": CULLER_SERVICE,
                "command": [
                    sys.executable,
                    "-m",
                    "jupyterhub_idle_culler",
                    f"--timeout={idle}",
                    f"--cull-every={settings.cull_every}",
                ],
            }
        )
        roles.append(
            {
                "name": CULLER_SERVICE,
                "scopes": [
                    "list:users",
                    "read:users:activity",
                    "read:servers",
                    "delete:servers",
                ],
                "services": [CULLER_SERVICE],
            }
        )
    return services, roles


def prepare_account(hub: HubDir, settings: HubSettings, name: str) -> dict[str, str]:
    """The user's account (made unless PAM), closed home, scratch; returns their variables."""
    create = settings.authenticator != "pam"  # PAM users exist already, by definition
    account = ensure_system_user(name) if create else system_user(name)
    if account is None:
        raise HubUserError(
            f"no system account {name!r}", hint="create it, or remove it from users:"
        )
    close_home(account)
    private_dir(Path(account.pw_dir) / USER_HOME, account)
    return {SCRATCH_ENV: str(user_scratch(hub.scratch(settings), account))}


def make_pre_spawn_hook(hub: HubDir, settings: HubSettings) -> Any:
    """Before each start of a user's server (so also for users added after prepare)."""

    def pre_spawn(spawner: Any) -> None:
        if settings.spawner.kind in SYSTEM_ACCOUNT_SPAWNERS:
            variables = prepare_account(hub, settings, spawner.user.name)
            spawner.environment = {**spawner.environment, **variables}

    return pre_spawn


def configure(c: Any, directory: Path) -> None:
    """Fill JupyterHub's config object ``c`` from the deployment in ``directory``."""
    hub = HubDir.of(directory)
    settings = load_settings(hub.root)
    hub.state.mkdir(mode=0o700, parents=True, exist_ok=True)
    hub.logs.mkdir(parents=True, exist_ok=True)

    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    c.JupyterHub.bind_url = f"http://{host}:{settings.port}/"
    # servers reach the hub's API on loopback, or (SLURM) from compute nodes at hub_connect_ip
    connect = settings.hub_connect_ip or "127.0.0.1"
    listen = "0.0.0.0" if settings.hub_connect_ip else "127.0.0.1"
    if ":" in connect:
        connect, listen = f"[{connect}]", "::"
    hub_port = free_port(listen)
    c.JupyterHub.hub_bind_url = f"http://{'[::]' if listen == '::' else listen}:{hub_port}"
    c.JupyterHub.hub_connect_url = f"http://{connect}:{hub_port}"
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{free_port()}"
    c.ConfigurableHTTPProxy.command = proxy_command(hub)
    c.ConfigurableHTTPProxy.should_start = True
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.cleanup_proxy = True
    c.JupyterHub.db_url = f"sqlite:///{hub.state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(hub.state / "jupyterhub_cookie_secret")
    c.JupyterHub.active_server_limit = settings.limits.max_servers
    c.JupyterHub.concurrent_spawn_limit = 0
    c.JupyterHub.template_vars = {"announcement_login": settings.title}
    # never allow a named server without the same checks, nor an implicit admin access
    c.JupyterHub.allow_named_servers = False
    c.JupyterHub.admin_access = False

    sections: dict[str, dict[str, Any]] = {}
    authenticator, auth_sections = authenticator_config(hub, settings)
    spawner, spawn_sections = spawner_config(hub, settings)
    c.JupyterHub.authenticator_class = authenticator
    c.JupyterHub.spawner_class = spawner
    for part in (auth_sections, spawn_sections):
        for section, traits in part.items():
            sections.setdefault(section, {}).update(traits)
    for section, traits in sections.items():
        target = getattr(c, section)
        for trait, value in traits.items():
            setattr(target, trait, value)
    c.Spawner.pre_spawn_hook = make_pre_spawn_hook(hub, settings)
    if settings.spawner.kind == "slurm":
        # importing it registers the hub's /api/batchspawner handler (the job reports its port)
        importlib.import_module("batchspawner")

    c.JupyterHub.services, c.JupyterHub.load_roles = services(hub, settings)
