"""Checked HTTP: the one place where neurodesk talks to a server and decides what to believe.

Everything a server sends is untrusted (DESIGN.md, Trust). This module gives every source and
publisher the same behaviour:

* :func:`make_client` — an ``httpx.Client`` with connect/read timeouts, a bounded number of
  redirects (never from https down to plain http), TLS verification unless ``insecure``, and
  the proxies of ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` from the
  environment;
* :func:`open_stream` — one request whose body is read under a **low-speed limit** (fewer than
  ``low_speed_limit`` bytes/s averaged over ``low_speed_time`` seconds abandons it) and an
  overall **deadline**, so a trickling or stalling mirror cannot hold an install for ever;
* :func:`request` — the same, with the body read into memory up to a size cap;
* :func:`expect_status`, :func:`expect_type`, :func:`json_object`, :func:`field` — status,
  content type and shape checks before anything in an answer is used.

Every failure is a :class:`SourceError` whose message starts with the mirror's name, one line,
and whose class tells :class:`neurodesk.sources.mirrors.MirrorSet` what to do next:

=====================  ==================================================================
:class:`TransientError`   retry the same mirror (connection lost, timeout, 5xx, 429, short read)
:class:`MissingError`     the mirror does not have it (404); try the next mirror
:class:`CorruptBlobError` bytes arrived but do not match their digest; next mirror
:class:`BadAnswerError`   an answer that cannot be used (unexpected status, HTML instead of
                          JSON, garbage, too many redirects, too large); next mirror at once
:class:`SlowMirrorError`  below the low-speed limit or past the deadline; next mirror at once
=====================  ==================================================================
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import httpx

from neurodesk.errors import NeurodeskError

T = TypeVar("T")

MAX_DOCUMENT = 8 << 20  # a manifest, an index, a tag list: never more than this in memory
MAX_REDIRECTS = 5
JSON_TYPES = frozenset(
    {
        "application/json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.artifact.manifest.v1+json",
    }
)
# What a plain static file server may call a JSON file or a blob it knows nothing about.
STATIC_TYPES = frozenset({"", "application/octet-stream", "text/plain", "binary/octet-stream"})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


class SourceError(NeurodeskError):
    """A source could not deliver something; another mirror or source may."""


class TransientError(SourceError):
    """Worth retrying on the same mirror: a dropped connection, a timeout, a 5xx, a short read."""


class CorruptBlobError(SourceError):
    """Bytes arrived complete but do not match their digest: this mirror's copy is bad."""


class MissingError(SourceError):
    """The mirror answered, and it does not have the thing asked for (404)."""


class BadAnswerError(SourceError):
    """The mirror answered something unusable (status, content type, shape, redirects, size)."""


class SlowMirrorError(BadAnswerError):
    """The mirror sent too little too slowly, or took longer than the deadline."""


@dataclass(frozen=True)
class HttpSettings:
    """Limits for one request to one mirror (``config.yaml`` keys of the same names).

    ``timeout``: seconds of silence (connecting, or between two reads) before giving up;
    ``low_speed_limit`` / ``low_speed_time``: abandon a body arriving slower than this many
    bytes per second, averaged over this many seconds (curl's rule); ``deadline``: seconds one
    request may take in all; ``max_redirects``: redirects followed before giving up.
    """

    timeout: float = 10.0
    low_speed_limit: int = 1024
    low_speed_time: float = 30.0
    deadline: float = 6 * 3600.0
    max_redirects: int = MAX_REDIRECTS


def mirror_name(url: str | httpx.URL) -> str:
    """``host[:port]`` of a URL: how a mirror is named in messages by default."""
    try:
        parsed = httpx.URL(str(url))
    except httpx.InvalidURL:
        return str(url)[:80]
    return f"{parsed.host}:{parsed.port}" if parsed.port else parsed.host or str(url)


class Client(httpx.Client):
    """An ``httpx.Client`` that remembers the :class:`HttpSettings` it was made with."""

    def __init__(self, settings: HttpSettings, insecure: bool) -> None:
        super().__init__(
            timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 5.0)),
            verify=not insecure,
            follow_redirects=True,
            max_redirects=settings.max_redirects,
            trust_env=True,
            headers={"User-Agent": "neurodesk"},
        )
        self.settings = settings


