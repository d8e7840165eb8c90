"""One file from several HTTP mirrors at once, in Range pieces; resumable, checked at the end.

The file is cut into pieces; each mirror gets ``per_mirror`` workers that take the next piece
not yet done, so a fast mirror serves more of the file and a slow or stalled one less (a piece
that fails goes back to the queue for any mirror; a mirror that fails :data:`MAX_FAILS` times
is dropped). Progress is kept in ``<dest>.part`` plus ``<dest>.part.done`` (the indexes of
finished pieces), so an interrupted download resumes where it stopped. A server that ignores
``Range`` (answers 200 to a piece), sends more or fewer bytes than asked, or an unknown size are
faults of that mirror. The whole file is hashed before it gets its final name.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from neurodesk.sources.http import HttpSettings, make_client, open_stream, refuse_html
from neurodesk.sources.transfer import CorruptBlobError, SourceError

PIECE_MIN, PIECE_MAX = 256 << 10, 16 << 20
MAX_FAILS = 3
OnBytes = Callable[[int], None]


def _piece_count(size: int, piece: int) -> int:
    return max(1, (size + piece - 1) // piece)


def _load_done(path: Path, count: int, piece: int) -> set[int]:
    """Pieces finished by an earlier run, if it cut the file the same way."""
    try:
        lines = path.read_text().split()
        if not lines or lines[0] != f"piece={piece}":
            return set()
        numbers = {int(x) for x in lines[1:]}
    except (OSError, ValueError):
        return set()
    return {n for n in numbers if 0 <= n < count}


def ranged_download(
    urls: Sequence[str],
    size: int,
    dest: Path,
    settings: HttpSettings,
    insecure: bool = False,
    on_bytes: OnBytes | None = None,
    per_mirror: int = 2,
    piece: int | None = None,
) -> tuple[str, dict[str, int]]:
    """Download ``size`` bytes to ``dest``; returns ``(sha256 digest, bytes per mirror)``.

    Pieces are a quarter of each worker's fair share, between 256 KiB and 16 MiB, so every
    mirror gets work and a slow one holds up little at the end."""
    if piece is None:
        share = size // max(1, 4 * per_mirror * len(urls))
        piece = min(PIECE_MAX, max(PIECE_MIN, share))
    part = dest.with_name(dest.name + ".part")
    done_file = dest.with_name(dest.name + ".part.done")
    count = _piece_count(size, piece)
    done = _load_done(done_file, count, piece) if part.exists() else set()
    if not part.exists() or part.stat().st_size != size or not done:
        done = set()
        with part.open("wb") as out:
            out.truncate(size)
        done_file.write_text(f"piece={piece}\n")
    if on_bytes and done:
        on_bytes(sum(min(piece, size - n * piece) for n in done))
    jobs = [url for url in urls for _ in range(per_mirror)]
    # Each worker starts with a piece of its own (so every mirror is put to work, however
    # late its thread starts); the rest are taken from the queue by whoever is free.
    left = [number for number in range(count) if number not in done]
    first = dict(enumerate(left[: len(jobs)]))
    todo: queue.Queue[int] = queue.Queue()
    for number in left[len(jobs) :]:
        todo.put(number)
    lock = threading.Lock()
    frontier = _Frontier(part, piece, size)
    served: dict[str, int] = {url: 0 for url in urls}
    fails: dict[str, int] = {url: 0 for url in urls}
    errors: list[str] = []
    fd = os.open(part, os.O_WRONLY)

    def fetch_piece(client: httpx.Client, url: str, number: int) -> None:
        start = number * piece
        length = min(piece, size - start)
        headers = {"Range": f"bytes={start}-{start + length - 1}"}
        got = 0
        with open_stream(client, "GET", url, headers=headers) as answer:
            if answer.status != 206:
                raise SourceError(f"HTTP {answer.status} to a Range request")
            refuse_html(answer)
            for chunk in answer.chunks():
                if got + len(chunk) > length:
                    raise SourceError("sent more bytes than asked")
                os.pwrite(fd, chunk, start + got)
                got += len(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
        if got != length:
            if on_bytes:
                on_bytes(-got)
            raise SourceError(f"piece {number} ended after {got} of {length} bytes")

    def worker(slot: int) -> None:
        url = jobs[slot]
        mine = first.get(slot)
        with make_client(settings, insecure) as client:
            while fails[url] < MAX_FAILS and len(done) < count:
                if mine is not None:
                    number, mine = mine, None
                else:
                    try:
                        number = todo.get(timeout=0.05)  # a piece may come back from a failure
                    except queue.Empty:
                        continue
                try:
                    fetch_piece(client, url, number)
                except (httpx.HTTPError, SourceError) as exc:
                    todo.put(number)
                    with lock:
                        fails[url] += 1
                        errors.append(f"{httpx.URL(url).host}: {type(exc).__name__}: {exc}")
                    continue
                with lock:
                    done.add(number)
                    served[url] += min(piece, size - number * piece)
                    with done_file.open("a") as record:
                        record.write(f"{number}\n")
                frontier.advance(done, lock)
        if mine is not None:
            todo.put(mine)  # this mirror gave up before starting: leave the piece to others

    try:
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            list(pool.map(worker, range(len(jobs))))
    finally:
        os.fsync(fd)
        os.close(fd)
    if len(done) < count:
        raise SourceError(
            f"{dest.name}: {count - len(done)} of {count} pieces could not be downloaded from "
            f"any mirror; last error: {errors[-1] if errors else '?'}",
            hint="run the same command again: finished pieces are kept",
        )
    frontier.advance(done, lock)
    return frontier.digest(), served


class _Frontier:
    """The sha256 of the file's finished prefix, advanced by whichever worker finished a
    piece, so hashing overlaps the download instead of re-reading the whole file after it."""

    def __init__(self, part: Path, piece: int, size: int) -> None:
        self.part = part
        self.piece = piece
        self.size = size
        self.next = 0  # the first piece not hashed yet
        self.hasher = hashlib.sha256()
        self.busy = threading.Lock()

    def advance(self, done: set[int], lock: threading.Lock) -> None:
        if not self.busy.acquire(blocking=False):
            return  # another worker is hashing; it will pick up this piece too
        try:
            with self.part.open("rb") as handle:
                while True:
                    with lock:
                        ready = self.next in done
                    if not ready:
                        return
                    handle.seek(self.next * self.piece)
                    left = min(self.piece, self.size - self.next * self.piece)
                    while left > 0:
                        chunk = handle.read(min(left, 1 << 20))
                        if not chunk:
                            raise SourceError(f"{self.part.name}: shorter than expected")
                        self.hasher.update(chunk)
                        left -= len(chunk)
                    self.next += 1
        finally:
            self.busy.release()

    def digest(self) -> str:
        if self.next * self.piece < self.size:
            raise SourceError(f"{self.part.name}: not every piece was hashed")
        return "sha256:" + self.hasher.hexdigest()


def finish(dest: Path, digest: str, expected: str | None) -> None:
    """Give the checked download its final name, or throw it away when it is wrong."""
    part = dest.with_name(dest.name + ".part")
    done_file = dest.with_name(dest.name + ".part.done")
    if expected is not None and digest != expected:
        part.unlink(missing_ok=True)
        done_file.unlink(missing_ok=True)
        raise CorruptBlobError(
            f"{dest.name} does not match the publisher's digest (got {digest}, "
            f"expected {expected})",
            hint="a mirror holds a wrong or damaged copy; it was discarded",
        )
    part.replace(dest)
    done_file.unlink(missing_ok=True)
