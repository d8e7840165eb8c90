"""One file from several HTTP mirrors at once, in Range streams; resumable, hashed as it arrives.

The file is cut into pieces (the unit of claiming, resuming and hashing). Each mirror gets
``per_mirror`` connections. A connection asks for a run of free pieces in one Range request
and keeps reading piece after piece while the next one is still free; a connection that is
free picks the middle of the largest free run, so the work splits like aria2c's segments and a
fast mirror ends up serving more of the file than a slow one. A piece that fails goes back to
the free pieces for any mirror; a mirror that fails :data:`MAX_FAILS` times is dropped.

Bytes go from the socket into one reusable buffer per connection
(:meth:`neurodesk.sources.http.Stream.body`) and from there to their place in a
pre-allocated file with ``os.pwrite``. The sha256 is computed while downloading: the connection
whose bytes continue the hashed prefix hashes them from its buffer; pieces that finished out
of order are read back once the prefix reaches them.

Progress is kept in ``<dest>.part`` plus ``<dest>.part.done`` (the indexes of finished pieces),
so an interrupted download resumes where it stopped. A server that ignores ``Range``, answers
another range, sends more or fewer bytes than asked, or an unknown size are faults of that
mirror.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from neurodesk.sources.http import HttpSettings, make_client, open_stream, refuse_html
from neurodesk.sources.transfer import CorruptBlobError, SourceError

PIECE_MIN, PIECE_MAX = 256 << 10, 8 << 20
BUFFER = 1 << 20  # bytes read from a socket at once, into one buffer per connection
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
    """Which pieces are finished, which are being fetched, and where a free connection starts.

    Every method is called with :attr:`lock` held."""

    def __init__(self, count: int, done: set[int]) -> None:
        self.count = count
        self.done = done
        self.taken: set[int] = set()
        self.written: dict[int, int] = {}  # bytes on disk of each piece being fetched
        self.lock = threading.Lock()

    def free(self, number: int) -> bool:
        return 0 <= number < self.count and number not in self.done and number not in self.taken

    def start(self) -> tuple[int, int] | None:
        """Claim where a new stream starts; returns (first piece, end of its free run)."""
        best: tuple[int, int] | None = None
        number = 0
        while number < self.count:
            if not self.free(number):
                number += 1
                continue
            end = number
            while end < self.count and self.free(end):
                end += 1
            if best is None or end - number > best[1] - best[0]:
                best = (number, end)
            number = end
        if best is None:
            return None
        first, end = best
        if first > 0 and first - 1 in self.taken:  # a stream is running into this run: split it
            first += (end - first) // 2
        self.taken.add(first)
        return first, end


class _Frontier:
    """The sha256 of the file's hashed prefix: bytes continuing it are hashed from memory as they
    arrive; pieces finished out of order are read back from the file when the prefix reaches
    them. A piece that fails after some of its bytes were hashed taints the digest, which is
    then computed again from the whole file at the end (rare: a mirror failing mid-piece)."""

    def __init__(self, fd: int, piece: int, size: int) -> None:
        self.fd = fd
        self.piece = piece
        self.size = size
        self.hashed = 0  # bytes hashed so far, from the start of the file
        self.hasher = hashlib.sha256()
        self.busy = threading.Lock()
        self.tainted = False
        self.view = memoryview(bytearray(BUFFER))  # for reading back, under ``busy``

    def feed(self, position: int, data: memoryview) -> None:
        if self.hashed != position:
            return  # not the bytes right after the prefix: read back later
        with self.busy:  # held only briefly by the hashing thread when the prefix reached us
            if self.hashed == position:
                self.hasher.update(data)
                self.hashed += len(data)

    def failed(self, start: int) -> None:
        """A piece starting at ``start`` failed: were some of its bytes hashed already?"""
        if self.hashed > start:
            self.tainted = True

    def advance(self, plan: _Plan) -> None:
        with self.busy:
            view = self.view
            while self.hashed < self.size:
                number = self.hashed // self.piece
                with plan.lock:
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
                    self.hasher.update(view[:count])
                    self.hashed += count

    def digest(self) -> str:
        if self.hashed < self.size:
            raise SourceError("not every piece was hashed")
        if self.tainted:
            again = hashlib.sha256()
            view = self.view
            position = 0
            while count := os.preadv(self.fd, [view], position):
                again.update(view[:count])
                position += count
            return "sha256:" + again.hexdigest()
        return "sha256:" + self.hasher.hexdigest()


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

    Pieces are an eighth of each connection's fair share, between 256 KiB and 8 MiB: small
    enough that a slow mirror holds up little at the end, large enough to cost nothing."""
    if piece is None:
        share = size // max(1, 8 * per_mirror * len(urls))
        piece = min(PIECE_MAX, max(PIECE_MIN, share))
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
    jobs = [url for _ in range(per_mirror) for url in urls]  # mirrors taking turns
    plan = _Plan(count, done)
    # Every connection gets its first run now, so every mirror is put to work however late
    # its thread starts.
    firsts = [plan.start() for _ in jobs]
    served: dict[str, int] = {url: 0 for url in urls}
    fails: dict[str, int] = {url: 0 for url in urls}
    errors: list[str] = []
    fd = os.open(part, os.O_RDWR)
    frontier = _Frontier(fd, piece, size)
    record = done_file.open("a")
    more, stop = threading.Event(), threading.Event()

    def hash_behind() -> None:
        """Hash finished pieces behind the prefix, off the connections' threads."""
        while not stop.is_set():
            more.wait(0.1)
            more.clear()
            try:
                frontier.advance(plan)
            except (SourceError, OSError):
                return  # the final advance reports it

    def stream_run(client: httpx.Client, url: str, first: int, end: int, buffer: bytearray) -> None:
        """Fetch pieces ``first``, ``first + 1``, ... (up to ``end``) on one request, while the
        next piece is still free; ``first`` is claimed by the caller."""
        start = first * piece
        until = min(end * piece, size)  # the end of the bytes asked for
        headers = {"Range": f"bytes={start}-{until - 1}", "Accept-Encoding": "identity"}
        view = memoryview(buffer)
        number = first
        position = start  # the next byte to arrive
        try:
            with open_stream(client, "GET", url, headers=headers) as answer:
                if answer.status != 206:
                    raise SourceError(f"HTTP {answer.status} to a Range request")
                refuse_html(answer)
                ranges = answer.headers.get("Content-Range", "")
                if not ranges.startswith(f"bytes {start}-{until - 1}/"):
                    raise SourceError(f"answered range '{ranges}', not {start}-{until - 1}")
                body = answer.body(until - start)
                piece_end = min(position + piece, size)
                while position < until:
                    # never past the piece's end: the next piece may be someone else's
                    count = body.readinto(view[: min(BUFFER, piece_end - position)])
                    if count == 0:
                        break
                    chunk = view[:count]
                    os.pwrite(fd, chunk, position)
                    frontier.feed(position, chunk)
                    position += count
                    plan.written[number] = position - number * piece  # after feed: or read back
                    if on_bytes:
                        on_bytes(count)
                    if position < piece_end:
                        continue
                    with plan.lock:
                        plan.done.add(number)
                        plan.taken.discard(number)
                        plan.written.pop(number, None)
                        served[url] += piece_end - number * piece
                        record.write(f"{number}\n")
                        record.flush()
                        number += 1
                        going_on = position < until and plan.free(number)
                        if going_on:
                            plan.taken.add(number)
                    more.set()  # the hashing thread may read the finished piece back
                    if not going_on:
                        return  # the next piece is someone else's: this connection is closed
                    piece_end = min(position + piece, size)
            if position < until:
                raise SourceError(f"the answer ended after {position - start} bytes")
        except BaseException:
            with plan.lock:
                plan.taken.discard(number)
                plan.written.pop(number, None)
            frontier.failed(number * piece)
            if on_bytes and position > number * piece:
                on_bytes(number * piece - position)  # the unfinished piece's bytes are not done
            raise

    def worker(slot: int) -> None:
        url = jobs[slot]
        buffer = bytearray(BUFFER)
        claimed = firsts[slot]
        while fails[url] < MAX_FAILS:
            if claimed is None:
                with plan.lock:
                    if len(plan.done) == count:
                        return
                    claimed = plan.start()
            if claimed is None:
                time.sleep(0.05)  # the last pieces are being fetched; one may come back
                continue
            first, end = claimed
            claimed = None
            try:
                stream_run(client, url, first, end, buffer)
            except (httpx.HTTPError, SourceError) as exc:
                with plan.lock:
                    fails[url] += 1
                    errors.append(f"{httpx.URL(url).host}: {type(exc).__name__}: {exc}")
        if claimed is not None:  # this mirror gave up before starting: leave it to the others
            with plan.lock:
                plan.taken.discard(claimed[0])

    hasher = threading.Thread(target=hash_behind, daemon=True)
    hasher.start()
    # One client for every connection: its TLS context (loading the CA certificates) is made
    # once; it is safe to share between threads.
    client = make_client(settings, insecure)
    try:
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            list(pool.map(worker, range(len(jobs))))
        stop.set()
        hasher.join()
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
