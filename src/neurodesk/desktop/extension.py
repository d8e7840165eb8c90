"""The Jupyter server extension behind the desktop panel.

Routes (under the server's base URL), every one behind Jupyter's authentication — pages
redirect to the login page, the API and websockets answer 403 without the token or its cookie:

    neurodesk/                       the tools panel (static/panel.html)
    neurodesk/static/...             its script and style
    neurodesk/api/tools              GET: one entry per tool (versions, states, README,
                                     citation, licence, sources), the categories, the desktop
    neurodesk/api/install            POST {name, version}: build or fetch if needed, install; a job
    neurodesk/api/uninstall          POST {name, version}: remove the install; a job
    neurodesk/api/jobs/<id>          GET: the job's state and progress
    neurodesk/api/load               POST {name, version}: first on PATH of new terminals
    neurodesk/api/unload             POST {name}: off the PATH again
    neurodesk/api/icon/<name>.svg    GET: the tool's badge
    neurodesk/api/desktop            GET: the VNC session; POST: start it; DELETE: stop it
    neurodesk/api/gui                POST {name, version, app}: a tool's GUI app on the desktop
    neurodesk/desktop/novnc/...      Debian's noVNC client
    neurodesk/desktop/websockify     websocket relaying to the session's VNC socket
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, AuthenticatedFileHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.serverapp import ServerApp
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import IOStream, StreamClosedError
from tornado.websocket import WebSocketHandler

from neurodesk.catalog.collect import build_catalog
from neurodesk.desktop import session, vnc
from neurodesk.desktop.actions import (
    Jobs,
    find_tool,
    gui_argv,
    load_tool,
    loaded_dirs,
    unload_tool,
)
from neurodesk.desktop.catalog import panel_tools
from neurodesk.desktop.environment import DesktopDirs, modules_dir
from neurodesk.desktop.icons import tool_svg
from neurodesk.desktop.kernels import write_kernelspecs
from neurodesk.desktop.labels import category_label
from neurodesk.errors import NeurodeskError, NotFoundError
from neurodesk.paths import Paths

STATIC = Path(__file__).parent / "static"
AUTH_RESOURCE = "neurodesk"


@dataclass
class DesktopState:
    paths: Paths
    dirs: DesktopDirs
    jobs: Jobs
    base_url: str = "/"
    session: vnc.VncSession | None = None
    kernels: dict[str, str] = field(default_factory=dict)
    gui_processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


def _state(handler: JupyterHandler) -> DesktopState:
    state: DesktopState = handler.settings["neurodesk"]
    return state


class PanelHandler(JupyterHandler):
    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    def get(self, slash: str) -> None:
        if not slash:  # the page's links are relative to /neurodesk/
            return self.redirect(self.request.path + "/")
        self.xsrf_token  # noqa: B018 -- sets the _xsrf cookie the panel's POSTs echo back
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish((STATIC / "panel.html").read_bytes())


class TrustedFiles(AuthenticatedFileHandler):
    """Our own and Debian's files: served without the sandbox Jupyter puts on user files."""

    auth_resource = AUTH_RESOURCE

    def check_xsrf_cookie(self) -> None:
        """Reading needs the token or cookie, like every route; no Referer check on top.

        Jupyter's file handler also refuses a cookie-authenticated GET without a same-origin
        Referer, which keeps other sites from including a user's files (XSSI). These files are
        code everyone has (our panel, Debian's noVNC), not user data, and the noVNC page opened
        directly (bookmark, typed URL, new window) has no Referer: it was refused with 403
        "Blocking request from unknown origin". Writes still need the XSRF token.
        """
        if self.request.method not in ("GET", "HEAD"):
            super().check_xsrf_cookie()

    @property
    def content_security_policy(self) -> str:
        return JupyterHandler.content_security_policy.fget(self)  # type: ignore[attr-defined,no-any-return]


class _Api(APIHandler):
    auth_resource = AUTH_RESOURCE

    def body(self) -> dict[str, str]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "the body must be JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise web.HTTPError(400, 'the body must be {"name": ..., "version": ...}')
        return {
            "name": data["name"],
            "version": str(data.get("version") or ""),
            "app": str(data.get("app") or ""),
        }

    def fail(self, exc: NeurodeskError) -> None:
        self.set_status(404 if isinstance(exc, NotFoundError) else 400)
        self.finish({"error": str(exc)})


