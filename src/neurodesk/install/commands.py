"""Which commands an image exposes: executables in DEPLOY_PATH dirs plus DEPLOY_BINS."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from neurodesk.image.layers import RootFS
from neurodesk.store import ImageRecord

# Generic system programs never wrapped, even when a DEPLOY_PATH directory holds them.
GENERIC_NAMES = frozenset(
    (
        "awk",
        "basename",
        "bash",
        "cat",
        "chmod",
        "chown",
        "cp",
        "cut",
        "date",
        "dd",
        "df",
        "diff",
        "dirname",
        "du",
        "echo",
        "env",
        "expr",
        "false",
        "find",
        "grep",
        "gunzip",
        "gzip",
        "head",
        "hostname",
        "id",
        "install",
        "kill",
        "less",
        "ln",
        "ls",
        "md5sum",
        "mkdir",
        "mktemp",
        "more",
        "mv",
        "nice",
        "nohup",
        "perl",
        "pigz",
        "printf",
        "ps",
        "pwd",
        "python",
        "python2",
        "python3",
        "readlink",
        "realpath",
        "rm",
        "rmdir",
        "sed",
        "seq",
        "sh",
        "sleep",
        "sort",
        "split",
        "stat",
        "tail",
        "tar",
        "tee",
        "test",
        "time",
        "timeout",
        "touch",
        "tr",
        "true",
        "uname",
        "uniq",
        "unzip",
        "wc",
        "which",
        "whoami",
        "xargs",
        "zcat",
        "zip",
    )
)


def _executables(rootfs: RootFS, directory: str) -> list[str]:
    parts = [p for p in directory.split("/") if p]
    try:
        host_dir = rootfs.resolve_dir(parts, create=False)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in os.scandir(host_dir):
        if entry.is_symlink():
            found.append(entry.name)  # upstream counts symlinks; their targets live in the image
        elif entry.is_file() and os.access(entry.path, os.X_OK):
            found.append(entry.name)
    return found


def discover_commands(record: ImageRecord) -> list[str]:
    rootfs = RootFS(record.rootfs)
    names: set[str] = set()
    for directory in record.deploy_env("DEPLOY_PATH"):
        names.update(_executables(rootfs, directory))
    names.update(posixpath.basename(b) for b in record.deploy_env("DEPLOY_BINS"))
    return sorted(n for n in names if n not in GENERIC_NAMES and not n.startswith("."))


def write_commands_txt(commands: list[str], path: Path) -> None:
    path.write_text("".join(f"{c}\n" for c in commands))
