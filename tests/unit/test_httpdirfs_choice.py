"""Which httpdirfs a lazy install records, and when its block cache is on: chosen once at
install from the version the binary reports (a stand-in script here, no FUSE needed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from neurodesk.store import httpdirfs
from neurodesk.store.sifmount import SifMeta, render_script

HOSTILE = "x'; touch /tmp/nd-pwned; echo '$(id)`id`"
DIGEST = "sha256:" + "ab" * 32


def _fake(tmp_path: Path, says: str) -> Path:
    tool = tmp_path / "httpdirfs"
    tool.write_text(f"#!/bin/sh\necho '{says}'\n")
    tool.chmod(0o755)
    return tool


@pytest.mark.parametrize(
    ("says", "version", "cache"),
    [
        ("HTTPDirFS version 1.2.5", (1, 2, 5), False),
        ("HTTPDirFS version 1.2.10", (1, 2, 10), True),
        ("HTTPDirFS version 1.3.3", (1, 3, 3), True),
        ("something else", (0,), False),
    ],
)
def test_the_cache_is_on_only_from_the_version_that_fixed_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    says: str,
    version: tuple[int, ...],
    cache: bool,
) -> None:
    monkeypatch.setenv(httpdirfs.CHOICE, str(_fake(tmp_path, says)))
    tool = httpdirfs.find()
    assert tool is not None and tool.version == version
    where = httpdirfs.cache_dir(tool, tmp_path / "cache", DIGEST)
    assert (where == tmp_path / "cache" / "sif" / ("ab" * 32)) if cache else where is None
    assert httpdirfs.cache_dir(tool, None, DIGEST) is None  # lazy_cache: false


def test_the_choice_and_cache_are_written_into_mount_sh_quoted(tmp_path: Path) -> None:
    meta = SifMeta(
        32768, 1000, DIGEST, "http://h/a.sif", "a.sif", (0, 0), HOSTILE, "1.3.3", HOSTILE
    )
    assert SifMeta.load(_saved(tmp_path, meta)) == meta
    header = render_script("id", meta).split("\nnd_dir=", 1)[0]
    out = subprocess.run(
        ["sh", "-c", header + '\nprintf "%s|%s" "$nd_httpdirfs" "$nd_cache"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == f"{HOSTILE}|{HOSTILE}"


def test_an_image_installed_before_records_nothing_and_runs_httpdirfs_from_path(
    tmp_path: Path,
) -> None:
    meta = SifMeta(32768, 1000, DIGEST, "http://h/a.sif", "a.sif")
    header = render_script("id", meta).split("\nnd_dir=", 1)[0]
    out = subprocess.run(
        ["sh", "-c", header + '\nprintf "%s|%s" "$nd_httpdirfs" "$nd_cache"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == "httpdirfs|"


def _saved(tmp_path: Path, meta: SifMeta) -> Path:
    (tmp_path / "sif.json").write_text(json.dumps(meta.to_json()))
    return tmp_path
