"""Mirror choice, retries with backoff and failover (issue 7), with fake operations."""

from __future__ import annotations

import time

import pytest

from neurodesk.sources.mirrors import MirrorSet, probe_all
from neurodesk.sources.transfer import (
    CorruptBlobError,
    MissingError,
    SourceError,
    TransientError,
)


def test_probe_orders_fastest_first_and_unreachable_last() -> None:
    delays = {"slow": 0.15, "fast": 0.0, "dead": None, "medium": 0.05}

    def probe(mirror: str) -> None:
        delay = delays[mirror]
        if delay is None:
            raise TransientError("connection refused")
        time.sleep(delay)

    order = [p.mirror for p in probe_all(list(delays), probe)]
    assert order == ["fast", "medium", "slow", "dead"]


def make(mirrors: list[str], retries: int = 3) -> tuple[MirrorSet[str], list[float]]:
    sleeps: list[float] = []
    chosen = MirrorSet(mirrors, lambda m: None, retries=retries, sleep=sleeps.append)
    chosen._order = list(mirrors)  # probing is tested above; keep the given order here
    return chosen, sleeps


def test_transient_errors_are_retried_with_backoff_then_the_next_mirror() -> None:
    mirrors, sleeps = make(["a", "b"], retries=3)
    calls: list[str] = []

    def op(mirror: str) -> str:
        calls.append(mirror)
        if mirror == "a":
            raise TransientError("timeout")
        return f"from {mirror}"

    assert mirrors.attempt(op, "blob") == "from b"
    assert calls == ["a", "a", "a", "b"]
    assert sleeps == [0.2, 0.4]
    assert mirrors.ordered() == ["b", "a"]  # the failing mirror goes last for later operations


def test_a_transient_error_that_clears_stays_on_the_same_mirror() -> None:
    mirrors, sleeps = make(["a", "b"])
    failures = iter([True, False])

    def op(mirror: str) -> str:
        if next(failures):
            raise TransientError("connection reset")
        return mirror

    assert mirrors.attempt(op, "blob") == "a"
    assert sleeps == [0.2]


def test_corrupt_data_fails_over_at_once() -> None:
    mirrors, sleeps = make(["a", "b"])
    calls: list[str] = []

    def op(mirror: str) -> str:
        calls.append(mirror)
        if mirror == "a":
            raise CorruptBlobError("digest mismatch")
        return mirror

    assert mirrors.attempt(op, "blob") == "b"
    assert calls == ["a", "b"] and sleeps == []


def test_missing_everywhere_and_failing_everywhere() -> None:
    mirrors, _ = make(["a", "b"])
    with pytest.raises(MissingError, match="not found on any mirror"):
        mirrors.attempt(lambda m: (_ for _ in ()).throw(MissingError(f"{m}: 404")), "tool")
    mirrors, _ = make(["a", "b"], retries=2)

    def broken(mirror: str) -> None:
        raise TransientError(f"{mirror} down")

    with pytest.raises(SourceError, match="failed on every mirror") as caught:
        mirrors.attempt(broken, "manifest")
    assert not isinstance(caught.value, MissingError)
