"""Running commands in images: one RunSpec, translated by each runtime backend."""

from neurodesk.runtime.spec import Bind, RunSpec, build_runspec

__all__ = ["Bind", "RunSpec", "build_runspec"]
