"""Decompression limits (issue 17): bombs are refused with one line before the disk fills,
sparse entries are stored sparse, names the file system cannot hold are one error."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from neurodesk.errors import NeurodeskError
from neurodesk.image.layers import UnsafeLayerError, unpack_layers
from neurodesk.image.limits import UnpackLimitError, UnpackLimits
from tests.conftest import assert_one_line_error, run_cli

GIB = 1 << 30


def sparse_layer(tmp_path: Path, apparent: int, data_at: int = 0) -> Path:
    """A gzip layer (made by GNU tar --sparse) with one sparse file of ``apparent`` bytes."""
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big.img"
    with big.open("wb") as handle:
        handle.truncate(apparent)
        handle.seek(data_at)
        handle.write(b"DATA")
    layer = tmp_path / "sparse.tar.gz"
    subprocess.run(
        ["tar", "--sparse", "--format=gnu", "-czf", str(layer), "-C", str(src), "big.img"],
        check=True,
    )
    return layer


def zeros_layer(path: Path, size: int) -> Path:
    """A regular (not sparse) file of ``size`` zero bytes, gzip-compressed: tiny on disk."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo("zeros.bin")
        info.size = size
        archive.addfile(info, io.BytesIO(bytes(size)))
    path.write_bytes(gzip.compress(raw.getvalue(), compresslevel=9))
    return path


def test_a_32k_layer_with_one_sparse_6gib_entry_is_refused(tmp_path: Path) -> None:
    layer = sparse_layer(tmp_path, 6 * GIB)
    assert layer.stat().st_size < 32 * 1024
    root = tmp_path / "rootfs"
    root.mkdir()
    with pytest.raises(UnpackLimitError, match="decompression bomb") as caught:
        unpack_layers([layer], root)
    assert "\n" not in str(caught.value)
    assert not (root / "big.img").exists()  # refused before a byte was written


def test_a_sparse_entry_within_the_limits_is_stored_sparse(tmp_path: Path) -> None:
    layer = sparse_layer(tmp_path, 64 << 20, data_at=40 << 20)
    root = tmp_path / "rootfs"
    root.mkdir()
    unpack_layers([layer], root, UnpackLimits(ratio=1e6))
    out = root / "big.img"
    assert out.stat().st_size == 64 << 20
    assert out.stat().st_blocks * 512 < 4 << 20  # holes stayed holes
    with out.open("rb") as handle:
        handle.seek(40 << 20)
        assert handle.read(4) == b"DATA"


def test_a_highly_compressible_layer_is_refused(tmp_path: Path) -> None:
    layer = zeros_layer(tmp_path / "zeros.tar.gz", 64 << 20)
    assert layer.stat().st_size < 200 * 1024
    root = tmp_path / "rootfs"
    root.mkdir()
    with pytest.raises(UnpackLimitError, match="more than"):
        unpack_layers([layer], root)
    assert not (root / "zeros.bin").exists()
    # The same layer is fine once the user raises the ratio for an image they trust.
    unpack_layers([layer], root, UnpackLimits(ratio=2000))
    assert (root / "zeros.bin").stat().st_size == 64 << 20


def test_the_absolute_cap_and_the_file_count(tmp_path: Path) -> None:
    layer = zeros_layer(tmp_path / "zeros.tar.gz", 1 << 20)
    root = tmp_path / "rootfs"
    root.mkdir()
    with pytest.raises(UnpackLimitError):
        unpack_layers([layer], root, UnpackLimits(ratio=1e9, max_size=512 * 1024))
    many = tmp_path / "many.tar"
    with tarfile.open(many, "w") as archive:
        for i in range(11):
            archive.addfile(tarfile.TarInfo(f"f{i}"), io.BytesIO(b""))
    with pytest.raises(UnpackLimitError, match="more than 10 files"):
        unpack_layers([many], tmp_path / "rootfs", UnpackLimits(max_files=10))


def test_limits_come_from_config_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("max_unpack_ratio: 5\nmax_unpack_size: 2G\nmax_unpack_files: 100\n")
    monkeypatch.delenv("NEURODESK_MAX_UNPACK_RATIO", raising=False)
    assert UnpackLimits.load(config) == UnpackLimits(5.0, 2 * GIB, 100)
    monkeypatch.setenv("NEURODESK_MAX_UNPACK_RATIO", "50")
    assert UnpackLimits.load(config).ratio == 50.0
    monkeypatch.setenv("NEURODESK_MAX_UNPACK_SIZE", "lots")
    with pytest.raises(NeurodeskError, match="NEURODESK_MAX_UNPACK_SIZE"):
        UnpackLimits.load(config)


@pytest.mark.parametrize("name", ["a" * 300, "usr/" + "b" * 256 + "/x", "/".join(["c" * 200] * 25)])
def test_names_longer_than_the_file_system_allows_are_one_error(tmp_path: Path, name: str) -> None:
    layer = tmp_path / "long.tar"
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    root = tmp_path / "rootfs"
    root.mkdir()
    with pytest.raises(UnsafeLayerError, match="longer than"):
        unpack_layers([layer], root)


def test_a_damaged_layer_is_one_error(tmp_path: Path) -> None:
    layer = zeros_layer(tmp_path / "z.tar.gz", 1 << 20)
    layer.write_bytes(layer.read_bytes()[:300])
    root = tmp_path / "rootfs"
    root.mkdir()
    with pytest.raises(NeurodeskError, match="not a readable tar"):
        unpack_layers([layer], root, UnpackLimits(ratio=1e6))


def _layout(root: Path, layer: bytes, media: str) -> Path:
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    layer_desc = {"mediaType": media, **blob(layer)}
    config = {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]}}
    config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json"}
    config_desc |= blob(json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "config": config_desc, "layers": [layer_desc]}
    manifest_type = "application/vnd.oci.image.manifest.v1+json"
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": manifest_type, **blob(json.dumps(manifest).encode())}],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return root


def test_importing_a_bomb_is_one_line_and_leaves_nothing(tmp_path: Path, home: Path) -> None:
    layer = zeros_layer(tmp_path / "zeros.tar.gz", 64 << 20).read_bytes()
    layout = _layout(tmp_path / "bomb", layer, "application/vnd.oci.image.layer.v1.tar+gzip")
    proc = run_cli(["import", str(layout), "--name", "bomb", "--version", "1"], home)
    assert_one_line_error(proc, "max_unpack_ratio")
    store = home / "store"
    assert not (store / "refs").exists() or not any((store / "refs").iterdir())
    assert not (store / "images").exists() or not any((store / "images").iterdir())
    assert not any((store / "tmp").iterdir())
    # Raised in the environment for a trusted image, the same import goes through.
    proc = run_cli(
        ["import", str(layout), "--name", "bomb", "--version", "1"],
        home,
        env={"NEURODESK_MAX_UNPACK_RATIO": "5000"},
    )
    assert proc.returncode == 0, proc.stderr


def test_a_layout_with_a_missing_blob_is_one_line(tmp_path: Path, home: Path) -> None:
    layer = zeros_layer(tmp_path / "small.tar.gz", 1000).read_bytes()
    layout = _layout(tmp_path / "broken", layer, "application/vnd.oci.image.layer.v1.tar+gzip")
    digest = hashlib.sha256(layer).hexdigest()
    (layout / "blobs" / "sha256" / digest).unlink()
    proc = run_cli(["import", str(layout), "--name", "broken", "--version", "1"], home)
    assert_one_line_error(proc, "missing")
