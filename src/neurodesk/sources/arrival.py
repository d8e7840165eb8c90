"""Reading a blob while it still downloads, so a pull unpacks a layer as its bytes arrive.

A download thread writes the blob to ``<dest>.part`` (unbuffered: what it reports is in the
file) and calls :meth:`Arrival.on_bytes` after each write; when it ends, :meth:`Arrival.finish`
records how. An :class:`ArrivingBlob` reads that file at any offset the download has reached,
and blocks for the rest. Nothing read this way is trusted more than the blob as a whole: the
reader of the bytes (the store) waits for the download's own digest check before anything
becomes visible. When the file was dropped or replaced meanwhile (a corrupt copy, fetched again
from another mirror), what was read is not what was verified: the reader or
:meth:`Arrival.check` raises :class:`~neurodesk.store.store.UnpackAgain`, once, and the store
unpacks again from the verified file.
"""

from __future__ import annotations

import io
import os
import threading
from concurrent.futures import CancelledError, Future
from pathlib import Path

from neurodesk.sources.http import TransientError
from neurodesk.store.store import UnpackAgain


class Arrival:
    """What the download of one blob tells the readers of its file."""

    def __init__(self, dest: Path, size: int, name: str) -> None:
        self.dest = dest
        self.part = dest.with_name(dest.name + ".part")
        self.size = size
        self.name = name  # for messages: the blob's short digest
        self._cond = threading.Condition()
        self.events = 0  # bumped on every report; readers wait for it to change
        self.started = False
        self.dropped = False  # some bytes were taken back: a read so far is void
        self.streamed = False  # a reader was handed out
        self.done = False
        self.error: BaseException | None = None

    def on_bytes(self, count: int) -> None:
        """A download's progress report: ``count`` bytes more in the file (negative: dropped)."""
        with self._cond:
            self.events += 1
            if count > 0:
                self.started = True
            elif count < 0:
                self.dropped = True
            self._cond.notify_all()

    def finish(self, future: Future[None]) -> None:
        """The download ended (a ``Future.add_done_callback``)."""
        with self._cond:
            self.done = True
            try:
                self.error = future.exception()
            except CancelledError as exc:
                self.error = exc
            self._cond.notify_all()

    def wait(self, seen: int) -> None:
        """Until there is news after ``seen`` (an earlier :attr:`events`) or the end; raises the
        download's error if it ended in one."""
        with self._cond:
            while self.events == seen and not self.done:
                self._cond.wait()
            if self.error is not None:
                raise self.error

    def check(self) -> None:
        """After the download succeeded: refuse, once, what a reader read while the file was
        dropped or replaced (see the module doc); the store then reads the verified file."""
        if self.streamed and self.dropped:
            self.streamed = False
            raise UnpackAgain(f"blob {self.name} was fetched again while it was unpacked")

    def reader(self) -> ArrivingBlob:
        self.streamed = True
        return ArrivingBlob(self)


class ArrivingBlob(io.RawIOBase):
    """A seekable, read-only view of a blob's file that blocks until the bytes asked for have
    arrived; ``size`` bytes long (the descriptor's size)."""

    def __init__(self, arrival: Arrival) -> None:
        super().__init__()
        self.arrival = arrival
        self._fd: int | None = None  # opened once, closed with the reader
        self._lock = threading.Lock()
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self._pos
        elif whence == os.SEEK_END:
            offset += self.arrival.size
        if offset < 0:
            raise OSError(22, "negative seek position")
        self._pos = offset
        return offset

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self.read_at(memoryview(buffer).cast("B"), self._pos)
        self._pos += count
        return count

    def read_at(self, view: memoryview, offset: int) -> int:
        """Up to ``len(view)`` bytes at ``offset`` into ``view``, blocking until at least one
        has arrived; 0 only at the end of the blob. Safe to call from several threads."""
        want = min(len(view), self.arrival.size - offset)
        if want <= 0:
            return 0
        while True:
            seen = self.arrival.events
            fd = self._fd if self._fd is not None else self._open()
            if fd is not None:
                count = os.preadv(fd, [view[:want]], offset)
                if count:
                    return count
                self._same_file(fd)
                if self.arrival.done and self.arrival.error is None:
                    raise TransientError(f"blob {self.arrival.name} ended early while unpacking")
            self.arrival.wait(seen)

    def _open(self) -> int | None:
        with self._lock:
            if self._fd is not None or not self.arrival.started:
                return self._fd
            for path in (self.arrival.part, self.arrival.dest):  # renamed once verified
                try:
                    self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                return self._fd
            return None

    def _same_file(self, fd: int) -> None:
        """A download that started again writes a new file: what was read so far is void."""
        mine = os.fstat(fd).st_ino
        for path in (self.arrival.part, self.arrival.dest):
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                continue
            if current != mine:
                self.arrival.dropped = True
                self.arrival.streamed = False  # raised once, here
                raise UnpackAgain(f"blob {self.arrival.name} was replaced while it was read")
            return

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        super().close()
