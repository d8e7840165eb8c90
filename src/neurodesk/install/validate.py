"""The values from an image that may reach a generated file, and the patterns they must match.

An image is untrusted: its name, environment, ``DEPLOY_*`` values, recipe and file names end up
in shell scripts, Lua and Tcl modules, desktop entries and JSON. Every such value is quoted for
its language by the templates; the values that also name files or shell variables (commands,
environment keys, image names) must match the strict patterns below, and an image with one that
does not is refused before anything is written, with one line naming the bad value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from neurodesk.errors import NeurodeskError
from neurodesk.store import ImageRecord

COMMAND = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+@-]{0,127}")
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
IMAGE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
# Free text (descriptions, categories, URLs, env values) may hold anything but these.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class UnsafeImageError(NeurodeskError):
    """An image carries a value that cannot be installed safely."""

    exit_code = 4


def _refuse(what: str, value: str, rule: str) -> UnsafeImageError:
    return UnsafeImageError(
        f"the image's {what} {value!r} is not allowed ({rule})",
        hint="fix the recipe and rebuild the image, or install another image",
    )


def check_command(name: str, what: str = "command name") -> str:
    if not COMMAND.fullmatch(name):
        raise _refuse(what, name, "letters, digits and . _ + @ - only, at most 128")
    return name


def check_env_key(key: str) -> str:
    if not ENV_KEY.fullmatch(key):
        raise _refuse("environment variable", key, "letters, digits and _, not first a digit")
    return key


def check_text(value: str, what: str, multiline: bool = False) -> str:
    """Free text: no NUL or control characters (newlines and tabs only where ``multiline``)."""
    bad = _CONTROL.search(value) if multiline else re.search(r"[\x00-\x1f\x7f]", value)
    if bad:
        raise _refuse(what, value[:80], "no control characters")
    return value


def check_image(record: ImageRecord) -> None:
    """Name, version, build date and every environment key and DEPLOY_* value of ``record``."""
    for what, value in (
        ("name", record.name),
        ("version", record.version),
        ("build date", record.builddate),
    ):
        if not IMAGE_PART.fullmatch(value):
            raise _refuse(what, value, "letters, digits and . _ + - only, at most 128")
    for key, value in record.env.items():
        check_env_key(key)
        check_text(value, f"value of {key}")
    for entry in record.deploy_env("DEPLOY_BINS"):
        check_command(entry.rsplit("/", 1)[-1], "DEPLOY_BINS entry")
    for entry in record.deploy_env("DEPLOY_PATH"):
        if not entry.startswith("/"):
            raise _refuse("DEPLOY_PATH entry", entry, "an absolute path")


def check_commands(commands: Iterable[str]) -> None:
    for command in commands:
        check_command(command)
