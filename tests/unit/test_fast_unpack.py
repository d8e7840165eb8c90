"""Fast extraction (issue 16): gzip through ISA-L, zstd layers, and the file hashes computed while
unpacking, which deduplication trusts instead of reading every file again."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from neurodesk.image.layers import UnsafeLayerError, unpack_layers
from neurodesk.store.dedupe import dedupe_tree
from tests.unit.test_layers import directory, file, link, make_layer


def sha256_of_tree(root: Path) -> dict[str, str]:
    found = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                data = Path(path).read_bytes()
                found[os.path.relpath(path, root)] = hashlib.sha256(data).hexdigest()
    return found


def compress(layer: Path, how: str) -> Path:
    data = layer.read_bytes()
    out = layer.with_name(layer.name + "." + how)
    if how == "gz":
        out.write_bytes(gzip.compress(data))
    else:
        out.write_bytes(zstandard.ZstdCompressor().compress(data))
    return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "rootfs"
    path.mkdir()
    return path


@pytest.mark.parametrize("how", ["gz", "zst"])
def test_gzip_and_zstd_layers_unpack_alike(tmp_path: Path, root: Path, how: str) -> None:
    big = os.urandom(3 << 20)  # several read chunks
    layer = make_layer(
        tmp_path / "l.tar",
        [directory("opt"), file("opt/big.bin", big), file("opt/tool", b"#!/bin/sh\n", 0o755)],
    )
    unpack_layers([compress(layer, how)], root)
    assert (root / "opt/big.bin").read_bytes() == big
    assert os.access(root / "opt/tool", os.X_OK)


@pytest.mark.parametrize("how", ["gz", "zst"])
def test_a_damaged_compressed_layer_is_one_error(tmp_path: Path, root: Path, how: str) -> None:
    layer = compress(make_layer(tmp_path / "l.tar", [file("a", os.urandom(1 << 16))]), how)
    data = bytearray(layer.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    layer.write_bytes(bytes(data[: len(data) * 3 // 4]))
    with pytest.raises(UnsafeLayerError, match="not a readable tar archive"):
        unpack_layers([layer], root)


def test_hashes_match_the_final_tree_after_overwrites_links_and_whiteouts(
    tmp_path: Path, root: Path
) -> None:
    # files of several sizes, one of them in more than one read
    one, two, bee = b"one" * 2000, b"two" * 3000, b"bee" * 1500
    lower = make_layer(
        tmp_path / "1.tar",
        [directory("etc"), file("etc/a", one), file("etc/b", bee), file("etc/gone", b"g"),
         directory("opt"), file("opt/old", b"old"), link("etc/hard", "etc/b", hard=True),
         link("lib", "opt")],
    )  # fmt: skip
    upper = make_layer(
        tmp_path / "2.tar",
        [file("etc/a", two), file("etc/.wh.gone", b""), file("etc/gone", b"new"),
         directory("opt"), file("opt/.wh..wh..opq", b""), file("lib/via-link", b"v"),
         file("etc/.wh.hard", b""), link("etc/hard", "etc/a", hard=True),
         file("etc/.wh.b", b""), directory("etc/b"), file("etc/b/inner", b"in")],
    )  # fmt: skip
    hashes = unpack_layers([compress(lower, "gz"), upper], root)
    actual = sha256_of_tree(root)
    assert actual == {rel: hashes[rel] for rel in actual}
    assert (root / "etc/hard").read_bytes() == two
    assert hashes["etc/hard"] == hashlib.sha256(two).hexdigest()
    assert "opt/via-link" in actual  # written through the symlink, keyed by where it landed


def test_dedupe_with_known_hashes_shares_like_a_full_read(tmp_path: Path) -> None:
    entries = [directory("d"), file("d/x", b"same"), file("d/y", b"same"), file("d/z", b"other")]
    layer = compress(make_layer(tmp_path / "l.tar", entries), "gz")  # type: ignore[arg-type]
    trees = []
    for name, use_known in (("read", False), ("known", True)):
        rootfs = tmp_path / name
        rootfs.mkdir()
        hashes = unpack_layers([layer], rootfs)
        result = dedupe_tree(rootfs, tmp_path / f"pool-{name}", hashes if use_known else None)
        trees.append((result.files, result.linked, result.hashes))
        assert os.path.samefile(rootfs / "d/x", rootfs / "d/y")
    assert trees[0] == trees[1]


def test_a_damaged_pool_copy_is_replaced_even_with_known_hashes(tmp_path: Path) -> None:
    layer = compress(make_layer(tmp_path / "l.tar", [file("f", b"good")]), "gz")
    pool = tmp_path / "pool"
    first, second = tmp_path / "one", tmp_path / "two"
    for rootfs in (first, second):
        rootfs.mkdir()
    dedupe_tree(first, pool, unpack_layers([layer], first))
    shared = next(p for p in pool.rglob("*") if p.is_file())
    os.unlink(first / "f")  # the pool copy alone now; damage it in place
    shared.write_bytes(b"evil")
    dedupe_tree(second, pool, unpack_layers([layer], second))
    assert (second / "f").read_bytes() == b"good"
    assert shared.read_bytes() == b"good"  # the verified file took the damaged copy's place


def test_zstd_bomb_is_refused_by_the_limits(tmp_path: Path, root: Path) -> None:
    from neurodesk.image.limits import UnpackLimitError, UnpackLimits

    layer = compress(make_layer(tmp_path / "l.tar", [file("zeros", bytes(8 << 20))]), "zst")
    with pytest.raises(UnpackLimitError):
        unpack_layers([layer], root, UnpackLimits(ratio=20.0))
    assert not (root / "zeros").exists()


def test_tarfile_still_reads_plain_layers(tmp_path: Path, root: Path) -> None:
    layer = make_layer(tmp_path / "l.tar", [file("plain", b"p")])
    assert tarfile.is_tarfile(layer)
    unpack_layers([layer], root)
    assert (root / "plain").read_bytes() == b"p"
