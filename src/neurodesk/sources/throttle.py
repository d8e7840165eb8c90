"""A server that says "too many requests" (429) and when to come back (``Retry-After``).

The wait is honoured once when it is short (up to :data:`RETRY_AFTER_MAX` seconds, in the
delta-seconds form); a longer or missing one is not waited for: the caller's next mirror or
channel is tried instead, as upstream's installer would move on to its next channel.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

RETRY_AFTER_MAX = 30


def wait_retry_after(
    status: int, headers: Mapping[str, str], sleep: Callable[[float], None] = time.sleep
) -> bool:
    """Wait as a 429 asks and return True (retry once), or return False (move on)."""
    text = str(headers.get("Retry-After", "")).strip()
    if status != 429 or not text.isdigit() or int(text) > RETRY_AFTER_MAX:
        return False
    sleep(int(text))
    return True
