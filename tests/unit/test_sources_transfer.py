"""Resumable, verified downloads against an in-process HTTP server (httpx.MockTransport)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from neurodesk.sources.transfer import CorruptBlobError, TransientError, download

DATA = bytes(range(256)) * 400
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


def server(honour_range: bool = True, body: bytes = DATA) -> tuple[httpx.Client, list[str]]:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        header = request.headers.get("Range", "")
        seen.append(header)
        if header and honour_range:
            start = int(header.removeprefix("bytes=").rstrip("-"))
            return httpx.Response(206, content=body[start:])
        return httpx.Response(200, content=body)

    return httpx.Client(transport=httpx.MockTransport(handle)), seen


def test_fresh_download_is_verified(tmp_path: Path) -> None:
    client, seen = server()
    got: list[int] = []
    dest = download(client, "http://x/blob", tmp_path / "b", DIGEST, len(DATA), got.append)
    assert dest.read_bytes() == DATA and sum(got) == len(DATA) and seen == [""]
    assert not (tmp_path / "b.part").exists()


def test_resume_asks_for_the_rest_only(tmp_path: Path) -> None:
    (tmp_path / "b.part").write_bytes(DATA[:1000])
    client, seen = server()
    download(client, "http://x/blob", tmp_path / "b", DIGEST, len(DATA))
    assert seen == ["bytes=1000-"]
    assert (tmp_path / "b").read_bytes() == DATA


def test_server_without_range_support_restarts_cleanly(tmp_path: Path) -> None:
    (tmp_path / "b.part").write_bytes(DATA[:1000])
    client, _seen = server(honour_range=False)
    download(client, "http://x/blob", tmp_path / "b", DIGEST, len(DATA))
    assert (tmp_path / "b").read_bytes() == DATA


def test_corrupt_bytes_are_refused_and_dropped(tmp_path: Path) -> None:
    bad = bytearray(DATA)
    bad[500] ^= 1
    client, _seen = server(body=bytes(bad))
    with pytest.raises(CorruptBlobError):
        download(client, "http://x/blob", tmp_path / "b", DIGEST, len(DATA))
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.part").exists()


def test_short_body_is_transient_and_keeps_the_partial_file(tmp_path: Path) -> None:
    client, _seen = server(body=DATA[:5000])
    with pytest.raises(TransientError, match="5000 of"):
        download(client, "http://x/blob", tmp_path / "b", DIGEST, len(DATA))
    assert (tmp_path / "b.part").stat().st_size == 5000
    client, seen = server()
    download(client, "http://x/blob", tmp_path / "b", DIGEST, len(DATA))
    assert seen == ["bytes=5000-"] and (tmp_path / "b").read_bytes() == DATA


def test_connection_errors_are_transient(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    with pytest.raises(TransientError):
        download(client, "http://x/blob", tmp_path / "b", DIGEST, len(DATA))


def test_a_server_ignoring_range_does_not_rewrite_the_bytes_already_here(tmp_path: Path) -> None:
    """Readers may follow the part file as it grows: its first bytes are never written again."""
    part = tmp_path / "b.part"
    part.write_bytes(DATA[:1000])
    inode = part.stat().st_ino
    client, seen = server(honour_range=False)
    got: list[int] = []
    dest = download(client, "http://x/blob", tmp_path / "b", DIGEST, len(DATA), got.append)
    assert seen == ["bytes=1000-"] and dest.read_bytes() == DATA
    assert dest.stat().st_ino == inode and min(got) > 0 and sum(got) == len(DATA)