def make_client(settings: HttpSettings | None = None, insecure: bool = False) -> Client:
    """A client with the timeouts and redirect bound of ``settings``; proxies from the
    environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``).

    ``insecure`` turns TLS verification off (plain ``http://`` needs no flag here: the caller
    builds the URL)."""
    return Client(settings or HttpSettings(), insecure)


def _settings_of(client: httpx.Client) -> HttpSettings:
    return client.settings if isinstance(client, Client) else HttpSettings()


def _transport_error(mirror: str, what: str, exc: Exception) -> SourceError:
    if isinstance(exc, httpx.TooManyRedirects):
        return BadAnswerError(f"{mirror}: {what}: too many redirects")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return BadAnswerError(f"{mirror}: {what}: redirected to an unsupported address")
    detail = str(exc).splitlines()[0] if str(exc) else "connection lost"
    if "CERTIFICATE_VERIFY_FAILED" in detail or "WRONG_VERSION_NUMBER" in detail:
        return BadAnswerError(
            f"{mirror}: {what}: TLS failed: {detail}",
            hint="check the address; use --insecure (or insecure: true) only for a trusted mirror",
        )
    return TransientError(f"{mirror}: {what}: {type(exc).__name__}: {detail}")


class Stream:
    """A response whose body is read under the low-speed limit and the deadline."""

    def __init__(
        self, response: httpx.Response, mirror: str, what: str, settings: HttpSettings, start: float
    ) -> None:
        self.response = response
        self.mirror = mirror
        self.what = what
        self.settings = settings
        self.start = start

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self.response.headers

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives; raises SlowMirrorError, TransientError (naming the mirror)."""
        pace = _Pace(self)
        try:
            for chunk in self.response.iter_bytes():
                pace.check(len(chunk))
                yield chunk
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise _transport_error(self.mirror, self.what, exc) from None

    def body(self, length: int) -> Body:
        """The ``length`` bytes of an identity-coded body, to be read with
        :meth:`Body.readinto` into a buffer of the caller's; under the same limits as
        :meth:`chunks`.

        Where the connection allows it (plain TCP, or TLS straight to the server) the body is
        read from the socket with ``recv_into``: no new bytes object and no copy per read. The
        connection is then not reused (its HTTP state was bypassed): for large bodies."""
        return Body(self, length, self._socket(length))

    def _socket(self, length: int) -> socket.socket | None:
        """The socket to read the rest of the body from, when that is safe."""
        headers = self.headers
        if headers.get("Content-Encoding", "identity").lower() != "identity":
            return None
        if "Transfer-Encoding" in headers or headers.get("Content-Length") != str(length):
            return None
        network = self.response.extensions.get("network_stream")
        get = getattr(network, "get_extra_info", None)
        if get is None:
            return None
        sock, tls = get("socket"), get("ssl_object")
        if isinstance(sock, ssl.SSLSocket):
            # TLS inside a proxy's TLS shows the outer socket and a separate SSLObject.
            return None if isinstance(tls, ssl.SSLObject) else sock
        return sock if isinstance(sock, socket.socket) and tls is None else None

    def read(self, max_bytes: int = MAX_DOCUMENT) -> bytes:
        declared = self.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise BadAnswerError(
                f"{self.mirror}: {self.what}: answer of {declared} bytes is larger than "
                f"the {max_bytes} allowed"
            )
        parts: list[bytes] = []
        total = 0
        for chunk in self.chunks():
            total += len(chunk)
            if total > max_bytes:
                raise BadAnswerError(
                    f"{self.mirror}: {self.what}: answer larger than the {max_bytes} bytes allowed"
                )
            parts.append(chunk)
        return b"".join(parts)


class Body:
    """A body being read into the caller's buffers (see :meth:`Stream.body`)."""

    def __init__(self, stream: Stream, length: int, sock: socket.socket | None) -> None:
        self.stream = stream
        self.length = length
        self.sock = sock
        self.got = 0
        self.pace = _Pace(stream)
        # With a socket: only what the HTTP parser already holds (or one read) comes through
        # httpx. The iterator is kept to the end: dropping it would close the connection.
        self.source: Iterator[bytes] = stream.response.iter_raw() if sock else stream.chunks()
        self.started = False
        self.pending = memoryview(b"")

    def readinto(self, view: memoryview) -> int:
        """Up to ``len(view)`` bytes into ``view``; 0 at the end of the body, or when the
        server closed early (the caller sees a short body)."""
        stream = self.stream
        if self.got >= self.length or not len(view):
            return 0
        try:
            if not self.pending and (self.sock is None or not self.started):
                self.started = True
                chunk = next(self.source, b"")
                if self.got + len(chunk) > self.length:
                    raise BadAnswerError(f"{stream.mirror}: {stream.what}: sent more than asked")
                if self.sock is not None:
                    self.pace.check(len(chunk))
                    self.sock.settimeout(stream.settings.timeout)
                self.pending = memoryview(chunk)
            if self.pending:
                count = min(len(view), len(self.pending))
                view[:count] = self.pending[:count]
                self.pending = self.pending[count:]
            elif self.sock is not None:
                count = self.sock.recv_into(view, min(len(view), self.length - self.got))
                self.pace.check(count)
            else:
                count = 0
        except (httpx.TransportError, httpx.StreamError, OSError) as exc:
            raise _transport_error(stream.mirror, stream.what, exc) from None
        self.got += count
        return count


