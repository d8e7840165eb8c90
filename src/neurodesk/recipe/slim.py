"""What a shipped image does not carry, decided once: package lists and caches, documentation,
manual and info pages, message translations, build logs.

The policy has two users, so that an image is slim whichever base it starts from:

- the base made with debootstrap (``build.base``) gets :data:`DPKG_EXCLUDES` (later package
  installs never write those files), :data:`APT_CONFIG` (apt keeps no binary caches, downloaded
  packages or translated descriptions), and the files debootstrap already wrote are removed
  with :func:`excluded` and :data:`LEFTOVERS`;
- every package install step a recipe renders ends with :func:`apt_cleanup` (``apt-get clean``,
  the package lists, the same documentation rules with ``find``), in the same layer as the
  install, so nothing of it reaches a layer. The package lists go with every step and come back
  with the ``apt-get update`` that starts every install step (as upstream neurodocker does).

Kept on purpose: licence texts (``/usr/share/doc/*/copyright``, ``/usr/share/common-licenses``),
dpkg's status database (the SBOM and ``cite`` read it), locale definitions
(``/usr/share/i18n``: ``locale-gen`` needs them) and generated locales.
"""

from __future__ import annotations

import shlex
from fnmatch import fnmatchcase

# dpkg filter patterns: '*' matches any characters, '/' included (dpkg's and find -path's rule).
EXCLUDE: tuple[str, ...] = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/lintian/*",
    "/usr/share/linda/*",
    "/usr/share/locale/*.mo",
)
# Re-included after the excludes: licences stay with their package.
INCLUDE: tuple[str, ...] = ("/usr/share/doc/*/copyright",)

DPKG_EXCLUDES_PATH = "/etc/dpkg/dpkg.cfg.d/90neurodesk-slim"
DPKG_EXCLUDES = "".join(
    [
        "# neurodesk: images carry no documentation, manuals or translations; licences stay.\n",
        *(f"path-exclude={p}\n" for p in EXCLUDE),
        *(f"path-include={p}\n" for p in INCLUDE),
    ]
)

APT_CONFIG_PATH = "/etc/apt/apt.conf.d/90neurodesk-slim"
APT_CONFIG = (
    "// neurodesk: no binary caches, no downloaded packages, no translated descriptions.\n"
    'Dir::Cache::pkgcache "";\n'
    'Dir::Cache::srcpkgcache "";\n'
    'APT::Keep-Downloaded-Packages "false";\n'
    'Acquire::Languages "none";\n'
)

# Left by package managers, never needed in an image (globs relative to the root; logs keep
# their directories so the programs writing them still find them).
LEFTOVERS: tuple[str, ...] = (
    "var/lib/apt/lists/*",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/archives/partial/*",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/log/apt/*",
    "var/log/*.log",
)


def excluded(path: str) -> bool:
    """True when ``path`` (absolute, inside the image) is a file the policy leaves out."""
    return any(fnmatchcase(path, p) for p in EXCLUDE) and not any(
        fnmatchcase(path, p) for p in INCLUDE
    )


def _find_excluded() -> str:
    """One ``find`` deleting the excluded files installed so far (directories stay)."""
    excludes = " -o ".join(f"-path {shlex.quote(p)}" for p in EXCLUDE)
    includes = " ".join(f"! -path {shlex.quote(p)}" for p in INCLUDE)
    return f"find /usr/share ! -type d \\( {excludes} \\) {includes} -delete"


def apt_cleanup() -> list[str]:
    """Shell commands that end an apt install step (each must succeed)."""
    leftovers = " ".join(f"/{p}" for p in LEFTOVERS)
    return ["apt-get clean", f"rm -rf {leftovers}", _find_excluded()]
