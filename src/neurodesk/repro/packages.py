"""The software packages inside an image: dpkg, rpm, pip (dist-info, egg-info) and conda.

Everything is read with :class:`~neurodesk.repro.inside.ImageFiles`, so no link leads out of
the image root and no file is executed. Values are untrusted text: they are kept as strings,
cut to a sane length, and only become package URLs through ``packageurl``, which quotes them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path

from packageurl import PackageURL

from neurodesk.repro.inside import ImageFiles

FIELD_LIMIT = 512
# Python installations looked at (globbed one level where '*' appears)
PYTHON_ROOTS = ("/usr/lib", "/usr/local/lib", "/opt/conda/lib", "/opt/*/lib", "/usr/lib64")
CONDA_ROOTS = ("/opt/conda", "/opt/*", "/usr/local", "/opt/conda/envs/*")
RPM_DIRS = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
RPM_OTHER_FORMATS = ("Packages", "Packages.db")  # BerkeleyDB (RHEL <= 8), ndb (SUSE)
# rpm header tags and types (rpmtag.h)
RPM_TAGS = {1000: "name", 1001: "version", 1002: "release", 1003: "epoch", 1014: "license",
            1020: "url", 1022: "arch"}  # fmt: skip
RPM_INT32, RPM_STRING, RPM_I18NSTRING = 4, 6, 9


@dataclass(frozen=True)
class Package:
    ecosystem: str  # "deb", "rpm", "pypi", "conda"
    name: str
    version: str
    arch: str = ""
    license: str = ""
    homepage: str = ""
    source: str = ""  # the file it was found in, inside the image
    qualifiers: tuple[tuple[str, str], ...] = ()

    @property
    def purl(self) -> str:
        namespace = {
            "deb": self.qualifier("distro_id") or "debian",
            "rpm": self.qualifier("distro_id") or None,
        }.get(self.ecosystem)
        name = self.name
        if self.ecosystem == "pypi":
            name = re.sub(r"[-_.]+", "-", name).lower()
        quals = {k: v for k, v in self.qualifiers if v and k != "distro_id"}
        if self.arch:
            quals["arch"] = self.arch
        return PackageURL(
            type=self.ecosystem,
            namespace=namespace,
            name=name,
            version=self.version or None,
            qualifiers=quals or None,
        ).to_string()

    def qualifier(self, key: str) -> str:
        return next((v for k, v in self.qualifiers if k == key), "")


@dataclass
class Inventory:
    packages: list[Package] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be read, for people
    os_id: str = ""
    os_version: str = ""


def _cut(text: object) -> str:
    return " ".join(str(text).split())[:FIELD_LIMIT] if text else ""


def os_release(files: ImageFiles) -> tuple[str, str]:
    text = files.read_text("/etc/os-release", 1 << 16) or ""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("\"'")
    return _cut(values.get("ID")), _cut(values.get("VERSION_ID"))


# -- dpkg ----------------------------------------------------------------------------------------
def _stanzas(text: str) -> Iterator[dict[str, str]]:
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                yield current
            current, key = {}, ""
        elif line[0] in " \t":
            continue  # continuation lines (descriptions, conffiles): not needed
        else:
            key, _, value = line.partition(":")
            current[key.strip()] = value.strip()
    if current:
        yield current


def dpkg_packages(files: ImageFiles, distro: str) -> list[Package]:
    texts = [("/var/lib/dpkg/status", files.read_text("/var/lib/dpkg/status"))]
    texts += [  # distroless images: one file per package
        (f"/var/lib/dpkg/status.d/{n}", files.read_text(f"/var/lib/dpkg/status.d/{n}"))
        for n in files.listdir("/var/lib/dpkg/status.d")
    ]
    out = []
    for where, text in texts:
        for stanza in _stanzas(text or ""):
            status = stanza.get("Status", "install ok installed").split()
            if status[-1:] != ["installed"] or not stanza.get("Package"):
                continue
            source = stanza.get("Source", "").split(" ")[0]
            out.append(
                Package(
                    "deb",
                    _cut(stanza["Package"]),
                    _cut(stanza.get("Version")),
                    arch=_cut(stanza.get("Architecture")),
                    homepage=_cut(stanza.get("Homepage")),
                    source=where,
                    qualifiers=(
                        ("distro_id", distro.split("-")[0]),
                        ("distro", distro),
                        ("upstream", _cut(source)),
                    ),
                )
            )
    return out


# -- pip ------------------------------------------------------------------------------------------
def _expand(files: ImageFiles, pattern: str) -> list[str]:
    """``/opt/*/lib`` → the directories of the image matching it (one ``*`` component)."""
    head, star, tail = pattern.partition("*")
    if not star:
        return [pattern] if files.is_dir(pattern) else []
    found = [f"{head}{name}{tail}" for name in files.listdir(head.rstrip("/") or "/")]
    return [p for p in found if files.is_dir(p)]


def _site_dirs(files: ImageFiles) -> list[str]:
    dirs: list[str] = []
    for pattern in PYTHON_ROOTS:
        for lib in _expand(files, pattern):
            for name in files.listdir(lib):
                if re.fullmatch(r"python3(\.\d+)?", name):
                    for kind in ("site-packages", "dist-packages"):
                        path = f"{lib}/{name}/{kind}"
                        if files.is_dir(path) and path not in dirs:
                            dirs.append(path)
    return dirs


def _metadata(text: str) -> dict[str, str]:
    headers = HeaderParser().parsestr(text, headersonly=True)
    return {k: _cut(v) for k, v in headers.items()}


def pip_packages(files: ImageFiles) -> list[Package]:
    out = []
    seen: set[tuple[str, str, str]] = set()
    for site in _site_dirs(files):
        for entry in files.listdir(site):
            if entry.endswith(".dist-info"):
                meta_path = f"{site}/{entry}/METADATA"
            elif entry.endswith(".egg-info"):
                meta_path = (
                    f"{site}/{entry}/PKG-INFO"
                    if files.is_dir(f"{site}/{entry}")
                    else (f"{site}/{entry}")
                )
            else:
                continue
            text = files.read_text(meta_path, 1 << 20)
            meta = _metadata(text) if text else {}
            name, version = meta.get("Name", ""), meta.get("Version", "")
            if not name:
                continue
            key = (site, name.lower(), version)
            if key in seen:
                continue
            seen.add(key)
            license_text = meta.get("License-Expression") or meta.get("License", "")
            out.append(
                Package(
                    "pypi",
                    name,
                    version,
                    license=license_text if len(license_text) < 80 else "",
                    homepage=meta.get("Home-page", ""),
                    source=meta_path,
                )
            )
    return out


# -- conda ----------------------------------------------------------------------------------------
def conda_packages(files: ImageFiles) -> list[Package]:
    out = []
    prefixes = dict.fromkeys(p for pattern in CONDA_ROOTS for p in _expand(files, pattern))
    for prefix in prefixes:
        meta_dir = f"{prefix}/conda-meta"
        for entry in files.listdir(meta_dir):
            if not entry.endswith(".json"):
                continue
            try:
                data = json.loads(files.read_text(f"{meta_dir}/{entry}", 4 << 20) or "")
            except ValueError:
                continue
            if not isinstance(data, dict) or not data.get("name"):
                continue
            out.append(
                Package(
                    "conda",
                    _cut(data["name"]),
                    _cut(data.get("version")),
                    arch=_cut(data.get("subdir")),
                    license=_cut(data.get("license")),
                    source=f"{meta_dir}/{entry}",
                    qualifiers=(
                        ("build", _cut(data.get("build"))),
                        ("channel", _cut(data.get("channel"))),
                    ),
                )
            )
    return out


# -- rpm ------------------------------------------------------------------------------------------
def parse_rpm_header(blob: bytes) -> dict[str, str]:
    """The tags we list from one rpm header as stored in the database (no lead, no magic):
    entry count and data length, then 16-byte index entries, then the data; big-endian."""
    if len(blob) < 8:
        return {}
    count, size = struct.unpack(">ii", blob[:8])
    if count <= 0 or size < 0 or 8 + 16 * count + size > len(blob):
        return {}
    data = blob[8 + 16 * count : 8 + 16 * count + size]
    out: dict[str, str] = {}
    for i in range(count):
        tag, kind, offset, _n = struct.unpack(">iiii", blob[8 + 16 * i : 24 + 16 * i])
        key = RPM_TAGS.get(tag)
        if key is None or not 0 <= offset < len(data):
            continue
        if kind in (RPM_STRING, RPM_I18NSTRING):
            end = data.find(b"\0", offset)
            out[key] = _cut(data[offset : end if end >= 0 else None].decode("utf-8", "replace"))
        elif kind == RPM_INT32 and offset + 4 <= len(data):
            out[key] = str(struct.unpack(">i", data[offset : offset + 4])[0])
    return out


def rpm_packages(files: ImageFiles, distro: str, notes: list[str]) -> list[Package]:
    """Packages of an rpm database in sqlite format (rpm >= 4.16: Fedora, RHEL 9, ...).

    The database (and its write-ahead log) is copied out of the image, each file read inside
    the root, and opened there: the image is never written to, and nothing in it is run.
    """
    for directory in RPM_DIRS:
        if files.resolve(f"{directory}/rpmdb.sqlite") is None:
            others = [n for n in RPM_OTHER_FORMATS if files.resolve(f"{directory}/{n}")]
            if others:
                notes.append(f"{directory}/{others[0]}: this rpm database format is not read")
            continue
        with tempfile.TemporaryDirectory(prefix="nd-rpmdb-") as scratch:
            for name in ("rpmdb.sqlite", "rpmdb.sqlite-wal"):
                data = files.read_bytes(f"{directory}/{name}")
                if data is not None:
                    (Path(scratch) / name).write_bytes(data)
            try:
                with sqlite3.connect(Path(scratch) / "rpmdb.sqlite") as db:
                    rows = db.execute("SELECT blob FROM Packages").fetchall()
            except sqlite3.Error as exc:
                notes.append(f"{directory}/rpmdb.sqlite could not be read: {exc}")
                continue
        out = []
        for (blob,) in rows:
            tags = parse_rpm_header(bytes(blob)) if isinstance(blob, bytes) else {}
            if not tags.get("name") or tags["name"] == "gpg-pubkey":
                continue
            version = tags.get("version", "")
            if tags.get("release"):
                version += f"-{tags['release']}"
            out.append(
                Package(
                    "rpm",
                    tags["name"],
                    version,
                    arch=tags.get("arch", ""),
                    license=tags.get("license", ""),
                    homepage=tags.get("url", ""),
                    source=f"{directory}/rpmdb.sqlite",
                    qualifiers=(
                        ("distro_id", distro.split("-")[0]),
                        ("distro", distro),
                        ("epoch", tags.get("epoch", "")),
                    ),
                )
            )
        return out
    return []


# -- everything -----------------------------------------------------------------------------------
def inventory(files: ImageFiles) -> Inventory:
    os_id, os_version = os_release(files)
    distro = f"{os_id}-{os_version}" if os_id and os_version else os_id
    result = Inventory(os_id=os_id, os_version=os_version)
    result.packages += dpkg_packages(files, distro)
    result.packages += pip_packages(files)
    result.packages += conda_packages(files)
    result.packages += rpm_packages(files, distro, result.notes)
    return result
