"""The lazy command table is complete, and cheap commands stay cheap."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import click

import neurodesk.cli
from neurodesk.cli.lazy import COMMANDS, load_command


def registered_commands() -> dict[str, str]:
    """What each cli module's register() adds: command name → module."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(neurodesk.cli.__path__):
        module = importlib.import_module(f"neurodesk.cli.{info.name}")
        if hasattr(module, "register"):
            group = click.Group()
            module.register(group)
            found.update(dict.fromkeys(group.commands, info.name))
    return found


def test_every_registered_command_is_in_the_lazy_table() -> None:
    registered = registered_commands()
    assert set(registered) == set(COMMANDS)
    for name, module in registered.items():
        assert COMMANDS[name][0] == module
        assert load_command(name).name == name


def test_version_and_exec_help_do_not_import_unrelated_commands() -> None:
    probe = (
        "import sys\n"
        "from neurodesk.cli.main import cli\n"
        "cli.main(['exec', '--help'], standalone_mode=False)\n"
        "heavy = {'numpy', 'neurodesk.demo.run', 'neurodesk.jobs.batch', 'httpx'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]"
