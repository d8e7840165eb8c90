"""neurodesk: reproducible neuroimaging with software containers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("neurodesk")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
