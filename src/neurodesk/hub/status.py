"""``hub status``: users, running servers, memory per server, idle times (from the REST API).

``hub start`` gives the ``neurodesk-status`` service a token (``state/status-token``, root only)
with read scopes and ``admin:server_state``: the server's state holds the pid of a local server
(or the job id of a SLURM one), whose processes' resident memory we add up from ``/proc``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from neurodesk.errors import NeurodeskError
from neurodesk.hub.layout import HubDir
from neurodesk.hub.process import public_url, running_pid
from neurodesk.hub.settings import load_settings


@dataclass
class ServerStatus:
    ready: bool
    pending: str | None
    started: str | None
    idle_seconds: float | None
    memory_bytes: int | None
    pid: int | None = None
    job_id: str | None = None


@dataclass
class UserStatus:
    name: str
    admin: bool
    last_activity: str | None
    server: ServerStatus | None


@dataclass
class HubStatus:
    directory: str
    running: bool
    url: str
    pid: int | None
    users: list[UserStatus] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_memory(pid: int, children: dict[int, list[int]] | None = None) -> int | None:
    """Resident memory of ``pid`` and all its descendants, in bytes (None: not running)."""
    if not Path(f"/proc/{pid}").exists():
        return None
    children = _children() if children is None else children
    total, todo, seen = 0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        total += _rss(current)
        todo.extend(children.get(current, []))
    return total


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _api(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise NeurodeskError(
            f"the hub refused the status request (HTTP {exc.code})",
            hint="restart the hub so it loads the status token: neurodesk hub stop/start",
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise NeurodeskError(f"cannot reach the hub at {url}: {exc}") from None


def _server(model: dict[str, Any], now: datetime, children: dict[int, list[int]]) -> ServerStatus:
    state = model.get("state") or {}
    pid = state.get("pid") if isinstance(state.get("pid"), int) else None
    job = state.get("job_id") or None
    last = _parse_time(model.get("last_activity"))
    return ServerStatus(
        ready=bool(model.get("ready")),
        pending=model.get("pending"),
        started=model.get("started"),
        idle_seconds=round((now - last).total_seconds(), 1) if last else None,
        memory_bytes=tree_memory(pid, children) if pid else None,
        pid=pid,
        job_id=str(job) if job else None,
    )


def hub_status(hub: HubDir) -> HubStatus:
    settings = load_settings(hub.root)
    url = public_url(settings)
    pid = running_pid(hub)
    status = HubStatus(str(hub.root), pid is not None, url, pid)
    if pid is None:
        return status
    try:
        token = hub.status_token.read_text().strip()
    except OSError as exc:
        raise NeurodeskError(
            f"cannot read {hub.status_token}: {exc.strerror}",
            hint="run 'neurodesk hub status' as the user who started the hub (root)",
        ) from None
    users = _api(url + "hub/api/users?include_stopped_servers=false", token)
    now = datetime.now(UTC)
    children = _children() if os.path.isdir("/proc") else {}
    for user in sorted(users, key=lambda u: str(u.get("name"))):
        server_model = (user.get("servers") or {}).get("")
        status.users.append(
            UserStatus(
                name=str(user.get("name")),
                admin=bool(user.get("admin")),
                last_activity=user.get("last_activity"),
                server=_server(server_model, now, children) if server_model else None,
            )
        )
    return status
