"""neurodesk: reproducible neuroimaging with software containers."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["__version__"]

if TYPE_CHECKING:
    __version__: str


def __getattr__(name: str) -> str:
    # Looked up on first use: importlib.metadata costs ~15 ms that 'neurodesk search' and a
    # SLURM task do not need.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("neurodesk")
        except PackageNotFoundError:  # running from a source tree that is not installed
            found = "0.0.0+src"
        globals()["__version__"] = found
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