class ToolsHandler(_Api):
    @web.authenticated
    @authorized
    def get(self) -> None:
        state = _state(self)
        state.kernels = write_kernelspecs(state.paths, state.dirs.kernels)
        catalog = build_catalog(state.paths)
        tools = panel_tools(
            state.paths, catalog.tools, kernels=state.kernels, loaded=set(loaded_dirs(os.environ))
        )
        categories = sorted({c for t in tools for c in t.categories}, key=str.lower)
        self.finish(
            {
                "tools": [t.to_json() for t in tools],
                "categories": [{"id": c, "label": category_label(c)} for c in categories],
                "unreachable": catalog.unreachable,
                "modulepath": str(modules_dir(state.paths)),
                "desktop": {"available": vnc.available(), **_session_json(state)},
            }
        )


class IconHandler(JupyterHandler):
    """A tool's badge (an image: not JSON, so not an APIHandler)."""

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    def get(self, name: str) -> None:
        self.set_header("Content-Type", "image/svg+xml")
        self.finish(tool_svg(name))


class InstallHandler(_Api):
    action = "install"

    @web.authenticated
    @authorized
    def post(self) -> None:
        wanted = self.body()
        try:
            job = _state(self).jobs.start(wanted["name"], wanted["version"], self.action)
        except NeurodeskError as exc:
            return self.fail(exc)
        self.set_status(202)
        self.finish(job.to_json())


class UninstallHandler(InstallHandler):
    action = "uninstall"


class JobHandler(_Api):
    @web.authenticated
    @authorized
    def get(self, job_id: str) -> None:
        try:
            self.finish(_state(self).jobs.get(job_id).to_json())
        except NeurodeskError as exc:
            self.fail(exc)


class LoadHandler(_Api):
    @web.authenticated
    @authorized
    def post(self) -> None:
        wanted = self.body()
        try:
            tool = load_tool(_state(self).paths, wanted["name"], wanted["version"], os.environ)
        except NeurodeskError as exc:
            return self.fail(exc)
        self.finish({"loaded": f"{tool.name}/{tool.version}", "bin_dir": tool.bin_dir})


class UnloadHandler(_Api):
    @web.authenticated
    @authorized
    def post(self) -> None:
        wanted = self.body()
        removed = unload_tool(_state(self).paths, wanted["name"], os.environ)
        self.finish({"unloaded": wanted["name"], "bin_dirs": removed})


def _session_json(state: DesktopState) -> dict[str, Any]:
    session = state.session
    if session is None or not session.running():
        return {"running": False}
    return {
        "running": True,
        "display": session.display_name,
        "url": "desktop/novnc/vnc.html?autoconnect=true&resize=remote&path="
        + url_path_join(state.base_url, "neurodesk/desktop/websockify").lstrip("/"),
    }


class DesktopHandler(_Api):
    @web.authenticated
    @authorized
    def get(self) -> None:
        self.finish(_session_json(_state(self)))

    @web.authenticated
    @authorized
    def post(self) -> None:
        state = _state(self)
        try:
            _ensure_session(state)
        except NeurodeskError as exc:
            return self.fail(exc)
        self.finish(_session_json(state))

    @web.authenticated
    @authorized
    def delete(self) -> None:
        state = _state(self)
        if state.session is not None:
            state.session.stop()  # its X clients (GUI apps) end with it
            state.session = None
            state.gui_processes = [p for p in state.gui_processes if p.poll() is None]
            os.environ.pop("DISPLAY", None)
            os.environ.pop("XAUTHORITY", None)
        self.finish({"running": False})


class GuiHandler(_Api):
    """POST {name, version, app}: start the desktop if needed, then the GUI app on it."""

    @web.authenticated
    @authorized
    def post(self) -> None:
        wanted = self.body()
        app = wanted["app"]
        state = _state(self)
        try:
            tool = find_tool(state.paths, wanted["name"], wanted["version"])
            argv = gui_argv(tool, app, str(state.dirs.vnc))
            session = _ensure_session(state)
        except NeurodeskError as exc:
            return self.fail(exc)
        log = (state.dirs.vnc / f"{tool.name}-{app}.log").open("ab")
        env = dict(os.environ, DISPLAY=session.display_name, XAUTHORITY=str(session.xauthority))
        process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        state.gui_processes.append(process)
        self.finish({**_session_json(state), "pid": process.pid, "argv": argv})


