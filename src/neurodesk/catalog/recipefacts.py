"""What upstream's recipe says about a tool: description, citation, licence, documentation.

``neurodesk info NAME`` reads ``recipe_url`` (config.yaml; ``{name}`` is replaced by the tool's
name; default: neurocontainers' ``recipes/{name}/build.yaml``) once and keeps a copy under
``$NEURODESK_HOME/cache/upstream/recipes/``, so later calls (for a day) and offline calls use
the copy.
A recipe is untrusted text: it is parsed with ``yaml.safe_load``, size-capped, and only plain
strings are taken from it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurodesk.catalog.upstream import cache_dir

MAX_BYTES = 1 << 20
FRESH_SECONDS = 24 * 3600  # a cached recipe younger than this is used without asking again
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+\-]*$")


@dataclass(frozen=True)
class RecipeFacts:
    description: str = ""
    citation: str = ""
    licenses: list[str] = field(default_factory=list)
    documentation: str = ""
    cached: bool = False  # True when read from the cache because the URL could not be reached


def _text(value: Any, limit: int = 4000) -> str:
    return " ".join(value.split())[:limit] if isinstance(value, str) else ""


def facts_from_yaml(raw: bytes) -> RecipeFacts | None:
    import yaml

    try:
        data = yaml.safe_load(raw[:MAX_BYTES])
    except yaml.YAMLError:
        return None
    if not isinstance(data, dict):
        return None
    structured = data.get("structured_readme")
    structured = structured if isinstance(structured, dict) else {}
    licenses = []
    for item in data.get("copyright") or []:
        if isinstance(item, dict):
            name = _text(item.get("license")) or _text(item.get("name"))
            if name:
                licenses.append(name)
    description = _text(structured.get("description"))
    if not description:
        readme = _text(data.get("readme"))
        description = readme.split(". ")[0][:300] if readme else ""
    return RecipeFacts(
        description=description,
        citation=_text(structured.get("citation")),
        licenses=licenses,
        documentation=_text(structured.get("documentation"), 500),
    )


def recipe_facts(
    home: Path, name: str, url_template: str, timeout: float = 5.0
) -> RecipeFacts | None:
    """Upstream's recipe facts for ``name``, fetched or cached; None when neither can be had."""
    if not _NAME.match(name) or not url_template:
        return None
    cached = cache_dir(home) / "recipes" / f"{name}.yaml"
    try:
        fresh = time.time() - cached.stat().st_mtime < FRESH_SECONDS
    except OSError:
        fresh = False
    if fresh:
        facts = facts_from_yaml(cached.read_bytes())
        if facts is not None:
            return facts  # asked less than a day ago: no network round trip
    url = url_template.replace("{name}", name)
    raw = _download(url, timeout)
    if raw is not None:
        facts = facts_from_yaml(raw)
        if facts is not None:
            from neurodesk.store.atomic import write_text

            write_text(cached, raw.decode("utf-8", errors="replace"))
            return facts
    try:
        old = cached.read_bytes()
    except OSError:
        return None
    facts = facts_from_yaml(old)
    return None if facts is None else RecipeFacts(**{**facts.__dict__, "cached": True})


def _download(url: str, timeout: float) -> bytes | None:
    if url.startswith("file://") or "://" not in url:
        try:
            return Path(url.removeprefix("file://")).read_bytes()[:MAX_BYTES]
        except OSError:
            return None
    from neurodesk.sources.http import HttpSettings, SourceError, make_client, request

    try:
        with make_client(HttpSettings(timeout=timeout)) as client:
            answer = request(client, "GET", url, max_bytes=MAX_BYTES)
    except SourceError:
        return None
    return answer.content if answer.status == 200 else None
