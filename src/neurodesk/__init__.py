"""neurodesk: reproducible neuroimaging with software containers."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["__version__"]

if TYPE_CHECKING:
    __version__: str


def _installed_version() -> str:
    """The version in our ``neurodesk-<version>.dist-info`` on sys.path (where importlib.metadata
    looks first too), read without importing importlib.metadata (~15 ms: email, zipfile, csv)
    that 'neurodesk --version', a wrapper's install or a SLURM task would pay."""
    import os
    import sys

    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith("neurodesk-") and name.endswith(".dist-info"):
                try:
                    with open(os.path.join(entry, name, "METADATA"), encoding="utf-8") as meta:
                        for line in meta:
                            if line.startswith("Version:"):
                                return line.partition(":")[2].strip()
                            if not line.strip():
                                break  # the headers end here
                except OSError:
                    pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("neurodesk")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0+src"


def __getattr__(name: str) -> str:
    # Looked up on first use: 'neurodesk search' does not need it.
    if name == "__version__":
        found = _installed_version()
        globals()["__version__"] = found
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
