"""The local content-addressed image store."""

from neurodesk.store.store import ImageRecord, Store

__all__ = ["ImageRecord", "Store"]
