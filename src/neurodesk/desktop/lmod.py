"""``module load`` from Python: what a host kernel uses to bring installed tools onto its PATH.

Lmod answers ``$LMOD_CMD python load NAME`` with Python statements that change ``os.environ``
(the same protocol as Lmod's own ``env_modules_python.py``); running them in the kernel's process
changes the environment of every command the notebook starts afterwards (``!dcm2niix``,
``subprocess.run``, nipype). In IPython, ``%load_ext neurodesk.desktop.lmod`` (done for the host
kernels of ``neurodesk desktop``) adds the ``%module`` and ``%ml`` magics::

    %module load dcm2niix
    !dcm2niix -h
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from neurodesk.errors import MissingToolError, NeurodeskError

LMOD_CMD = Path("/usr/share/lmod/lmod/libexec/lmod")


def lmod_cmd() -> str:
    found = os.environ.get("LMOD_CMD") or (str(LMOD_CMD) if LMOD_CMD.is_file() else "")
    if not found:
        raise MissingToolError("Lmod is not installed", hint="sudo apt-get install lmod")
    return found


def module(*args: str) -> str:
    """Run ``module ARGS`` for this process: environment changes apply here; returns the text."""
    if not args:
        args = ("list",)
    env = dict(os.environ, LMOD_PAGER="none", LMOD_REDIRECT="no")
    proc = subprocess.run(
        [lmod_cmd(), "python", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    # Lmod's output for the python shell: assignments to os.environ and a status flag.
    scope: dict[str, Any] = {"os": os}
    exec(compile(proc.stdout, "<lmod>", "exec"), scope)
    if proc.returncode != 0 or scope.get("_mlstatus") is False:
        message = " ".join(proc.stderr.split()) or f"module {' '.join(args)} failed"
        raise NeurodeskError(message)
    return proc.stderr


def _magic(line: str) -> None:
    try:
        text = module(*shlex.split(line))
    except NeurodeskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return
    if text.strip():
        print(text.rstrip())


def load_ipython_extension(ipython: Any) -> None:
    """``%module ...`` and ``%ml ...`` in IPython kernels."""
    ipython.register_magic_function(_magic, "line", "module")
    ipython.register_magic_function(_magic, "line", "ml")
