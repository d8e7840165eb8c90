"""Reading a blob while a download thread still writes it (neurodesk.sources.arrival)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from neurodesk.sources.arrival import Arrival
from neurodesk.sources.http import CorruptBlobError
from neurodesk.store.store import UnpackAgain

DATA = os.urandom(300_000)


def writer(arrival: Arrival, chunks: list[bytes], gate: threading.Event | None = None) -> None:
    """What transfer.download does: unbuffered appends to .part, a report after each, rename."""
    with arrival.part.open("ab", buffering=0) as out:
        for index, chunk in enumerate(chunks):
            if gate is not None and index == 1:
                gate.wait(10)
            out.write(chunk)
            arrival.on_bytes(len(chunk))
    arrival.part.replace(arrival.dest)


def start(arrival: Arrival, work: object, *args: object) -> Future[None]:
    pool = ThreadPoolExecutor(1)
    future: Future[None] = pool.submit(work, arrival, *args)  # type: ignore[arg-type]
    future.add_done_callback(arrival.finish)
    pool.shutdown(wait=False)
    return future


def test_a_reader_gets_every_byte_as_it_arrives_and_waits_for_the_rest(tmp_path: Path) -> None:
    arrival = Arrival(tmp_path / "blob", len(DATA), "blob")
    gate = threading.Event()
    chunks = [DATA[i : i + 65536] for i in range(0, len(DATA), 65536)]
    reader = arrival.reader()
    future = start(arrival, writer, chunks, gate)
    first = reader.read(100_000)
    assert first == DATA[:65536]  # only the first chunk is there: the read returns it
    gate.set()
    rest = b""
    while part := reader.read(100_000):
        rest += part
    future.result()
    assert first + rest == DATA
    reader.seek(1000)  # seekable, as tarfile's "r:" mode wants
    assert reader.read(10) == DATA[1000:1010]
    assert reader.read_at(memoryview(bytearray(10)), len(DATA)) == 0  # the end of the blob
    reader.close()


def test_a_failed_download_is_the_readers_error(tmp_path: Path) -> None:
    arrival = Arrival(tmp_path / "blob", len(DATA), "blob")

    def failing(arrival: Arrival) -> None:
        with arrival.part.open("ab", buffering=0) as out:
            out.write(DATA[:1000])
            arrival.on_bytes(1000)
        time.sleep(0.05)
        raise CorruptBlobError("mirror: blob is corrupt")

    reader = arrival.reader()
    start(arrival, failing)
    assert reader.read(1000) == DATA[:1000]
    with pytest.raises(CorruptBlobError, match="corrupt"):
        reader.read(1000)


def test_bytes_read_from_a_copy_that_was_dropped_are_refused_once(tmp_path: Path) -> None:
    """A corrupt copy is dropped and fetched again: what was read was not what was verified."""
    arrival = Arrival(tmp_path / "blob", len(DATA), "blob")
    bad = bytearray(DATA)
    bad[10] ^= 1

    def refetched(arrival: Arrival) -> None:
        writer(arrival, [bytes(bad)])  # the whole corrupt copy, read by the reader below
        read.wait(10)
        arrival.dest.unlink()
        arrival.on_bytes(-len(DATA))  # transfer.download drops a corrupt copy so
        writer(arrival, [DATA])  # then another mirror serves the right bytes

    read = threading.Event()
    reader = arrival.reader()
    future = start(arrival, refetched)
    got = b""
    while part := reader.read(1 << 20):
        got += part
    read.set()
    future.result()
    assert hashlib.sha256(got).digest() != hashlib.sha256(DATA).digest()
    with pytest.raises(UnpackAgain, match="fetched again"):
        arrival.check()
    arrival.check()  # once: the store then reads the verified file itself


def test_a_file_replaced_under_a_reader_mid_way_stops_it(tmp_path: Path) -> None:
    arrival = Arrival(tmp_path / "blob", len(DATA), "blob")
    arrival.part.write_bytes(DATA[:5000])
    arrival.on_bytes(5000)
    reader = arrival.reader()
    assert reader.read(5000) == DATA[:5000]
    arrival.part.unlink()
    arrival.part.write_bytes(DATA[:6000])  # a download that started again: a new file
    arrival.on_bytes(6000)
    with pytest.raises(UnpackAgain, match="replaced"):
        reader.read(1000)
