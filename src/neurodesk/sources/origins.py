"""Where each image came from, and whether its publisher vouched for its bytes.

``$NEURODESK_HOME/origins/<id>.json``: ``{"channel", "url", "sha256", "verified"}`` where
``verified`` is "publisher" (the bytes matched a digest the publisher published, e.g. in a
registry manifest) or "unverified-by-publisher" (only our own sha256 of what arrived is known).
``info`` shows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from neurodesk.paths import Paths

PUBLISHER = "publisher"
UNVERIFIED = "unverified-by-publisher"


def origin_path(paths: Paths, image_id: str) -> Path:
    return paths.home / "origins" / f"{image_id}.json"


def record_origin(
    paths: Paths, image_id: str, channel: str, url: str, sha256: str, verified: str
) -> None:
    from neurodesk.store.atomic import write_text

    data = {"channel": channel, "url": url, "sha256": sha256, "verified": verified}
    write_text(origin_path(paths, image_id), json.dumps(data, indent=2))


def read_origin(paths: Paths, image_id: str) -> dict[str, Any]:
    try:
        data = json.loads(origin_path(paths, image_id).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
