"""``neurodesk update``: download upstream's catalog, check it, replace the cached copy atomically.

The request is conditional (``If-None-Match`` with the last ETag, ``If-Modified-Since`` with the
last ``Last-Modified``), so an unchanged catalog costs one small answer. A download that is not
upstream's format (an HTML error page, truncated JSON, a wrong shape) is refused and the cached
copy stays as it was. ``file://`` URLs and plain paths work too (a site can copy the catalog to
a shared file system).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from neurodesk.catalog.upstream import (
    CatalogError,
    UpstreamCatalog,
    cached_path,
    load_cached,
    meta_path,
    parse_bytes,
)
from neurodesk.errors import NeurodeskError

MAX_BYTES = 64 << 20  # upstream's apps.json is ~100 KB; anything this big is not a catalog


@dataclass(frozen=True)
class UpdateResult:
    changed: bool
    url: str
    catalog: UpstreamCatalog

    @property
    def summary(self) -> str:
        tools = len(self.catalog.names())
        state = "updated" if self.changed else "already up to date"
        skipped = len(self.catalog.skipped)
        entries = "entry" if skipped == 1 else "entries"
        note = f" ({skipped} undated {entries} left out)" if skipped else ""
        return f"catalog {state}: {len(self.catalog.containers)} containers of {tools} tools{note}"


def _read_meta(home: Path) -> dict[str, str]:
    try:
        data = json.loads(meta_path(home).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def cached_since(home: Path) -> str:
    """When the cached copy was fetched, for messages ('' when unknown)."""
    stamp = _read_meta(home).get("fetched", "")
    return stamp


def _store(home: Path, url: str, raw: bytes, etag: str, modified: str) -> None:
    from neurodesk.store.atomic import write_text

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CatalogError(f"{url}: the catalog is not UTF-8 text") from None
    write_text(cached_path(home), text)
    meta = {
        "url": url,
        "etag": etag,
        "last_modified": modified,
        "fetched": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    write_text(meta_path(home), json.dumps(meta, indent=2))


def _local(url: str) -> Path | None:
    if url.startswith("file://"):
        return Path(url.removeprefix("file://"))
    if "://" not in url:
        return Path(url)
    return None


def update(home: Path, url: str, timeout: float = 30.0) -> UpdateResult:
    """Fetch ``url`` into the cache. Raises a one-line NeurodeskError; the cache is untouched."""
    local = _local(url)
    if local is not None:
        try:
            raw = local.read_bytes()
        except OSError as exc:
            raise NeurodeskError(
                f"cannot read the catalog {local}: {exc.strerror}",
                hint="check catalog_url in config.yaml or $NEURODESK_CATALOG_URL",
            ) from None
        catalog = parse_bytes(raw, str(local))
        _store(home, url, raw, "", "")
        return UpdateResult(True, url, catalog)
    return _update_http(home, url, timeout)


def _update_http(home: Path, url: str, timeout: float) -> UpdateResult:
    import httpx

    from neurodesk.sources.http import HttpSettings, SourceError, make_client, open_stream

    meta = _read_meta(home)
    cached = cached_path(home).is_file()
    headers: dict[str, str] = {"Accept": "application/json"}
    if cached and meta.get("url") == url:
        if meta.get("etag"):
            headers["If-None-Match"] = meta["etag"]
        if meta.get("last_modified"):
            headers["If-Modified-Since"] = meta["last_modified"]
    host = httpx.URL(url).host or url
    offline_hint = (
        f"the cached catalog from {meta.get('fetched') or '?'} is kept"
        if cached
        else "check the network, a proxy (HTTPS_PROXY), or catalog_url in config.yaml"
    )
    started = False
    try:
        with (
            make_client(HttpSettings(timeout=timeout)) as client,
            open_stream(client, "GET", url, headers=headers) as answer,
        ):
            started = True
            if answer.status == 304 and cached:
                catalog = load_cached(home)
                if catalog is not None:
                    _store(home, url, cached_path(home).read_bytes(), *_validators(answer, meta))
                    return UpdateResult(False, url, catalog)
            if answer.status != 200:
                raise NeurodeskError(
                    f"could not update the catalog: HTTP {answer.status} from {host}",
                    hint=offline_hint,
                )
            body = bytearray()
            for chunk in answer.chunks():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise CatalogError(
                        f"{url}: more than {MAX_BYTES >> 20} MB, not a catalog",
                        hint="check catalog_url in config.yaml",
                    )
            etag, modified = _validators(answer, {})
    except (httpx.HTTPError, SourceError) as exc:
        what = (
            f"the catalog download from {host} broke off"
            if started
            else f"could not reach {host} for the catalog"
        )
        why = exc.message.split(": ")[-1] if isinstance(exc, SourceError) else type(exc).__name__
        raise NeurodeskError(f"{what} ({why})", hint=offline_hint) from None
    catalog = parse_bytes(bytes(body), url)
    _store(home, url, bytes(body), etag, modified)
    return UpdateResult(True, url, catalog)


def _validators(answer: object, fallback: dict[str, str]) -> tuple[str, str]:
    headers = getattr(answer, "headers", {})
    return (
        str(headers.get("ETag") or fallback.get("etag", "")),
        str(headers.get("Last-Modified") or fallback.get("last_modified", "")),
    )