def _ensure_session(state: DesktopState) -> vnc.VncSession:
    if state.session is None or not state.session.running():
        state.session = vnc.start_session(state.dirs.vnc)
        env = session.session_env(
            os.environ,
            state.session.display_name,
            state.session.xauthority,
            [state.paths.installs],
            state.dirs.vnc,
            state.dirs.bashrc,
        )
        log = state.dirs.vnc / f"session-{state.session.display}.log"
        state.session.children = session.start(
            state.dirs.vnc / "session", env, state.dirs.bashrc, log
        )
        # GUI tools started from terminals opened from now on draw on this desktop.
        os.environ["DISPLAY"] = state.session.display_name
        os.environ["XAUTHORITY"] = str(state.session.xauthority)
    return state.session


class VncSocket(WebSocketMixin, JupyterHandler, WebSocketHandler):
    """Relays noVNC's websocket to the session's Unix socket (what websockify does)."""

    auth_resource = AUTH_RESOURCE
    _vnc: IOStream | None = None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        user = self.current_user
        if not user:
            raise web.HTTPError(403)
        allowed = self.authorizer.is_authorized(self, user, "execute", self.auth_resource)
        if not await ensure_async(allowed):
            raise web.HTTPError(403)
        session = _state(self).session
        if session is None or not session.running():
            raise web.HTTPError(404, "no desktop session; start one from the panel")
        await WebSocketHandler.get(self, *args, **kwargs)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return "binary" if "binary" in subprotocols else None

    async def open(self, *args: str, **kwargs: str) -> None:
        super().open(*args, **kwargs)
        session = _state(self).session
        assert session is not None  # checked in get()
        stream = IOStream(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        try:
            await stream.connect(str(session.socket))
        except (OSError, StreamClosedError):
            self.close(1011, "cannot reach the VNC session")
            return
        self._vnc = stream
        self._pump_task = asyncio.ensure_future(self._pump(stream))

    async def _pump(self, stream: IOStream) -> None:
        try:
            while True:
                data = await stream.read_bytes(65536, partial=True)
                await self.write_message(data, binary=True)
        except Exception:  # the VNC server or the browser went away: end both sides
            self.close()

    async def on_message(self, message: str | bytes) -> None:
        if self._vnc is not None and not self._vnc.closed():
            await self._vnc.write(message if isinstance(message, bytes) else message.encode())

    def on_close(self) -> None:
        if self._vnc is not None:
            self._vnc.close()


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "neurodesk.desktop.extension"}]


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    paths = Paths.from_env()
    dirs = DesktopDirs.of(paths)
    state = DesktopState(paths, dirs, Jobs(paths, dirs), base_url=serverapp.base_url)
    web_app = serverapp.web_app
    web_app.settings["neurodesk"] = state
    base = url_path_join(serverapp.base_url, "neurodesk")
    handlers: list[tuple[str, type, dict[str, Any]] | tuple[str, type]] = [
        (base + "(/?)", PanelHandler),
        (base + "/static/(.*)", TrustedFiles, {"path": str(STATIC)}),
        (base + "/api/tools", ToolsHandler),
        (base + "/api/install", InstallHandler),
        (base + "/api/uninstall", UninstallHandler),
        (base + "/api/unload", UnloadHandler),
        (base + r"/api/icon/([^/]+)\.svg", IconHandler),
        (base + r"/api/jobs/(\d+)", JobHandler),
        (base + "/api/load", LoadHandler),
        (base + "/api/desktop", DesktopHandler),
        (base + "/api/gui", GuiHandler),
        (base + "/desktop/websockify", VncSocket),
    ]
    novnc = vnc.novnc_dir()
    if novnc is not None:
        handlers.append((base + "/desktop/novnc/(.*)", TrustedFiles, {"path": str(novnc)}))
    web_app.add_handlers(".*$", handlers)  # type: ignore[no-untyped-call]
    serverapp.log.info("neurodesk desktop panel at %s/", base)


def _unload_jupyter_server_extension(serverapp: ServerApp) -> None:
    state: DesktopState | None = serverapp.web_app.settings.get("neurodesk")
    if state is not None and state.session is not None:
        state.session.stop()