class _Pace:
    """The low-speed limit (curl's rule) and the deadline of one body being read."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.window_start = time.monotonic()
        self.window_bytes = 0

    def check(self, count: int) -> None:
        stream, settings = self.stream, self.stream.settings
        now = time.monotonic()
        if now - stream.start > settings.deadline:
            raise SlowMirrorError(
                f"{stream.mirror}: {stream.what}: not done after "
                f"{settings.deadline:g} s (the deadline); trying the next mirror"
            )
        self.window_bytes += count
        elapsed = now - self.window_start
        if elapsed >= settings.low_speed_time:
            if self.window_bytes < settings.low_speed_limit * elapsed:
                raise SlowMirrorError(
                    f"{stream.mirror}: {stream.what}: {self.window_bytes / elapsed:.0f} bytes/s "
                    f"over {elapsed:.0f} s, below the low-speed limit of "
                    f"{settings.low_speed_limit} bytes/s"
                )
            self.window_start, self.window_bytes = now, 0


@contextmanager
def open_stream(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    mirror: str | None = None,
    settings: HttpSettings | None = None,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    params: Mapping[str, str] | None = None,
) -> Iterator[Stream]:
    """Send one request; yield a :class:`Stream` once the headers arrived.

    Connection problems and too many redirects become SourceErrors naming ``mirror``
    (default: the URL's ``host:port``)."""
    settings = settings or _settings_of(client)
    mirror = mirror or mirror_name(url)
    try:
        what = f"{method} {httpx.URL(url).path}"
    except httpx.InvalidURL as exc:
        raise BadAnswerError(f"{mirror}: '{url[:80]}' is not a usable URL: {exc}") from None
    start = time.monotonic()
    try:
        with client.stream(
            method, url, headers=dict(headers or {}), content=content, params=params
        ) as response:
            if url.startswith("https://") and response.url.scheme != "https":
                raise BadAnswerError(f"{mirror}: {what}: redirected from https to plain http")
            yield Stream(response, mirror, what, settings, start)
    except (httpx.TransportError, httpx.StreamError, httpx.TooManyRedirects) as exc:
        raise _transport_error(mirror, what, exc) from None
    except httpx.InvalidURL as exc:
        raise BadAnswerError(f"{mirror}: {what}: bad address: {exc}") from None


@dataclass(frozen=True)
class Answer:
    """A complete answer: status, headers and (size-capped) body, and who sent it."""

    status: int
    headers: httpx.Headers
    content: bytes
    url: str
    mirror: str
    what: str

    @property
    def content_type(self) -> str:
        return str(self.headers.get("Content-Type", "")).split(";")[0].strip().lower()


def request(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    mirror: str | None = None,
    settings: HttpSettings | None = None,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    params: Mapping[str, str] | None = None,
    max_bytes: int = MAX_DOCUMENT,
) -> Answer:
    """One request with its body read (at most ``max_bytes``) under the limits."""
    with open_stream(
        client,
        method,
        url,
        mirror=mirror,
        settings=settings,
        headers=headers,
        content=content,
        params=params,
    ) as stream:
        body = b"" if method == "HEAD" else stream.read(max_bytes)
        return Answer(
            stream.status,
            stream.headers,
            body,
            str(stream.response.url),
            stream.mirror,
            stream.what,
        )


def status_error(status: int, mirror: str, what: str) -> SourceError:
    """The error for an HTTP status that was not expected: 404 missing, 5xx/429/408 worth a
    retry, anything else an unusable answer."""
    message = f"{mirror}: {what}: HTTP {status}"
    if status == 404:
        return MissingError(message)
    if status >= 500 or status in (408, 429):
        return TransientError(message)
    if status in (401, 403):
        return BadAnswerError(message + " (access denied)", hint="check your access rights")
    return BadAnswerError(message)


def expect_status(answer: Answer | Stream, *ok: int) -> None:
    """Raise unless the status is one of ``ok`` (default: any 2xx)."""
    if (answer.status in ok) if ok else (200 <= answer.status < 300):
        return
    raise status_error(answer.status, answer.mirror, answer.what)


def expect_type(answer: Answer | Stream, allowed: Collection[str]) -> None:
    """Raise BadAnswerError unless the Content-Type (without parameters) is in ``allowed``.

    HTML is never accepted where something else is asked for: a captive portal, a login page or
    a server that answers everything with 200 HTML."""
    raw = answer.headers.get("Content-Type", "")
    media = raw.split(";")[0].strip().lower()
    if media in allowed:
        return
    kind = "an HTML page" if media in HTML_TYPES else f"'{media or 'no content type'}'"
    raise BadAnswerError(f"{answer.mirror}: {answer.what}: answered {kind}, not the data asked for")


def refuse_html(answer: Answer | Stream) -> None:
    """Raise BadAnswerError when a binary download is answered with an HTML page."""
    media = answer.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media in HTML_TYPES:
        raise BadAnswerError(
            f"{answer.mirror}: {answer.what}: answered an HTML page, not the data asked for"
        )


def json_object(answer: Answer, allowed: Collection[str] = JSON_TYPES) -> dict[str, Any]:
    """The answer's body as a JSON object, after checking status 2xx and content type."""
    expect_status(answer)
    expect_type(answer, allowed)
    return parse_object(answer.content, answer.mirror, answer.what)


def parse_object(raw: bytes, mirror: str, what: str) -> dict[str, Any]:
    """``raw`` as a JSON object, or BadAnswerError naming ``mirror``."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadAnswerError(f"{mirror}: {what}: answer is not JSON") from None
    if not isinstance(data, dict):
        raise BadAnswerError(f"{mirror}: {what}: answer is JSON but not an object")
    return data


def field(
    data: Mapping[str, Any],
    key: str,
    kind: type[T],
    mirror: str,
    what: str,
    default: T | None = None,
    each: type | None = None,
) -> T:
    """``data[key]`` checked to be a ``kind`` (and, for lists, each item an ``each``).

    A missing key gives ``default`` when one is given (``null`` counts as missing)."""
    value = data.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadAnswerError(
            f"{mirror}: {what}: '{key}' is {type(value).__name__}, not {kind.__name__}"
        )
    if each is not None and isinstance(value, list):
        for item in value:
            if not isinstance(item, each):
                raise BadAnswerError(
                    f"{mirror}: {what}: '{key}' holds a {type(item).__name__}, "
                    f"not only {each.__name__}s"
                )
    return cast(T, value)
