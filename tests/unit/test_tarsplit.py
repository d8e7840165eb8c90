"""Layer blobs dropped by the store and rebuilt byte for byte from a tar-split record and the
unpacked files (the format containers/storage keeps), always checked against the digest."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from neurodesk.errors import NotFoundError
from neurodesk.image.oci import OCILayout
from neurodesk.store import Store
from neurodesk.store.maintenance import gc
from neurodesk.store.tarsplit import TarSplitError, assemble, rebuild
from neurodesk.store.verify import verify_record
from tests.unit.ocihelp import write_layout

FILES = {"etc/os": b"bookworm\n", "usr/bin/tool.sh": b"#!/bin/sh\necho hi\n" * 100}


def record_of(tar: bytes) -> bytes:
    """A tar-split record (JSON lines, gzip) of ``tar``, as containers/storage writes one."""
    lines: list[dict[str, object]] = []
    position = 0
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
        for member in archive:
            lines.append({"type": 2, "payload": base64.b64encode(
                tar[position:member.offset_data]).decode()})  # fmt: skip
            entry: dict[str, object] = {"type": 1, "name": member.name}
            if member.size:
                entry["size"] = member.size
            lines.append(entry)
            position = member.offset_data + member.size
    lines.append({"type": 2, "payload": base64.b64encode(tar[position:]).decode()})
    return gzip.compress("".join(json.dumps(line) + "\n" for line in lines).encode())


def layer_with_record(tmp_path: Path) -> tuple[Path, str]:
    layout = write_layout(tmp_path / "layout", [FILES])
    manifest = OCILayout(layout).manifest()
    (layer,) = manifest.layers
    records = layout / "tarsplit"
    records.mkdir()
    tar = (layout / "blobs/sha256" / layer.hex).read_bytes()
    (records / f"{layer.hex}.gz").write_bytes(record_of(tar))
    return layout, layer.digest


def test_rebuild_gives_the_same_bytes_and_refuses_changed_files(tmp_path: Path) -> None:
    layout, digest = layer_with_record(tmp_path)
    tree = tmp_path / "tree"
    for name, data in FILES.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    record = layout / "tarsplit" / f"{digest[7:]}.gz"
    rebuilt = tmp_path / "rebuilt.tar"
    rebuild(record, tree, rebuilt, digest)
    assert rebuilt.read_bytes() == (layout / "blobs/sha256" / digest[7:]).read_bytes()

    (tree / "etc/os").write_bytes(b"trixie!!\n")  # same size, other bytes
    with pytest.raises(TarSplitError, match="not sha256"):
        rebuild(record, tree, tmp_path / "again.tar", digest)
    assert not (tmp_path / "again.tar").exists()


def test_a_record_naming_a_path_outside_the_tree_is_refused(tmp_path: Path) -> None:
    record = tmp_path / "evil.gz"
    record.write_bytes(gzip.compress(b'{"type": 1, "name": "../../etc/passwd", "size": 4}\n'))
    with pytest.raises(TarSplitError, match="outside the layer"):
        assemble(record, tmp_path, io.BytesIO())
    record.write_bytes(b"not gzip")
    with pytest.raises(TarSplitError, match="damaged"):
        assemble(record, tmp_path, io.BytesIO())


def test_store_drops_the_blob_and_rebuilds_it_for_publishing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("neurodesk.store.store.SMALL_LAYER", 0)
    layout, digest = layer_with_record(tmp_path)
    store = Store(tmp_path / "store")
    record = store.import_layout(OCILayout(layout), "tool", "1", "20260101")
    blob = store.blob_path(digest)
    assert not blob.exists() and store.tarsplit_path(digest).is_file()
    assert verify_record(store, record).ok
    assert store.blob_path(record.digest).is_file()  # the manifest is kept: same digest
    assert gc(store).blobs == 0  # the record stays while an image uses the layer

    with store.layer_blob(digest) as rebuilt:
        assert "sha256:" + hashlib.sha256(rebuilt.read_bytes()).hexdigest() == digest
        assert rebuilt.read_bytes() == (layout / "blobs/sha256" / digest[7:]).read_bytes()
    assert not rebuilt.exists() and not blob.exists()  # not brought back for good

    store.remove("tool")
    gc(store)
    assert not store.tarsplit_path(digest).exists()
    with pytest.raises(NotFoundError), store.layer_blob("sha256:" + "0" * 64):
        pass
    assert list((store.root / "tmp").iterdir()) == []
