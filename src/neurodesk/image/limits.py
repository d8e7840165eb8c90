"""Decompression limits: how much one image may unpack to, so a layer bomb is refused early.

A layer is a compressed tar; a few kilobytes can declare gigabytes (a highly compressible file,
or a sparse entry whose holes read as zeros). Before a file is written its declared size is
added to the image's total, and the image is refused with one line as soon as the total would
pass the cap — the disk never fills.

Per image, the unpacked size may be at most ``max_unpack_ratio`` times the compressed size of
its layers, and never more than ``max_unpack_size`` bytes; it may hold at most
``max_unpack_files`` entries. Each is set in ``$NEURODESK_HOME/config.yaml`` (keys of the same
names) or, overriding that, in the environment:

==========================  ==============================  ==============
config.yaml key             environment variable            default
==========================  ==============================  ==============
``max_unpack_ratio``        ``NEURODESK_MAX_UNPACK_RATIO``  20
``max_unpack_size``         ``NEURODESK_MAX_UNPACK_SIZE``   64 GiB (``64G``)
``max_unpack_files``        ``NEURODESK_MAX_UNPACK_FILES``  2,000,000
==========================  ==============================  ==============

Sizes take a ``K``, ``M``, ``G`` or ``T`` suffix (powers of 1024).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from neurodesk.errors import NeurodeskError

GIB = 1 << 30
KEYS = {
    "max_unpack_ratio": "NEURODESK_MAX_UNPACK_RATIO",
    "max_unpack_size": "NEURODESK_MAX_UNPACK_SIZE",
    "max_unpack_files": "NEURODESK_MAX_UNPACK_FILES",
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class UnpackLimitError(NeurodeskError):
    """An image would unpack to more than the limits allow (a decompression bomb, or a limit
    set too low for a genuinely large image)."""


def parse_size(value: object, where: str) -> int:
    """A byte count from an int or a string like ``64G``; NeurodeskError naming ``where``."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise NeurodeskError(
            f"{where}: {value!r} is not a size", hint="give bytes, or a number with K, M, G or T"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _positive(value: object, where: str, integer: bool) -> float:
    try:
        number = int(str(value)) if integer else float(str(value))
    except ValueError:
        number = -1
    if isinstance(value, bool) or number <= 0:
        kind = "a whole number" if integer else "a number"
        raise NeurodeskError(f"{where}: {value!r} is not {kind} above 0")
    return number


@dataclass(frozen=True)
class UnpackLimits:
    ratio: float = 20.0
    max_size: int = 64 * GIB
    max_files: int = 2_000_000

    def size_cap(self, compressed: int) -> int:
        """The most bytes an image whose layers take ``compressed`` bytes may unpack to."""
        return min(self.max_size, int(self.ratio * max(compressed, 1)))

    @classmethod
    def load(cls, config_file: Path | None = None) -> UnpackLimits:
        """Defaults, then ``config_file``'s keys, then the environment."""
        limits = cls()
        values: dict[str, Any] = {}
        if config_file is not None and config_file.is_file():
            try:
                data = yaml.safe_load(config_file.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError, OSError):
                data = None  # reported by the config loader of the sources, which owns the file
            if isinstance(data, dict):
                values = {k: (str(config_file), data[k]) for k in KEYS if k in data}
        for key, env in KEYS.items():
            if os.environ.get(env, "").strip():
                values[key] = (env, os.environ[env])
        for key, (where, value) in values.items():
            label = f"{where}: {key}" if where != KEYS[key] else where
            if key == "max_unpack_ratio":
                limits = replace(limits, ratio=_positive(value, label, integer=False))
            elif key == "max_unpack_size":
                limits = replace(limits, max_size=parse_size(value, label))
            else:
                limits = replace(limits, max_files=int(_positive(value, label, integer=True)))
        return limits


class Budget:
    """What one image has unpacked so far, against its limits."""

    def __init__(self, limits: UnpackLimits, compressed: int, what: str) -> None:
        self.limits = limits
        self.cap = limits.size_cap(compressed)
        self.compressed = compressed
        self.what = what
        self.size = 0
        self.files = 0

    def take(self, name: str, size: int) -> None:
        """Count one entry of ``size`` bytes; UnpackLimitError when it would pass a limit."""
        self.files += 1
        if self.files > self.limits.max_files:
            raise UnpackLimitError(
                f"{self.what} has more than {self.limits.max_files} files; refused "
                "(a decompression bomb?)",
                hint="raise max_unpack_files in config.yaml or NEURODESK_MAX_UNPACK_FILES "
                "if you trust this image",
            )
        self.size += max(size, 0)
        if self.size > self.cap:
            raise UnpackLimitError(
                f"{self.what} unpacks to more than {self.cap} bytes at '{name[:200]}' "
                f"({self.compressed} bytes compressed); refused (a decompression bomb?)",
                hint="raise max_unpack_ratio / max_unpack_size in config.yaml (or "
                "NEURODESK_MAX_UNPACK_RATIO / _SIZE) if you trust this image",
            )
