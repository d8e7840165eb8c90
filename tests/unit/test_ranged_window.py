"""Object-storage downloads: the connections work just ahead of the sha256, a slow mirror
serves less, and an interrupted download stops at once and resumes (issue 12)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neurodesk.sources.http import HttpSettings
from neurodesk.sources.ranged import Stats, finish, ranged_download
from neurodesk.sources.transfer import SourceError
from tests.httpserve import Fault, FileServer

PIECE = 64 << 10


def _data(www: Path, mib: int) -> tuple[bytes, str]:
    data = b"".join(hashlib.sha256(str(n).encode()).digest() for n in range(mib << 15))
    www.mkdir()
    (www / "f.simg").write_bytes(data)
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def _done(path: Path) -> set[int]:
    return {int(n) for n in path.read_text().split()[1:]}


def _interrupt(child: subprocess.Popen[str]) -> float:
    """Ctrl-C to ``child``; how long it took to end."""
    child.send_signal(signal.SIGINT)
    interrupted = time.monotonic()
    child.wait(timeout=10)
    return time.monotonic() - interrupted


def test_the_sha256_follows_the_download_instead_of_reading_the_file_back_at_the_end(
    tmp_path: Path,
) -> None:
    data, expected = _data(tmp_path / "www", 16)
    dest = tmp_path / "f.simg"
    stats = Stats()
    with FileServer(tmp_path / "www") as one, FileServer(tmp_path / "www") as two:
        urls = [one.url + "f.simg", two.url + "f.simg"]
        digest, served = ranged_download(
            urls, len(data), dest, HttpSettings(timeout=5), piece=PIECE, stats=stats
        )
        asked = [h["Range"] for s in (one, two) for m, _p, h in s.requests if m == "GET"]
    assert digest == expected
    finish(dest, digest, expected)
    assert dest.read_bytes() == data
    assert all(served.values()) and sum(served.values()) == len(data)
    # When the last byte arrived, little was left to hash: the connections worked side by
    # side just past the hashed prefix (cut aria2c's way, three quarters of the file would
    # still be unhashed, to be read back after the download).
    assert stats.left_to_hash <= len(data) // 4, stats
    # One request asks for a short run of pieces, not for a quarter of the file.
    for wanted in asked:
        first, last = (int(x) for x in wanted.removeprefix("bytes=").split("-"))
        assert last + 1 - first <= len(data) // 8, wanted
    assert sum(stats.requests.values()) == len(asked)


def test_a_slow_mirror_serves_less_and_does_not_hold_up_the_end(tmp_path: Path) -> None:
    data, expected = _data(tmp_path / "www", 8)
    dest = tmp_path / "f.simg"
    stats = Stats()
    with (
        FileServer(tmp_path / "www") as fast,
        FileServer(tmp_path / "www", fault=Fault(delay=0.02)) as slow,  # ~3 MB/s a connection
    ):
        urls = [fast.url + "f.simg", slow.url + "f.simg"]
        start = time.monotonic()
        digest, served = ranged_download(
            urls, len(data), dest, HttpSettings(timeout=5), piece=PIECE, stats=stats
        )
        took = time.monotonic() - start
    assert digest == expected
    assert served[urls[0]] > 2 * served[urls[1]] > 0, served
    # The slow mirror alone would need ~1.3 s for the file on its two connections.
    assert took < 1.3, (took, served, stats)


RUN = """
import sys
from pathlib import Path
from neurodesk.sources.http import HttpSettings
from neurodesk.sources.ranged import ranged_download
ranged_download(sys.argv[3:], int(sys.argv[2]), Path(sys.argv[1]), HttpSettings(timeout=5),
                piece=int(sys.argv[2]) // 256)
"""


def test_ctrl_c_stops_every_connection_at_once_and_the_download_resumes(tmp_path: Path) -> None:
    data, expected = _data(tmp_path / "www", 16)
    dest = tmp_path / "f.simg"
    done_file = tmp_path / "f.simg.part.done"
    piece = len(data) // 256
    with (
        FileServer(tmp_path / "www", fault=Fault(delay=0.04)) as one,
        FileServer(tmp_path / "www", fault=Fault(delay=0.04)) as two,
    ):
        urls = [one.url + "f.simg", two.url + "f.simg"]  # ~6 MB/s in all: 16 MB take >2 s
        child = subprocess.Popen(
            [sys.executable, "-c", RUN, str(dest), str(len(data)), *urls],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (
                done_file.exists() and len(_done(done_file)) >= 4
            ):
                time.sleep(0.01)
            stopped = _interrupt(child)
        finally:
            child.kill()
            child.wait()
        assert child.returncode != 0 and "KeyboardInterrupt" in (child.stderr or "").read()
        assert stopped < 1.0, stopped  # not after the connections finished their runs
        kept = _done(done_file)
        assert 4 <= len(kept) < 256
        one.fault = two.fault = Fault()
        before = {s.url: len(s.requests) for s in (one, two)}
        digest, served = ranged_download(urls, len(data), dest, HttpSettings(), piece=piece)
        asked = [
            h["Range"] for s in (one, two) for m, _p, h in s.requests[before[s.url] :] if m == "GET"
        ]
    assert digest == expected
    assert sum(served.values()) == len(data) - len(kept) * piece
    for wanted in asked:  # finished pieces were not asked for again
        first, last = (int(x) for x in wanted.removeprefix("bytes=").split("-"))
        assert not kept & set(range(first // piece, last // piece + 1)), wanted
    finish(dest, digest, expected)
    assert dest.read_bytes() == data


def test_a_piece_failing_after_its_bytes_were_hashed_is_hashed_again_from_the_other_mirror(
    tmp_path: Path,
) -> None:
    """A mirror sends the start of a piece with other bytes than the file's, then breaks off:
    the bytes it sent were hashed already (it was at the hashed prefix), so the hash goes back
    to the piece's start, the other mirror serves the piece, and the digest is the file's."""
    data, expected = _data(tmp_path / "www", 2)  # 32 pieces: one piece a request
    other = tmp_path / "other"
    other.mkdir()
    (other / "f.simg").write_bytes(bytes(b ^ 0x5A for b in data))
    dest = tmp_path / "f.simg"
    stats = Stats()
    with (
        FileServer(other, fault=Fault(truncate=True)) as broken,  # half a piece, then closes
        FileServer(tmp_path / "www") as good,
    ):
        urls = [broken.url + "f.simg", good.url + "f.simg"]
        digest, served = ranged_download(
            urls, len(data), dest, HttpSettings(timeout=5), piece=PIECE, stats=stats
        )
    assert stats.rewound >= 1, stats
    assert served == {urls[0]: 0, urls[1]: len(data)}
    assert digest == expected
    finish(dest, digest, expected)
    assert dest.read_bytes() == data


def test_ctrl_c_does_not_wait_for_a_mirror_that_went_silent_mid_answer(tmp_path: Path) -> None:
    data, _expected = _data(tmp_path / "www", 2)
    dest = tmp_path / "f.simg"
    # Each answer's headers come at once, then nothing for 3 s (well within the 5 s timeout).
    with FileServer(tmp_path / "www", fault=Fault(delay=3.0)) as silent:
        child = subprocess.Popen(
            [sys.executable, "-c", RUN, str(dest), str(len(data)), silent.url + "f.simg"],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(silent.requests) < 2:
                time.sleep(0.01)
            time.sleep(0.3)  # both connections are now reading the answers' bodies
            stopped = _interrupt(child)
        finally:
            child.kill()
            child.wait()
    assert child.returncode != 0 and "KeyboardInterrupt" in (child.stderr or "").read()
    assert stopped < 1.5, stopped  # not after the mirror's next bytes


def test_a_failing_read_back_stops_the_download_with_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connections wait for the hash to follow them: when reading the file back fails
    (a disk error), they stop at once instead of waiting for it forever."""
    data, _expected = _data(tmp_path / "www", 4)

    def broken(fd: int, buffers: list[memoryview], offset: int) -> int:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "preadv", broken)
    with FileServer(tmp_path / "www") as one, FileServer(tmp_path / "www") as two:
        urls = [one.url + "f.simg", two.url + "f.simg"]
        start = time.monotonic()
        with pytest.raises(SourceError) as caught:
            ranged_download(urls, len(data), tmp_path / "f.simg", HttpSettings(), piece=PIECE)
    assert "reading the partial download back failed" in caught.value.message
    assert "Input/output error" in caught.value.message
    assert time.monotonic() - start < 10
