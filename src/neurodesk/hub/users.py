"""What the hub does for a user before their server starts: account, home, scratch.

Runs in the hub (as root). Homes are closed to other users (0700), each user's scratch is
``<scratch>/<user>`` (0700, theirs) under a root-owned directory others cannot list, and the
shared site tree and data stay root-owned and read-only.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from neurodesk.errors import NeurodeskError
from neurodesk.hub.settings import USER_NAME


class HubUserError(NeurodeskError):
    """A user's account or directories cannot be set up."""


def system_user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def ensure_system_user(name: str) -> pwd.struct_passwd:
    """The account ``name``, created (home, bash, no password) when missing."""
    if not USER_NAME.match(name):
        raise HubUserError(f"{name!r} cannot be a system user name")
    found = system_user(name)
    if found is not None:
        return found
    proc = subprocess.run(
        ["useradd", "--create-home", "--shell", "/bin/bash", "--", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise HubUserError(f"cannot create user {name}: {proc.stderr.strip()}")
    created = system_user(name)
    if created is None:
        raise HubUserError(f"user {name} was created but cannot be found")
    return created


def close_home(account: pwd.struct_passwd) -> None:
    """Only the user may enter their home."""
    home = Path(account.pw_dir)
    if home.is_dir() and home.stat().st_uid == account.pw_uid:
        home.chmod(0o700)


def private_dir(path: Path, account: pwd.struct_passwd) -> Path:
    """A directory of the user's own (0700): made by root for them, never through a link."""
    if path.is_symlink():
        raise HubUserError(f"{path} is a symbolic link; remove it")
    if not path.exists():
        path.mkdir(mode=0o700)
        os.chown(path, account.pw_uid, account.pw_gid)
    return path


def user_scratch(scratch_root: Path, account: pwd.struct_passwd) -> Path:
    """``<scratch_root>/<user>``: theirs alone; the root lets nobody list who else has one."""
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch_root.chmod(0o711)
    mine = scratch_root / account.pw_name
    mine.mkdir(mode=0o700, exist_ok=True)
    if mine.is_symlink():
        raise HubUserError(f"{mine} is a symbolic link; remove it")
    os.chown(mine, account.pw_uid, account.pw_gid)
    mine.chmod(0o700)
    return mine
