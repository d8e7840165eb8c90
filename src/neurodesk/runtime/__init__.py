"""Running commands in images: one RunSpec, translated by each runtime backend.

The names below are imported from :mod:`neurodesk.runtime.spec` on first use, so a light
submodule can be imported alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neurodesk.runtime.spec import Bind, RunSpec, build_runspec

__all__ = ["Bind", "RunSpec", "build_runspec"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from neurodesk.runtime import spec

        return getattr(spec, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
