"""Per-file manifests (files.json): every kind of change to a directory is one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neurodesk.image.oci import ImageFormatError
from neurodesk.store.filemanifest import MANIFEST_NAME, compare, load_manifest, write_manifest


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "c"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "lib").mkdir()
    (root / "lib" / "libx.so.1").write_bytes(b"\x7fELF" + bytes(100))
    os.symlink("libx.so.1", root / "lib" / "libx.so")
    os.symlink("/etc", root / "etc-link")  # recorded as a link, never followed
    write_manifest(root)
    return root


def test_an_untouched_tree_matches(tree: Path) -> None:
    entries = load_manifest(tree / MANIFEST_NAME)
    assert {e.path for e in entries} == {
        "bin", "bin/tool", "lib", "lib/libx.so.1", "lib/libx.so", "etc-link"
    }  # fmt: skip
    assert compare(tree, entries) == []


def test_every_change_is_named(tree: Path) -> None:
    expected = load_manifest(tree / MANIFEST_NAME)
    (tree / "bin" / "tool").write_bytes(b"#!/bin/sh\n")  # truncated
    data = bytearray((tree / "lib" / "libx.so.1").read_bytes())
    data[50] ^= 1
    (tree / "lib" / "libx.so.1").write_bytes(bytes(data))  # one flipped bit
    (tree / "lib" / "libx.so").unlink()
    os.symlink("/host/lib", tree / "lib" / "libx.so")  # link retargeted
    (tree / "etc-link").unlink()  # removed
    (tree / "bin" / "extra").write_text("x")  # added
    (tree / "bin").chmod(0o777)  # mode changed
    problems = compare(tree, expected)
    assert problems == [
        "bin: mode 777, expected 755",
        "bin/extra: not in the manifest (added)",
        "bin/tool: 10 bytes, expected 18 (truncated?)",
        "etc-link: missing",
        "lib/libx.so: link to '/host/lib', expected 'libx.so.1'",
        f"lib/libx.so.1: content differs (sha256 {problems[5].split('sha256 ')[1]}",
    ]


@pytest.mark.parametrize(
    "content", [b"", b"\xff", b"[]", b'{"schema": 9}', b'{"schema": 1, "files": [1]}']
)
def test_a_damaged_manifest_is_one_error(tree: Path, content: bytes) -> None:
    (tree / MANIFEST_NAME).write_bytes(content)
    with pytest.raises(ImageFormatError, match="is damaged"):
        load_manifest(tree / MANIFEST_NAME)
