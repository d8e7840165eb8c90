"""Several mirrors of one source: probe latency, use the fastest, retry, fail over.

Like a CVMFS client, which fetches ``.cvmfspublished`` from every Stratum 1 and keeps the
fastest, we time one small request per mirror (``/v2/`` for a registry, ``index.json`` for an
HTTP layout) and try mirrors fastest first. On a transient error (dropped connection, timeout,
5xx, short read) the same mirror is retried with exponential backoff; after ``retries``
attempts, or at once on a corrupt or missing object, an unusable answer (HTML, garbage, too
many redirects) or a mirror below the low-speed limit, the next mirror is tried.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from neurodesk.sources.http import (
    BadAnswerError,
    CorruptBlobError,
    MissingError,
    SourceError,
    TransientError,
)

M = TypeVar("M")
T = TypeVar("T")

BACKOFF_START = 0.2
BACKOFF_MAX = 5.0


@dataclass(frozen=True)
class Probe(Generic[M]):
    mirror: M
    latency: float | None  # seconds; None when the mirror did not answer

    @property
    def ok(self) -> bool:
        return self.latency is not None


def probe_all(mirrors: Sequence[M], probe: Callable[[M], None]) -> list[Probe[M]]:
    """Time ``probe`` on every mirror at once; fastest first, unreachable ones last."""

    def timed(mirror: M) -> Probe[M]:
        start = time.perf_counter()
        try:
            probe(mirror)
        except SourceError:
            return Probe(mirror, None)
        return Probe(mirror, time.perf_counter() - start)

    if len(mirrors) == 1:
        return [Probe(mirrors[0], 0.0)]  # nothing to choose: let the real request find out
    with ThreadPoolExecutor(max_workers=min(8, len(mirrors))) as pool:
        results = list(pool.map(timed, mirrors))
    return sorted(
        results, key=lambda p: (p.latency is None, p.latency if p.latency is not None else 0.0)
    )


class MirrorSet(Generic[M]):
    """Mirrors in the order to try them; :meth:`attempt` runs one operation with failover."""

    def __init__(
        self,
        mirrors: Sequence[M],
        probe: Callable[[M], None],
        retries: int = 3,
        label: Callable[[M], str] = str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._mirrors = list(mirrors)
        self._probe = probe
        self._order: list[M] | None = None
        self.probes: list[Probe[M]] = []
        self.retries = retries
        self.label = label
        self.sleep = sleep

    def ordered(self) -> list[M]:
        if self._order is None:
            self.probes = probe_all(self._mirrors, self._probe)
            self._order = [p.mirror for p in self.probes]
        return self._order

    def demote(self, mirror: M) -> None:
        """Move a failing mirror to the end, so the next operations start elsewhere."""
        order = self.ordered()
        if mirror in order and len(order) > 1:
            order.remove(mirror)
            order.append(mirror)

    def _say(self, mirror: M, exc: SourceError) -> str:
        """One line naming the mirror (http.py's messages already start with it)."""
        label = self.label(mirror)
        return exc.message if label in exc.message else f"{label}: {exc.message}"

    def attempt(self, operation: Callable[[M], T], what: str) -> T:
        failures: dict[str, str] = {}  # the last failure of each mirror, in the order tried
        missing = 0
        for mirror in list(self.ordered()):
            delay = BACKOFF_START
            for attempt in range(1, self.retries + 1):
                try:
                    return operation(mirror)
                except TransientError as exc:
                    failures[self.label(mirror)] = self._say(mirror, exc)
                    if attempt < self.retries:
                        self.sleep(delay)
                        delay = min(delay * 2, BACKOFF_MAX)
                except MissingError as exc:
                    missing += 1
                    failures[self.label(mirror)] = self._say(mirror, exc)
                    break
                except (CorruptBlobError, BadAnswerError) as exc:
                    failures[self.label(mirror)] = self._say(mirror, exc)
                    self.demote(mirror)
                    break
            else:
                self.demote(mirror)
        said = list(failures.values())
        if missing == len(self._mirrors):
            raise MissingError(f"{what}: not found on any mirror ({said[-1]})")
        raise SourceError(
            f"{what} failed on every mirror: {'; '.join(said) if said else '?'}",
            hint="check the mirrors are up, or raise 'timeout'/'retries' in config.yaml",
        )
