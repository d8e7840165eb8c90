"""``neurodesk desktop``: JupyterLab with every tool, container kernels and a browser desktop."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import click

from neurodesk.cli.output import console
from neurodesk.desktop.environment import TOKEN_ENV, is_loopback
from neurodesk.desktop.server import start_desktop
from neurodesk.paths import Paths


@click.command()
@click.option(
    "--ip",
    default="127.0.0.1",
    show_default=True,
    help="address to listen on; anything but loopback makes the desktop reachable from the "
    "network (the token is still required)",
)
@click.option(
    "--port", default=8888, show_default=True, type=click.IntRange(0, 65535), help="0: any free"
)
@click.option(
    "--root-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="the folder JupyterLab shows (default: the current directory)",
)
def desktop(ip: str, port: int, root_dir: Path | None) -> None:
    """Start JupyterLab with the tools panel, container kernels and terminals.

    \b
    What you get, at the printed URL (it carries the access token):
      - the "Neurodesk tools" sidebar: search, categories, one entry per tool with its
        versions, README, citation and licence; install / load / unload / uninstall;
      - "Desktop" in the launcher: a desktop in the browser (Openbox, a panel, an
        Applications menu of the installed tools by category; GUI apps open as windows);
      - one kernel per image in the store that has python3 + ipykernel, e.g.
        "jupyter-neuro 0.1.0 (container)": notebook code runs inside that container;
        in the host "Python 3" kernel, %module load NAME brings a tool onto its PATH;
      - terminals where installed tools run by name and 'module load NAME' works.

    \b
    A new random token is made each time; set $NEURODESK_DESKTOP_TOKEN to choose one
    (at least 16 characters). The server refuses every request without it.
    """
    paths = Paths.from_env()
    running = start_desktop(paths, ip=ip, port=port, root_dir=root_dir)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    kernels = ", ".join(sorted(running.kernels.values())) or "none (no image has ipykernel)"
    console.print(f"neurodesk desktop: {running.lab_url}", soft_wrap=True)
    console.print(f"  tools panel: {running.url}neurodesk/", soft_wrap=True)
    console.print(f"  container kernels: {kernels}", soft_wrap=True)
    console.print(f"  server log: {running.log}", soft_wrap=True)
    if not is_loopback(ip):
        console.print(
            f"  [yellow]listening on {ip}: reachable from the network; keep the token secret[/]"
        )
    console.print(
        f"  (a fixed token can be set with ${TOKEN_ENV}) — press Ctrl-C to stop",
        soft_wrap=True,
    )
    console.file.flush()
    try:
        running.process.wait()
    except KeyboardInterrupt:
        console.print("stopping JupyterLab")
    finally:
        running.stop()


def register(group: click.Group) -> None:
    group.add_command(desktop)
