"""Commands are imported only when they run.

A wrapper-free path such as ``neurodesk exec`` or a SLURM array task should not pay for importing
numpy, pydantic models and HTTP clients of commands it never calls (about 0.9 s before this).
Every command is listed here by name; tests/unit/test_cli_lazy.py checks this table against what
each module's ``register()`` adds, so a new command cannot be forgotten.
"""

from __future__ import annotations

import importlib

import click

# command name → (module under neurodesk.cli, attribute holding the click command)
COMMANDS: dict[str, tuple[str, str]] = {
    "base": ("base", "base"),
    "batch": ("batch", "batch"),
    "build": ("build", "build"),
    "cite": ("cite", "cite"),
    "demo": ("demo", "demo"),
    "desktop": ("desktop", "desktop"),
    "du": ("images", "du"),
    "examples": ("examples", "examples"),
    "exec": ("run", "exec_"),
    "exec-lock": ("lock", "exec_lock"),
    "export": ("export", "export"),
    "gc": ("images", "gc"),
    "hub": ("hub", "hub"),
    "images": ("images", "images"),
    "import": ("images", "import_"),
    "info": ("catalog", "info"),
    "install": ("install", "install"),
    "list": ("catalog", "list_tools"),
    "lock": ("lock", "lock"),
    "mirror": ("mirror", "mirror"),
    "publish": ("publish", "publish"),
    "recipe": ("recipe", "recipe"),
    "rerun": ("rerun", "rerun_cmd"),
    "rm": ("images", "rm"),
    "sbom": ("sbom", "sbom"),
    "search": ("catalog", "search"),
    "shell": ("run", "shell"),
    "sync": ("lock", "sync"),
    "test": ("testcmd", "test"),
    "uninstall": ("install", "uninstall"),
    "update": ("update", "update"),
    "sources": ("sources", "sources"),
    "verify": ("verify", "verify"),
}


def load_command(name: str) -> click.Command:
    module_name, attribute = COMMANDS[name]
    module = importlib.import_module(f"neurodesk.cli.{module_name}")
    command = getattr(module, attribute)
    assert isinstance(command, click.Command)
    return command


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name) if cmd_name in COMMANDS else None
