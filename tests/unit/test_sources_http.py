"""neurodesk.sources.http against small hostile servers on loopback: each misbehaviour ends in
one error naming the mirror, quickly, and of the class that makes MirrorSet fail over."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from neurodesk.sources.http import (
    BadAnswerError,
    HttpSettings,
    SlowMirrorError,
    TransientError,
    json_object,
    make_client,
    request,
)
from neurodesk.sources.mirrors import MirrorSet
from neurodesk.sources.transfer import download
from tests.hostile import HostileServer

FAST = HttpSettings(timeout=1.0, low_speed_limit=1000, low_speed_time=1.0, deadline=5.0)
DATA = bytes(range(256)) * 400
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


def test_a_trickling_mirror_is_abandoned_by_the_low_speed_limit(tmp_path: Path) -> None:
    with HostileServer("trickle", trickle_delay=0.05) as server, make_client(FAST) as client:
        start = time.monotonic()
        with pytest.raises(SlowMirrorError) as caught:
            download(client, server.url + "blob", tmp_path / "b", DIGEST, len(DATA), mirror="m1")
        assert time.monotonic() - start < 5
    message = caught.value.message
    assert message.startswith("m1: ") and "low-speed limit" in message and "\n" not in message
    assert not (tmp_path / "b").exists()  # the partial .part may stay: any mirror resumes it


def test_the_deadline_ends_a_request_that_never_gets_slow_enough(tmp_path: Path) -> None:
    patient = HttpSettings(timeout=1.0, low_speed_limit=1, low_speed_time=1.0, deadline=1.5)
    with HostileServer("trickle", trickle_delay=0.05) as server, make_client(patient) as client:
        start = time.monotonic()
        with pytest.raises(SlowMirrorError, match="deadline"):
            download(client, server.url + "blob", tmp_path / "b", DIGEST, len(DATA))
        assert time.monotonic() - start < 5


def test_a_stalled_mirror_times_out(tmp_path: Path) -> None:
    with HostileServer("stall", max_seconds=10) as server, make_client(FAST) as client:
        start = time.monotonic()
        with pytest.raises(TransientError, match=rf"^127\.0\.0\.1:{server.port}: .*Timeout"):
            download(client, server.url + "blob", tmp_path / "b", DIGEST, len(DATA))
        assert time.monotonic() - start < 5


def test_a_redirect_loop_is_bounded() -> None:
    with HostileServer("redirect-loop") as server, make_client(FAST) as client:
        with pytest.raises(BadAnswerError, match="too many redirects"):
            request(client, "GET", server.url + "index.json", mirror="loop")
        assert len(server.requests) == FAST.max_redirects + 1


def test_html_is_never_taken_for_json() -> None:
    with HostileServer("html") as server, make_client(FAST) as client:
        answer = request(client, "GET", server.url + "v2/x/tags/list", mirror="portal")
        with pytest.raises(BadAnswerError, match=r"^portal: .*an HTML page"):
            json_object(answer)


def test_html_is_never_taken_for_a_blob(tmp_path: Path) -> None:
    with (
        HostileServer("html") as server,
        make_client(FAST) as client,
        pytest.raises(BadAnswerError, match="HTML page"),
    ):
        download(client, server.url + "blob", tmp_path / "b", DIGEST, len(DATA))
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.part").exists()


def test_garbage_json_is_refused() -> None:
    with HostileServer("garbage-json") as server, make_client(FAST) as client:
        answer = request(client, "GET", server.url + "index.json", mirror="g")
        with pytest.raises(BadAnswerError, match=r"^g: .*not JSON"):
            json_object(answer)


def test_an_answer_larger_than_allowed_is_refused() -> None:
    with (
        HostileServer("trickle", trickle_delay=0.0) as server,
        make_client(FAST) as client,
        pytest.raises(BadAnswerError, match="larger than"),
    ):
        request(client, "GET", server.url + "big", max_bytes=1000)


def test_proxies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileServer("html") as proxy:
        for name in ("http_proxy", "all_proxy", "ALL_PROXY", "NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        with make_client(FAST) as client:
            answer = request(client, "GET", "http://registry.invalid/v2/x")
        assert answer.status == 200 and proxy.requests  # the proxy was asked, not the host
        monkeypatch.setenv("NO_PROXY", "registry.invalid")
        with make_client(FAST) as client, pytest.raises(TransientError, match=r"registry\.invalid"):
            request(client, "GET", "http://registry.invalid/v2/x")


def test_a_bad_answer_fails_over_at_once() -> None:
    calls: list[str] = []

    def operation(mirror: str) -> str:
        calls.append(mirror)
        if mirror == "bad":
            raise BadAnswerError("bad: GET /v2/: answered an HTML page")
        return "ok"

    mirrors = MirrorSet(["bad", "good"], lambda m: None, retries=3, sleep=lambda s: None)
    mirrors._order = ["bad", "good"]  # as if the probe had ranked the bad one first
    assert mirrors.attempt(operation, "x") == "ok"
    assert calls == ["bad", "good"]  # not retried three times
    assert mirrors.ordered() == ["good", "bad"]  # and demoted for what follows


def _read_body(url: str, length: int, settings: HttpSettings = FAST) -> tuple[bytes, bool]:
    """The body read with Stream.body into a small reused buffer; and whether it came from the
    socket directly."""
    from neurodesk.sources.http import open_stream

    out = bytearray()
    view = memoryview(bytearray(10_000))
    with make_client(settings) as client, open_stream(client, "GET", url) as stream:
        body = stream.body(length)
        while count := body.readinto(view):
            out += view[:count]
        return bytes(out), body.sock is not None


def test_a_body_read_into_a_buffer_is_exact_and_comes_from_the_socket(tmp_path: Path) -> None:
    from tests.httpserve import FileServer

    (tmp_path / "f").write_bytes(DATA * 3)
    with FileServer(tmp_path) as server:
        got, direct = _read_body(server.url + "f", len(DATA) * 3)
        assert got == DATA * 3 and direct
        # Not the length the server announced: read through the parser, and refused.
        with pytest.raises(BadAnswerError, match="more than asked"):
            _read_body(server.url + "f", len(DATA))


def test_a_body_read_from_the_socket_keeps_the_low_speed_limit_and_timeout() -> None:
    with HostileServer("trickle", trickle_delay=0.05) as server:
        start = time.monotonic()
        with pytest.raises(SlowMirrorError, match="low-speed limit"):
            _read_body(server.url + "blob", len(DATA))
        assert time.monotonic() - start < 5
    with HostileServer("stall") as server:
        start = time.monotonic()
        with pytest.raises(TransientError, match=r"127\.0\.0\.1:\d+: GET /blob"):
            _read_body(server.url + "blob", len(DATA))
        assert time.monotonic() - start < 5
