"""``neurodesk hub``: a multi-user Neurodesk on JupyterHub for workshops, classes and clusters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from neurodesk.cli.output import console, emit_json, json_option_help, print_table
from neurodesk.sources.progress import RichProgress

dir_argument = click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))


@click.group()
def hub() -> None:
    """Run a multi-user Neurodesk on JupyterHub (workshops, classes, HPC clusters).

    \b
    A workshop, start to finish (as root on the machine people connect to):
      neurodesk hub init /srv/course --user alice --user bob --tool dcm2niix
      $EDITOR /srv/course/neurodesk-hub.yaml     # users, tools, data, limits, spawner
      neurodesk hub prepare /srv/course          # tools into the shared read-only site tree
      cp -r my-data/* /srv/course/data/          # shared data, read-only for users
      neurodesk hub start /srv/course            # prints the address to give out
      neurodesk hub status /srv/course           # who is running what, memory, idle time
      neurodesk hub stop /srv/course
    """


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1024**2:.0f} MB"


def _idle(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


@hub.command()
@dir_argument
@click.option(
    "--authenticator",
    type=click.Choice(["firstuse", "native", "pam", "oauth"]),
    default="firstuse",
    show_default=True,
    help="firstuse: listed users choose a password at first login; native: sign-up page with "
    "admin approval; pam: this machine's accounts; oauth: fill in the oauth block afterwards",
)
@click.option("--user", "users", multiple=True, help="a user who may log in (repeat)")
@click.option("--admin", "admins", multiple=True, help="a user with the admin page (repeat)")
@click.option("--tool", "tools", multiple=True, help="NAME[/VERSION] to provide (repeat)")
@click.option(
    "--spawner",
    type=click.Choice(["local", "systemd", "slurm", "kubernetes"]),
    default="local",
    show_default=True,
    help="where servers run: processes here, systemd units, SLURM jobs, or a Helm deployment",
)
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="ADDRESS:PORT to serve")
@click.option("--hub-connect-ip", default="", help="address compute nodes reach the hub at (slurm)")
@click.option("--idle-timeout", default="1h", show_default=True, help="stop idle servers after")
@click.option("--memory", default="4G", show_default=True, help="memory limit per user's server")
@click.option(
    "--python",
    default="",
    help="the Python users' servers run with (neurodesk[hub] installed, runnable by every "
    "account); default: the hub's own",
)
@click.option("--force", is_flag=True, help="write new settings over existing ones")
def init(
    directory: Path,
    authenticator: str,
    users: tuple[str, ...],
    admins: tuple[str, ...],
    tools: tuple[str, ...],
    spawner: str,
    bind: str,
    hub_connect_ip: str,
    idle_timeout: str,
    memory: str,
    python: str,
    force: bool,
) -> None:
    """Write a JupyterHub deployment into DIR: neurodesk-hub.yaml and jupyterhub_config.py.

    \b
    DIR/neurodesk-hub.yaml     the settings you edit (commented)
    DIR/jupyterhub_config.py   JupyterHub's config; reads the YAML at each start
    DIR/site/  DIR/data/       shared tool tree and shared data (both read-only for users)
    DIR/generated/             Zero-to-JupyterHub values, systemd and SLURM spawner settings
    """
    from neurodesk.hub.deploy import init_deployment

    values: dict[str, Any] = {
        "authenticator": authenticator,
        "users": list(users),
        "admins": list(admins),
        "tools": list(tools),
        "bind": bind,
        "hub_connect_ip": hub_connect_ip,
        "python": python,
        "idle_timeout": int(idle_timeout) if idle_timeout.isdigit() else idle_timeout,
        "limits": {"memory": memory},
        "spawner": {"kind": spawner},
    }
    deployment = init_deployment(directory, values, force)
    console.print(f"wrote {deployment.settings}", soft_wrap=True)
    console.print(f"wrote {deployment.config}", soft_wrap=True)
    console.print("next: edit the YAML, then", soft_wrap=True)
    console.print(f"  neurodesk hub prepare {deployment.root}", soft_wrap=True)
    console.print(f"  neurodesk hub start {deployment.root}", soft_wrap=True)


@hub.command()
@dir_argument
def prepare(directory: Path) -> None:
    """Install the YAML's tools into DIR/site, shared read-only by every user's server.

    Images missing from DIR/site/store are fetched from `source:` (or the sources of
    DIR/site/config.yaml), so nobody waits for a download during class.
    """
    from neurodesk.hub.layout import HubDir
    from neurodesk.hub.prepare import prepare_site

    with RichProgress() as progress:
        done = prepare_site(HubDir.of(directory), progress)
    for item in done:
        console.print(f"{item.tool}: {item.image} ({', '.join(item.commands)})", soft_wrap=True)
    console.print(f"site tree ready: {HubDir.of(directory).site} ({len(done)} tool(s))")


@hub.command()
@dir_argument
def start(directory: Path) -> None:
    """Start JupyterHub for DIR in the background and print the address to give out.

    Installs configurable-http-proxy from npm into DIR/proxy the first time. Must run as root:
    each user's server runs as their own system account.
    """
    from neurodesk.hub.layout import HubDir
    from neurodesk.hub.process import start_hub

    started = start_hub(HubDir.of(directory))
    console.print(f"neurodesk hub running at {started.url} (pid {started.pid})", soft_wrap=True)
    console.print(f"  log: {started.log}", soft_wrap=True)


@hub.command()
@dir_argument
def stop(directory: Path) -> None:
    """Stop the hub of DIR, every user's server and the proxy (users' files stay)."""
    from neurodesk.hub.layout import HubDir
    from neurodesk.hub.process import stop_hub

    pid = stop_hub(HubDir.of(directory))
    console.print("the hub was not running" if pid is None else f"stopped the hub (pid {pid})")


@hub.command()
@dir_argument
@click.option("--json", "as_json", is_flag=True, help=json_option_help)
def status(directory: Path, as_json: bool) -> None:
    """Users, running servers, memory per server and idle time."""
    from neurodesk.hub.layout import HubDir
    from neurodesk.hub.status import hub_status

    result = hub_status(HubDir.of(directory))
    if as_json:
        emit_json(result.to_json())
        return
    if not result.running:
        console.print(f"the hub of {result.directory} is not running")
        return
    console.print(f"hub running at {result.url} (pid {result.pid})", soft_wrap=True)
    rows = []
    for user in result.users:
        server = user.server
        rows.append(
            [
                user.name + (" (admin)" if user.admin else ""),
                "-" if server is None else ("running" if server.ready else server.pending or "?"),
                _size(server.memory_bytes) if server else "-",
                _idle(server.idle_seconds) if server else "-",
                (server.job_id or server.pid or "-") if server else "-",
            ]
        )
    print_table(None, ["user", "server", "memory", "idle", "pid/job"], rows)


def register(group: click.Group) -> None:
    group.add_command(hub)
