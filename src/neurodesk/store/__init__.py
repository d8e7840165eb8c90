"""The local content-addressed image store.

``ImageRecord`` and ``Store`` are imported from :mod:`neurodesk.store.store` on first use, so a
light submodule (``version``, ``atomic``) can be imported without the store's machinery (file
locks, layer extraction, deduplication): ``neurodesk search`` has a budget of 100 ms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neurodesk.store.store import ImageRecord, Store

__all__ = ["ImageRecord", "Store"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from neurodesk.store import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
