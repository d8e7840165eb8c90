"""One file from several HTTP mirrors at once, in Range streams; resumable, hashed as it arrives.

The file is cut into pieces (the unit of claiming, resuming and hashing). Each mirror gets
``per_mirror`` connections. A free connection claims the lowest free pieces (a short run of
them, :data:`RUN_BYTES`) and asks for them in one Range request, so every connection works in
a narrow window just past the hashed prefix: the sha256 follows the download and is complete
a few milliseconds after the last byte, instead of reading most of the file back at the end.
A fast mirror serves more of the file than a slow one simply by claiming more runs. When no
piece is free, a free connection takes the back half of the pieces another connection claimed
but has not started (the end of the file is not left to a slow mirror). A piece that fails goes
back to the free pieces for any mirror; a mirror that fails :data:`MAX_FAILS` times is dropped.

Bytes go from the socket into one reusable buffer per connection
(:meth:`neurodesk.sources.http.Stream.body`) and from there to their place in a
pre-allocated file with ``os.pwrite``. The connection whose bytes continue the hashed prefix
hashes them from its buffer; the others' pieces are read back (from the page cache, a
megabyte at a time) by the hashing thread as soon as the prefix reaches them.

Progress is kept in ``<dest>.part`` plus ``<dest>.part.done`` (the indexes of finished pieces),
so an interrupted download resumes where it stopped. A server that ignores ``Range``, answers
another range, sends more or fewer bytes than asked, or an unknown size are faults of that
mirror. Ctrl-C (or any error in the caller's thread) stops every connection at its next read.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from neurodesk.sources.http import Body, HttpSettings, make_client, open_stream, refuse_html
from neurodesk.sources.transfer import CorruptBlobError, SourceError

PIECE_MIN, PIECE_MAX = 256 << 10, 4 << 20
RUN_BYTES = 32 << 20  # the most one Range request asks for
BUFFER = 1 << 20  # bytes read from a socket (or read back from the file) at once
MAX_FAILS = 3
OnBytes = Callable[[int], None]


@dataclass
class Stats:
    """What one download did (for tests and benchmarks; pass one to :func:`ranged_download`)."""

    requests: dict[str, int] = field(default_factory=dict)  # Range requests sent, per mirror
    read_back: int = 0  # bytes hashed by reading them back from the file
    left_to_hash: int = 0  # bytes not yet hashed when the last byte arrived
    stolen: int = 0  # pieces taken over from another connection's claim
    rewound: int = 0  # times the hash went back to the start of a piece that failed


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


def _preallocate(part: Path, size: int) -> None:
    """``part`` at its full size, its blocks reserved where the file system can: a full disk
    is then told before the download, not in its middle."""
    with part.open("wb") as out:
        out.truncate(size)
        try:
            os.posix_fallocate(out.fileno(), 0, size)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                out.close()
                part.unlink(missing_ok=True)
                raise SourceError(
                    f"no room for {part.name.removesuffix('.part')} ({size / 1e6:.0f} MB) "
                    f"in {part.parent}",
                    hint="free some disk space (neurodesk gc) and run the same command again",
                ) from None
            # EOPNOTSUPP and the like: a sparse file does as well


class _Plan:
    """Which pieces are finished, which are claimed (by which connection), which are free.

    Every method is called with :attr:`lock` held."""

    def __init__(self, count: int, done: set[int], run: int) -> None:
        self.count = count
        self.done = done
        self.run = run
        self.owner: dict[int, int] = {}  # claimed piece -> the connection that fetches it
        self.started: set[int] = set()  # claimed pieces whose bytes are asked for or arriving
        self.written: dict[int, int] = {}  # bytes on disk of each piece being fetched
        self.lowest = 0  # no piece below this one is free
        self.stolen = 0
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # a piece finished or came back

    def free(self, number: int) -> bool:
        return 0 <= number < self.count and number not in self.done and number not in self.owner

    def claim(
        self, slot: int, limit: int | None = None, hashing: int | None = None
    ) -> tuple[int, int] | None:
        """The pieces ``first`` to ``end - 1`` that connection ``slot`` fetches next, in one
        request: the lowest free piece and the free ones right after it, :attr:`run` at
        most, provided it is below ``limit`` (the window ahead of the hash).

        With no piece free (the endgame), the back half of the pieces another connection
        claimed and has not started. With the lowest free piece beyond the window and the
        hash waiting for piece ``hashing`` (not yet downloaded), the same from the connection
        fetching that piece, if two or more of its pieces are not started: a slow mirror
        does not hold the others up. None: nothing to claim now (wait for pieces to finish)."""
        number = self.lowest
        while number < self.count and not self.free(number):
            number += 1
        self.lowest = number
        if number == self.count:
            return self._steal(slot, 1, None)
        if limit is not None and number >= limit:
            if hashing is None or hashing in self.done or hashing not in self.owner:
                return None  # the hash is behind the download: wait for it
            return self._steal(slot, 2, self.owner[hashing])
        end = number + 1
        while end < self.count and end - number < self.run and self.free(end):
            end += 1
        for each in range(number, end):
            self.owner[each] = slot
        self.started.add(number)
        return number, end

    def _steal(self, slot: int, least: int, victim: int | None) -> tuple[int, int] | None:
        waiting: dict[int, list[int]] = {}
        for number, owner in self.owner.items():
            if number not in self.started and victim in (None, owner):
                waiting.setdefault(owner, []).append(number)
        # A connection's unstarted pieces are the contiguous end of its run.
        pieces: list[int] = []
        for each in waiting.values():
            if len(each) > len(pieces):
                pieces = sorted(each)
        if len(pieces) < least:
            return None
        taken = pieces[len(pieces) // 2 :]
        for number in taken:
            self.owner[number] = slot
        self.started.add(taken[0])
        self.stolen += len(taken)
        return taken[0], taken[-1] + 1

    def release(self, slot: int) -> None:
        """Connection ``slot`` stopped: its unfinished pieces are free again."""
        for number in [n for n, owner in self.owner.items() if owner == slot]:
            del self.owner[number]
            self.started.discard(number)
            self.written.pop(number, None)
            self.lowest = min(self.lowest, number)
        self.changed.notify_all()


class _Frontier:
    """The sha256 of the file's hashed prefix: bytes continuing it are hashed from memory as they
    arrive; pieces written by other connections are read back from the file when the prefix
    reaches them. The hash state at the start of the piece being hashed is kept, so a piece
    that fails after some of its bytes were hashed is hashed again from its start."""

    def __init__(self, fd: int, piece: int, size: int) -> None:
        self.fd = fd
        self.piece = piece
        self.size = size
        self.hashed = 0  # bytes hashed so far, from the start of the file
        self.hasher = hashlib.sha256()
        self.mark = (0, self.hasher.copy())  # the hash at the last piece boundary
        self.busy = threading.Lock()
        self.read_back = 0
        self.rewound = 0
        self.view = memoryview(bytearray(BUFFER))  # for reading back, under ``busy``

    def _update(self, data: memoryview) -> None:
        self.hasher.update(data)
        self.hashed += len(data)
        if self.hashed % self.piece == 0:
            self.mark = (self.hashed, self.hasher.copy())

    def feed(self, position: int, data: memoryview) -> None:
        if self.hashed != position:
            return  # not the bytes right after the prefix: read back later
        with self.busy:  # held only briefly by the hashing thread when the prefix reached us
            if self.hashed == position:
                self._update(data)

    def failed(self, start: int) -> None:
        """The piece starting at ``start`` failed (its bytes on disk are no longer counted):
        forget the bytes of it that were hashed."""
        with self.busy:
            position, state = self.mark  # the start of the piece being hashed
            if self.hashed > start >= position:
                self.hashed, self.hasher = position, state.copy()
                self.rewound += 1

    def advance(self, plan: _Plan) -> None:
        with self.busy:
            view = self.view
            while self.hashed < self.size:
                number = self.hashed // self.piece
                with plan.lock:
                    if number % plan.run == 0:  # the window moved on by a run: wake the waiting
                        plan.changed.notify_all()
                    if number in plan.done:
                        end = min((number + 1) * self.piece, self.size)
                    else:  # in progress: up to what is written, so its stream can feed us on
                        end = number * self.piece + plan.written.get(number, 0)
                if end <= self.hashed:
                    return
                while self.hashed < end:
                    count = os.preadv(
                        self.fd, [view[: min(BUFFER, end - self.hashed)]], self.hashed
                    )
                    if count <= 0:
                        raise SourceError("the partial download is shorter than expected")
                    self._update(view[:count])
                    self.read_back += count

    def digest(self) -> str:
        if self.hashed < self.size:
            raise SourceError("not every piece was hashed")
        return "sha256:" + self.hasher.hexdigest()


def _sizes(size: int, connections: int, piece: int | None) -> tuple[int, int]:
    """The piece size and how many pieces one request asks for at most.

    Pieces are a sixteenth of each connection's fair share, between 256 KiB and 4 MiB: small
    enough that a slow mirror holds up little at the end, large enough to cost nothing. A
    request asks for :data:`RUN_BYTES` at most, and for at most an eighth of a connection's
    fair share, so every connection gets work and the window ahead of the hash stays narrow."""
    if piece is None:
        piece = min(PIECE_MAX, max(PIECE_MIN, size // max(1, 16 * connections)))
    count = _piece_count(size, piece)
    return piece, max(1, min(RUN_BYTES // piece, count // (8 * connections)))


def ranged_download(
    urls: Sequence[str],
    size: int,
    dest: Path,
    settings: HttpSettings,
    insecure: bool = False,
    on_bytes: OnBytes | None = None,
    per_mirror: int = 2,
    piece: int | None = None,
    stats: Stats | None = None,
) -> tuple[str, dict[str, int]]:
    """Download ``size`` bytes to ``dest``; returns ``(sha256 digest, bytes per mirror)``."""
    jobs = [url for _ in range(per_mirror) for url in urls]  # mirrors taking turns
    piece, run = _sizes(size, len(jobs), piece)
    part = dest.with_name(dest.name + ".part")
    done_file = dest.with_name(dest.name + ".part.done")
    count = _piece_count(size, piece)
    done = _load_done(done_file, count, piece) if part.exists() else set()
    if not part.exists() or part.stat().st_size != size or not done:
        done = set()
        _preallocate(part, size)
        done_file.write_text(f"piece={piece}\n")
    if on_bytes and done:
        on_bytes(sum(min(piece, size - n * piece) for n in done))
    plan = _Plan(count, done, run)
    # A free piece is claimed only this far ahead of the hashed prefix: a run for every
    # connection and one more, so a connection finds its next run while the others read on.
    window = (len(jobs) + 1) * run
    # Every connection gets its first run now, so every mirror is put to work however late
    # its thread starts.
    firsts = [plan.claim(slot) for slot in range(len(jobs))]
    stats = stats if stats is not None else Stats()
    stats.requests = {url: 0 for url in urls}
    served: dict[str, int] = {url: 0 for url in urls}
    fails: dict[str, int] = {url: 0 for url in urls}
    errors: list[str] = []
    fd = os.open(part, os.O_RDWR)
    frontier = _Frontier(fd, piece, size)
    record = done_file.open("a")
    more, stop, cancel = threading.Event(), threading.Event(), threading.Event()
    reading: dict[int, Body] = {}  # the body each connection is reading
    hash_failed: list[Exception] = []

    def hash_behind() -> None:
        """Hash the pieces other connections wrote, as soon as the prefix reaches them."""
        while not stop.is_set():
            more.wait(0.1)
            more.clear()
            try:
                frontier.advance(plan)
            except (SourceError, OSError) as exc:
                hash_failed.append(exc)  # the connections would wait for it forever: stop
                cancel.set()
                return

    def stream_run(
        client: httpx.Client, url: str, slot: int, first: int, end: int, view: memoryview
    ) -> None:
        """Fetch pieces ``first``, ``first + 1``, ... (up to ``end``) on one request, while the
        next piece is still this connection's (another may have taken it over)."""
        start = first * piece
        until = min(end * piece, size)  # the end of the bytes asked for
        headers = {"Range": f"bytes={start}-{until - 1}", "Accept-Encoding": "identity"}
        number = first
        position = start  # the next byte to arrive
        with plan.lock:
            stats.requests[url] += 1
        try:
            with open_stream(client, "GET", url, headers=headers) as answer:
                if answer.status != 206:
                    raise SourceError(f"HTTP {answer.status} to a Range request")
                refuse_html(answer)
                ranges = answer.headers.get("Content-Range", "")
                if not ranges.startswith(f"bytes {start}-{until - 1}/"):
                    raise SourceError(f"answered range '{ranges}', not {start}-{until - 1}")
                body = answer.body(until - start)
                with plan.lock:
                    reading[slot] = body
                piece_end = min(position + piece, size)
                while position < until:
                    if cancel.is_set():
                        raise SourceError("interrupted")
                    # never past the piece's end: the next piece may be someone else's
                    got = body.readinto(view[: min(BUFFER, piece_end - position)])
                    if got == 0:
                        break
                    chunk = view[:got]
                    os.pwrite(fd, chunk, position)
                    frontier.feed(position, chunk)
                    position += got
                    plan.written[number] = position - number * piece  # after feed: or read back
                    if on_bytes:
                        on_bytes(got)
                    if position < piece_end:
                        continue
                    with plan.lock:
                        plan.done.add(number)
                        del plan.owner[number]
                        plan.started.discard(number)
                        plan.written.pop(number, None)
                        served[url] += piece_end - number * piece
                        record.write(f"{number}\n")
                        record.flush()
                        if len(plan.done) == count:
                            stats.left_to_hash = size - frontier.hashed
                        number += 1
                        going_on = position < until and plan.owner.get(number) == slot
                        if going_on:
                            plan.started.add(number)
                        plan.changed.notify_all()
                    more.set()  # the hashing thread may read the finished piece back
                    if not going_on:
                        return  # the next piece was taken over: this connection is closed
                    piece_end = min(position + piece, size)
            if position < until:
                raise SourceError(f"the answer ended after {position - start} bytes")
        except BaseException:
            with plan.lock:
                plan.written.pop(number, None)  # the hashing thread reads no more of it
            frontier.failed(number * piece)
            with plan.lock:
                plan.release(slot)
            if on_bytes and position > number * piece:
                on_bytes(number * piece - position)  # the unfinished piece's bytes are not done
            raise
        finally:
            with plan.lock:
                reading.pop(slot, None)

    def worker(slot: int) -> None:
        url = jobs[slot]
        view = memoryview(bytearray(BUFFER))
        claimed = firsts[slot]
        while fails[url] < MAX_FAILS and not cancel.is_set():
            with plan.lock:
                while claimed is None:
                    if len(plan.done) == count or cancel.is_set():
                        return
                    hashing = frontier.hashed // piece
                    claimed = plan.claim(slot, hashing + window, hashing)
                    if claimed is None:  # wait for the hash, or for a piece to come back
                        plan.changed.wait(0.05)
            first, end = claimed
            claimed = None
            try:
                stream_run(client, url, slot, first, end, view)
            except (httpx.HTTPError, SourceError) as exc:
                with plan.lock:
                    fails[url] += 1
                    errors.append(f"{httpx.URL(url).host}: {type(exc).__name__}: {exc}")
        with plan.lock:  # this mirror gave up (or the caller stopped): leave its pieces
            plan.release(slot)

    hasher = threading.Thread(target=hash_behind, daemon=True)
    hasher.start()
    # One client for every connection: its TLS context (loading the CA certificates) is made
    # once; it is safe to share between threads.
    client = make_client(settings, insecure)
    try:
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            try:
                for _ in pool.map(worker, range(len(jobs))):
                    pass
            except BaseException:  # Ctrl-C: every connection stops at its next read
                cancel.set()
                with plan.lock:  # and a read waiting for a silent mirror returns now
                    for body in reading.values():
                        if body.sock is not None:
                            with contextlib.suppress(OSError):
                                body.sock.shutdown(socket.SHUT_RDWR)
                raise
        stop.set()
        hasher.join()
        if hash_failed:
            raise SourceError(
                f"{dest.name}: reading the partial download back failed: {hash_failed[0]}",
                hint="check the disk holding the download, then run the same command again",
            )
        if len(plan.done) < count:
            raise SourceError(
                f"{dest.name}: {count - len(plan.done)} of {count} pieces could not be "
                f"downloaded from any mirror; last error: {errors[-1] if errors else '?'}",
                hint="run the same command again: finished pieces are kept",
            )
        frontier.advance(plan)
        digest = frontier.digest()
    finally:
        stop.set()
        hasher.join()
        client.close()
        record.close()
        os.close(fd)  # not fsynced here: whoever keeps the file makes it durable (the store)
        stats.read_back, stats.stolen = frontier.read_back, plan.stolen
        stats.rewound = frontier.rewound
    return digest, served


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
