"""Malformed OCI layouts (issue 17 sweep): every damaged index, manifest or config ends in a
NeurodeskError (one line at the CLI) — through ``import`` and through ``install --from`` — or,
where the damage is harmless (odd config types), in a usable image. Never another exception."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from neurodesk.sources.fetch import fetch_image
from neurodesk.store.imports import import_path
from neurodesk.store.store import Store
from tests.conftest import assert_one_line_error, run_cli

Mutate = Callable[[str, Any], Any]
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _blob(root: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _encode(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def layout(root: Path, mutate: Mutate) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo("usr/bin/x")
        info.size, info.mode = 10, 0o755
        archive.addfile(info, io.BytesIO(b"#!/bin/sh\n"))
    layer = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        **_blob(root, gzip.compress(raw.getvalue())),
    }
    config = {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]}}
    config_desc = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        **_blob(root, _encode(mutate("config", config))),
    }
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": config_desc, "layers": [layer]}
    entry = {
        "mediaType": MANIFEST,
        **_blob(root, _encode(mutate("manifest", manifest))),
        "annotations": {"org.opencontainers.image.ref.name": "t_1:20260101"},
    }
    index = {"schemaVersion": 2, "manifests": [entry]}
    (root / "index.json").write_bytes(_encode(mutate("index", index)))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return root


def at(stage: str, key: str | None, value: Any) -> Mutate:
    def mutate(where: str, data: Any) -> Any:
        if where != stage:
            return data
        return value if key is None else {**data, key: value}

    return mutate


DIGEST_PATH = {"mediaType": MANIFEST, "digest": "sha256:" + "../" * 21 + "x", "size": 1}
BROKEN: dict[str, Mutate] = {
    "index not JSON": at("index", None, b"\xff{"),
    "index a list": at("index", None, [1, 2]),
    "index manifests a string": at("index", "manifests", "x"),
    "index entry a string": at("index", "manifests", ["x"]),
    "digest with a path": at("index", "manifests", [DIGEST_PATH]),
    "negative size": at("index", "manifests", [{**DIGEST_PATH, "digest": "sha256:" + "a" * 64,
                                                "size": -1}]),
    "manifest not JSON": at("manifest", None, b"not json"),
    "manifest a list": at("manifest", None, [1]),
    "config a string": at("manifest", "config", "x"),
    "layers a mapping": at("manifest", "layers", {"a": 1}),
    "layer a string": at("manifest", "layers", ["x"]),
    "config blob not JSON": at("config", None, b"\x00\x01"),
    "config blob a list": at("config", None, [1]),
}  # fmt: skip
HARMLESS: dict[str, Mutate] = {
    "config.config a string": at("config", "config", "x"),
    "Env a string": at("config", "config", {"Env": "PATH=/bin"}),
    "Env of numbers": at("config", "config", {"Env": [1, 2, None]}),
    "Labels a list": at("config", "config", {"Labels": [1]}),
    "Labels nested": at("config", "config", {"Labels": {"a": {"b": 1}}}),
}


@pytest.mark.parametrize("mutate", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_layout_is_refused(tmp_path: Path, mutate: Mutate) -> None:
    root = layout(tmp_path / "layout", mutate)
    paths = Paths(tmp_path / "home")
    with pytest.raises(NeurodeskError):
        import_path(Store(paths.store), root, "t", "1", "20260101")
    with pytest.raises(NeurodeskError):
        fetch_image("t", paths, source=str(root))
    assert not (paths.store / "refs").exists() or not any((paths.store / "refs").iterdir())


@pytest.mark.parametrize("mutate", HARMLESS.values(), ids=HARMLESS.keys())
def test_odd_config_types_still_give_an_image(tmp_path: Path, mutate: Mutate) -> None:
    root = layout(tmp_path / "layout", mutate)
    paths = Paths(tmp_path / "home")
    record = fetch_image("t", paths, source=str(root))
    assert (record.rootfs / "usr/bin/x").is_file()
    assert all(isinstance(v, str) for v in (*record.env.values(), *record.labels.values()))


def test_at_the_command_line_it_is_one_line(tmp_path: Path, home: Path) -> None:
    root = layout(tmp_path / "layout", BROKEN["index entry a string"])
    proc = run_cli(["import", str(root), "--name", "t", "--version", "1"], home)
    assert_one_line_error(proc, "not an object")
    assert_one_line_error(run_cli(["install", "t", "--from", str(root)], home))
