"""Installing an image's commands as wrappers, and removing exactly what was installed.

Layout under the install prefix (default ``$NEURODESK_HOME/installs``)::

    containers/<id>/commands.txt     one command per line
    containers/<id>/bin/<command>    one wrapper per command
    containers/<id>/install.json     what was written, so uninstall removes exactly that
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from neurodesk.errors import NotFoundError
from neurodesk.install.commands import discover_commands, write_commands_txt
from neurodesk.install.wrapper import render_wrapper
from neurodesk.store import ImageRecord
from neurodesk.store.atomic import write_text


@dataclass(frozen=True)
class Installed:
    image_id: str
    directory: Path
    commands: list[str]

    @property
    def bin_dir(self) -> Path:
        return self.directory / "bin"


def container_dir(prefix: Path, image_id: str) -> Path:
    return prefix / "containers" / image_id


def install_image(record: ImageRecord, prefix: Path) -> Installed:
    """Write commands.txt and one wrapper per command; replaces an earlier install atomically."""
    commands = discover_commands(record)
    final = container_dir(prefix, record.id)
    staging = final.with_name(f".{record.id}.new")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    try:
        write_commands_txt(commands, staging / "commands.txt")
        for command in commands:
            wrapper = staging / "bin" / command
            # Rendered for its final place: relative paths must hold after the rename.
            wrapper.write_text(render_wrapper(record, command, final / "bin"))
            wrapper.chmod(0o755)
        files = ["commands.txt", *(f"bin/{c}" for c in commands)]
        write_text(
            staging / "install.json",
            json.dumps({"image": record.to_json(), "files": files}, indent=2),
        )
        if final.exists():
            old = final.with_name(f".{record.id}.old")
            shutil.rmtree(old, ignore_errors=True)
            final.replace(old)
            staging.replace(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.replace(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Installed(record.id, final, commands)


def installed(prefix: Path) -> list[Installed]:
    found = []
    for manifest in sorted((prefix / "containers").glob("*/install.json")):
        data = json.loads(manifest.read_text())
        commands = [f.removeprefix("bin/") for f in data["files"] if f.startswith("bin/")]
        found.append(Installed(manifest.parent.name, manifest.parent, commands))
    return found


def uninstall_image(prefix: Path, image_id: str) -> Installed:
    matches = [i for i in installed(prefix) if i.image_id == image_id]
    if not matches:
        raise NotFoundError(f"'{image_id}' is not installed under {prefix}")
    target = matches[0]
    data = json.loads((target.directory / "install.json").read_text())
    for name in data["files"]:
        (target.directory / name).unlink(missing_ok=True)
    (target.directory / "install.json").unlink()
    for directory in (target.directory / "bin", target.directory):
        if directory.exists() and not any(directory.iterdir()):
            directory.rmdir()
    return target
