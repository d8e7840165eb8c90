"""``neurodesk desktop`` for real: JupyterLab, the panel, container kernels, terminals, VNC.

One server for the module (started through the CLI, as a user would), the jupyter-neuro image
built once; the browser test drives Debian's Chromium with Playwright and keeps screenshots in
test-artifacts/.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import json
import os
import re
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from neurodesk.build.build import build_recipe
from neurodesk.desktop.xmenu import read_menu
from neurodesk.paths import Paths
from neurodesk.recipe import find_recipe
from neurodesk.store import ImageRecord
from tests.conftest import REPO, assert_one_line_error, run_cli
from tests.integration.conftest import need

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "test-artifacts"
HOST_NIBABEL = "5.4.2"  # the venv's; the image's (Debian bookworm) is 5.0.x
KERNEL = "nd-jupyter-neuro-0.1.0"
GUI_RECIPE = Path(__file__).parent / "recipes" / "x11-apps" / "build.yaml"


@dataclass
class Server:
    base: str
    token: str
    process: subprocess.Popen[str]
    home: Path

    def request(
        self, path: str, method: str = "GET", body: Any = None, token: str | None = "default"
    ) -> tuple[int, Any, dict[str, str]]:
        """HTTP without following redirects; ``token=None`` sends no credentials at all."""
        headers = {"Content-Type": "application/json"}
        tok = self.token if token == "default" else token
        if tok:
            headers["Authorization"] = f"token {tok}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=30) as resp:
                raw = resp.read()
                status, hdrs = resp.status, dict(resp.headers)
        except urllib.error.HTTPError as exc:
            raw, status, hdrs = exc.read(), exc.code, dict(exc.headers)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        return status, payload, hdrs

    def ws_url(self, path: str) -> str:
        return self.base.replace("http://", "ws://", 1) + path


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@pytest.fixture(scope="module")
def kernel_image(nd_home: Path) -> ImageRecord:
    """recipes/jupyter-neuro built into the session's home (python3 + ipykernel + nibabel)."""
    started = time.monotonic()
    record = build_recipe(find_recipe("jupyter-neuro"), Paths(nd_home)).record
    print(f"jupyter-neuro built in {time.monotonic() - started:.1f} s")
    return record


@pytest.fixture(scope="module")
def gui_image(nd_home: Path) -> ImageRecord:
    """tests/integration/recipes/x11-apps (xeyes, xclock): a small GUI tool, marked draft."""
    started = time.monotonic()
    record = build_recipe(GUI_RECIPE, Paths(nd_home)).record
    print(f"x11-apps built in {time.monotonic() - started:.1f} s")
    return record


@pytest.fixture(scope="module")
def server(
    nd_home: Path,
    kernel_image: ImageRecord,
    dcm2niix_image: ImageRecord,
    gui_image: ImageRecord,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    need("bwrap")
    pytest.importorskip("jupyterlab")
    root = tmp_path_factory.mktemp("notebooks")
    env = dict(os.environ, NEURODESK_HOME=str(nd_home), NEURODESK_RECIPES=str(REPO / "recipes"))
    env.pop("NEURODESK_DESKTOP_TOKEN", None)
    env["LMOD_PAGER"] = "less"  # a user's pager choice: terminals and kernels must not stall in it
    process = subprocess.Popen(
        [sys.executable, "-m", "neurodesk", "desktop", "--port", "0", "--root-dir", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=root,
    )
    assert process.stdout is not None
    started = time.monotonic()
    url = _read_url(process, timeout=90)
    print(f"neurodesk desktop answered in {time.monotonic() - started:.1f} s")
    match = re.match(r"(http://[^/]+/)lab\?token=(\S+)$", url)
    assert match, url
    yield Server(match.group(1), match.group(2), process, nd_home)
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _read_url(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        if not selector.select(timeout=1):
            continue
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("neurodesk desktop: "):
            return line.split(": ", 1)[1].strip()
    process.kill()
    raise AssertionError("neurodesk desktop did not print its URL:\n" + "".join(seen))


# -- the browser --------------------------------------------------------------------------------
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CELL = (
    "import sys, nibabel\n"
    "print('NIBABEL', nibabel.__version__, sys.executable)\n"
    "print(open('/etc/os-release').read())\n"
    "print('IMAGE', open('/build.yaml').readline())"
)


def test_browser_panel_and_container_kernel(server: Server, dcm2niix_image: ImageRecord) -> None:
    need("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        try:
            # reset: a fresh workspace, not whatever an earlier run left open
            page.goto(f"{server.base}lab?reset&token={server.token}")
            launcher = page.locator(".jp-Launcher")
            launcher.wait_for(timeout=60_000)
            _dismiss_news_question(page)

            # The launcher card opens the tools panel: JupyterLab's left sidebar.
            launcher.get_by_text("Neurodesk tools", exact=True).click()
            panel = page.frame_locator("#neurodesk-tools iframe")
            panel.locator("li.tool").first.wait_for(timeout=30_000)
            for name in ("jupyter-neuro", "dcm2niix", "mrtrix3"):  # built, built, a recipe
                panel.locator(f'li.tool[data-name="{name}"]').wait_for(timeout=10_000)
            labels = panel.locator("#filters button").all_inner_texts()
            assert "Programming" in labels and "Data organisation" in labels, labels
            assert not any(label.islower() for label in labels), labels
            # one entry per tool; the draft test image only when asked for
            assert panel.locator('li.tool[data-name="dcm2niix"]').count() == 1
            assert panel.locator('li.tool[data-name="x11-apps"]').count() == 0
            # search as you type: by description word and by command
            panel.locator("#search").fill("dicom")
            shown = panel.locator("li.tool").evaluate_all("e => e.map(x => x.dataset.name)")
            assert "dcm2niix" in shown and "jupyter-neuro" not in shown, shown
            panel.locator("#search").fill("")
            panel.locator('#filters button[data-category="programming"]').click()
            shown = panel.locator("li.tool").evaluate_all("e => e.map(x => x.dataset.name)")
            assert "jupyter-neuro" in shown and "dcm2niix" not in shown, shown
            panel.locator('li.tool[data-name="jupyter-neuro"] .summary').click()
            kernel_row = panel.locator('tr[data-tool="jupyter-neuro/0.1.0"]')
            assert "kernel" in kernel_row.inner_text()
            details = panel.locator('li.tool[data-name="jupyter-neuro"] .details').inner_text()
            assert "BSD-3-Clause" in details and "recipes" in details and "README" in details
            page.screenshot(path=str(ARTIFACTS / "desktop-panel.png"))
            panel.locator('#filters button[data-category="programming"]').click()  # filter off
            # the same panel as its own page (same session cookie)
            whole = context.new_page()
            whole.goto(f"{server.base}neurodesk/")
            whole.locator('li.tool[data-name="jupyter-neuro"]').wait_for(timeout=30_000)
            whole.screenshot(path=str(ARTIFACTS / "desktop-panel-full.png"), full_page=True)
            whole.close()

            # A notebook on the container kernel, from the launcher card of that kernel (the
            # launcher stays open beside the sidebar).
            notebook_card = page.locator(
                '.jp-Launcher:visible .jp-LauncherCard[data-category="Notebook"]',
                has_text="jupyter-neuro 0.1.0 (container)",
            )
            notebook_card.click()
            page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first.wait_for(timeout=30_000)
            # Run only once the container kernel is up: a cell run before is silently skipped.
            page.wait_for_function(
                "() => document.body.innerText.includes('jupyter-neuro 0.1.0 (container) | Idle')",
                timeout=90_000,
            )
            page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first.click()
            page.keyboard.insert_text(CELL)
            page.keyboard.press("Shift+Enter")
            output = page.locator(".jp-NotebookPanel .jp-OutputArea-output").first
            output.wait_for(timeout=90_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-OutputArea-output')]"
                ".some(e => e.innerText.includes('IMAGE'))",
                timeout=90_000,
            )
            text = output.inner_text()
            page.screenshot(path=str(ARTIFACTS / "desktop-notebook.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "desktop-failure.png"))
            raise
        finally:
            browser.close()
    version = re.search(r"NIBABEL (\S+) (\S+)", text)
    assert version, text
    assert version.group(1).startswith("5.0.") and version.group(1) != HOST_NIBABEL, text
    assert version.group(2) == "/usr/bin/python3", text  # the image's interpreter, not the venv's
    assert "VERSION_CODENAME=bookworm" in text and "ID=debian" in text, text
    assert "IMAGE name: jupyter-neuro" in text, text  # /build.yaml exists only in our images


def _dismiss_news_question(page: Any) -> None:
    """JupyterLab asks once whether to fetch its news; answer no (it would cover the output)."""
    button = page.locator(".jp-toast-button", has_text="No")
    # not asked when an earlier answer is remembered: then the click times out, and that is fine
    with contextlib.suppress(Exception):
        button.first.click(timeout=5_000)


# -- security -----------------------------------------------------------------------------------
HTTP_ENDPOINTS = [
    ("GET", "lab"),
    ("GET", "lab/tree"),
    ("GET", "neurodesk"),
    ("GET", "neurodesk/"),
    ("GET", "neurodesk/static/panel.js"),
    ("GET", "neurodesk/desktop/novnc/vnc.html"),
    ("GET", "neurodesk/api/tools"),
    ("POST", "neurodesk/api/install"),
    ("GET", "neurodesk/api/jobs/1"),
    ("POST", "neurodesk/api/load"),
    ("POST", "neurodesk/api/unload"),
    ("POST", "neurodesk/api/uninstall"),
    ("GET", "neurodesk/api/icon/dcm2niix.svg"),
    ("GET", "neurodesk/api/desktop"),
    ("POST", "neurodesk/api/desktop"),
    ("DELETE", "neurodesk/api/desktop"),
    ("POST", "neurodesk/api/gui"),
    ("GET", "api/kernels"),
    ("POST", "api/kernels"),
    ("GET", "api/kernelspecs"),
    ("GET", "api/sessions"),
    ("GET", "api/contents"),
    ("GET", "api/terminals"),
    ("POST", "api/terminals"),
    ("GET", "files/anything.txt"),
    ("GET", "lab/api/settings"),
    ("GET", "api/me"),
]


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789abcdef"])
def test_http_endpoints_refuse_without_the_token(server: Server, token: str | None) -> None:
    for method, path in HTTP_ENDPOINTS:
        body = {"name": "dcm2niix"} if method == "POST" else None
        status, _, headers = server.request(path, method, body, token=token)
        if status in (301, 302):  # pages send the browser to the login form, nothing else
            assert "/login" in headers.get("Location", ""), (method, path, headers)
        else:
            assert status in (401, 403), (method, path, status)
    # and with the token they answer (so the refusals above are about the token)
    assert server.request("neurodesk/api/tools")[0] == 200
    assert server.request("api/kernelspecs")[0] == 200


async def _ws_status(url: str, token: str | None) -> int:
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        request = HTTPRequest(url, headers=headers, connect_timeout=10)
        conn = await websocket_connect(request)
    except HTTPClientError as exc:
        return exc.code
    conn.close()
    return 101


def test_websockets_refuse_without_the_token(server: Server) -> None:
    status, kernel, _ = server.request("api/kernels", "POST", {"name": KERNEL})
    assert status == 201, kernel
    status, terminal, _ = server.request("api/terminals", "POST", {})
    assert status == 200, terminal
    status, session, _ = server.request("neurodesk/api/desktop", "POST", {})
    assert status == 200 and session["running"], session
    sockets = [
        f"api/kernels/{kernel['id']}/channels",
        f"terminals/websocket/{terminal['name']}",
        "neurodesk/desktop/websockify",
    ]
    try:
        for path in sockets:
            url = server.ws_url(path)
            assert asyncio.run(_ws_status(url, None)) in (401, 403), path
            assert asyncio.run(_ws_status(url, "wrong-token-0123456789abcdef")) in (401, 403)
            assert asyncio.run(_ws_status(url, server.token)) == 101, path
    finally:
        server.request(f"api/kernels/{kernel['id']}", "DELETE")
        server.request(f"api/terminals/{terminal['name']}", "DELETE")
        server.request("neurodesk/api/desktop", "DELETE")


def test_no_secret_is_written_where_others_can_read_it(server: Server) -> None:
    desktop = server.home / "desktop"
    for path in desktop.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert server.token not in text, path
            assert "password" not in text.lower(), path
    log = server.home / "logs" / "desktop.log"
    assert log.stat().st_mode & 0o077 == 0, "the server log shows the token: owner only"
    cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
    assert server.token.encode() not in cmdline


# -- panel actions, terminals, the VNC desktop ---------------------------------------------------
async def _terminal_run(server: Server, name: str, command: str, until: str) -> str:
    request = HTTPRequest(
        server.ws_url(f"terminals/websocket/{name}"),
        headers={"Authorization": f"token {server.token}"},
    )
    conn = await websocket_connect(request)
    out = ""
    try:
        await conn.write_message(json.dumps(["stdin", command + "\r"]))
        deadline = time.monotonic() + 60
        while until not in out and time.monotonic() < deadline:
            message = await asyncio.wait_for(conn.read_message(), 60)
            if message is None:
                break
            kind, *rest = json.loads(message)
            if kind == "stdout":
                out += rest[0]
    finally:
        conn.close()
    return out


def _job(server: Server, action: str, name: str, version: str) -> dict[str, Any]:
    status, job, _ = server.request(
        f"neurodesk/api/{action}", "POST", {"name": name, "version": version}
    )
    assert status == 202, job
    deadline = time.monotonic() + 180
    while job["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
        job = server.request(f"neurodesk/api/jobs/{job['id']}")[1]
    assert job["state"] == "done", job
    return dict(job)


def _version(server: Server, name: str, version: str) -> dict[str, Any]:
    tools = server.request("neurodesk/api/tools")[1]["tools"]
    tool = next(t for t in tools if t["name"] == name)
    return dict(next(v for v in tool["versions"] if v["version"] == version))


def test_install_from_the_panel_then_a_terminal_runs_it_by_name(
    server: Server, dcm2niix_image: ImageRecord
) -> None:
    _job(server, "install", "dcm2niix", dcm2niix_image.version)
    row = _version(server, "dcm2niix", dcm2niix_image.version)
    assert row["state"] == "installed" and row["loaded"] and "dcm2niix" in row["commands"]

    status, terminal, _ = server.request("api/terminals", "POST", {})
    assert status == 200, terminal
    try:
        command = (
            'echo "MP=$MODULEPATH"; command -v dcm2niix; dcm2niix -h | head -n 3; '
            'module load dcm2niix && echo "LOADED=$LOADEDMODULES"; echo END-$((6*7))'
        )
        out = asyncio.run(_terminal_run(server, terminal["name"], command, "END-42"))
    finally:
        server.request(f"api/terminals/{terminal['name']}", "DELETE")
    assert f"MP={server.home / 'installs' / 'modules'}" in out, out
    assert f"{row['bin_dir']}/dcm2niix" in out, out  # found by name, through our wrapper
    assert "Chris Rorden" in out, out  # dcm2niix's banner, from the container
    assert f"LOADED=dcm2niix/{dcm2niix_image.version}" in out, out  # Lmod finds our module


def test_unknown_tool_install_is_a_clean_404(server: Server) -> None:
    status, body, _ = server.request("neurodesk/api/install", "POST", {"name": "no-such-tool"})
    assert status == 404 and "no-such-tool" in body["error"]
    status, body, _ = server.request("neurodesk/api/install", "POST", "not a mapping")
    assert status == 400
    app = {"name": "dcm2niix", "app": "dcm2niixGUI"}
    status, body, _ = server.request("neurodesk/api/gui", "POST", app)
    assert status == 404 and "no installed GUI app" in body["error"], body


async def _rfb_greeting(url: str, token: str) -> bytes:
    request = HTTPRequest(url, headers={"Authorization": f"token {token}"})
    conn = await websocket_connect(request, subprotocols=["binary"])
    try:
        message = await asyncio.wait_for(conn.read_message(), 10)
    finally:
        conn.close()
    assert isinstance(message, bytes)
    return message


def test_vnc_desktop_starts_and_novnc_is_served_behind_auth(server: Server) -> None:
    need("Xvnc", "xauth")
    status, session, _ = server.request("neurodesk/api/desktop", "POST", {})
    assert status == 200 and session["running"], session
    try:
        assert re.fullmatch(r":\d+", session["display"]), session
        status, page, _ = server.request("neurodesk/" + session["url"].split("?")[0])
        assert status == 200 and "noVNC" in page
        greeting = asyncio.run(
            _rfb_greeting(server.ws_url("neurodesk/desktop/websockify"), server.token)
        )
        assert greeting.startswith(b"RFB 003.008"), greeting
    finally:
        server.request("neurodesk/api/desktop", "DELETE")
    assert server.request("neurodesk/api/desktop")[1] == {"running": False}


def test_kernel_via_rest_reports_the_container(server: Server) -> None:
    """The same container kernel without a browser: the REST API and the channels websocket."""
    status, kernel, _ = server.request("api/kernels", "POST", {"name": KERNEL})
    assert status == 201, kernel
    try:
        text = asyncio.run(_execute(server, kernel["id"], CELL))
    finally:
        server.request(f"api/kernels/{kernel['id']}", "DELETE")
    assert "VERSION_CODENAME=bookworm" in text and "NIBABEL 5.0." in text, text


def test_container_kernel_can_be_interrupted(server: Server) -> None:
    """Interrupt (SIGINT to the kernel's process group) reaches Python inside the container."""
    status, kernel, _ = server.request("api/kernels", "POST", {"name": KERNEL})
    assert status == 201, kernel
    try:
        code = "import time\ntime.sleep(60)"
        started = time.monotonic()
        text = asyncio.run(_execute(server, kernel["id"], code, interrupt_after=3.0))
        assert "KeyboardInterrupt" in text, text
        assert time.monotonic() - started < 30
        assert "still alive" in asyncio.run(_execute(server, kernel["id"], "print('still alive')"))
    finally:
        server.request(f"api/kernels/{kernel['id']}", "DELETE")


async def _execute(
    server: Server, kernel_id: str, code: str, interrupt_after: float | None = None
) -> str:
    request = HTTPRequest(
        server.ws_url(f"api/kernels/{kernel_id}/channels"),
        headers={"Authorization": f"token {server.token}"},
    )
    conn = await websocket_connect(request)
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "username": "test",
        "session": uuid.uuid4().hex,
        "msg_type": "execute_request",
        "version": "5.3",
    }
    content = {"code": code, "silent": False}
    message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
    await conn.write_message(json.dumps({**message, "channel": "shell"}))
    # the interrupt goes out ``interrupt_after`` seconds after the kernel starts running the
    # cell (not after the request: a kernel still starting up under load is not yet in it)
    loop = asyncio.get_running_loop()
    path = f"api/kernels/{kernel_id}/interrupt"
    out = []
    try:
        while True:
            raw = await asyncio.wait_for(conn.read_message(), 90)
            assert raw is not None, "the kernel websocket closed"
            reply = json.loads(raw)
            if reply["parent_header"].get("msg_id") != msg_id:
                continue
            if reply["msg_type"] == "stream":
                out.append(reply["content"]["text"])
            elif reply["msg_type"] == "error":
                out.append("\n".join(reply["content"]["traceback"]))
            elif reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle":
                return "".join(out)
            elif reply["msg_type"] == "status" and interrupt_after is not None:
                loop.call_later(interrupt_after, lambda: server.request(path, "POST", {}))
                interrupt_after = None
    finally:
        conn.close()


# An X11 client handshake, run inside the container: proves a GUI tool there can draw on the
# desktop with the session's cookie, and that without the cookie the X server refuses.
X11_HANDSHAKE = r"""
import os, socket, struct, sys
def cookie(path):
    data = open(path, "rb").read()
    while data:
        fields = []
        data = data[2:]  # family
        for _ in range(4):
            (n,) = struct.unpack(">H", data[:2]); fields.append(data[2:2 + n]); data = data[2 + n:]
        if fields[2] == b"MIT-MAGIC-COOKIE-1":
            return fields[3]
def handshake(secret):
    s = socket.socket(socket.AF_UNIX)
    s.connect("/tmp/.X11-unix/X" + os.environ["DISPLAY"].lstrip(":"))
    name = b"MIT-MAGIC-COOKIE-1" if secret else b""
    pad = lambda b: b + b"\0" * (-len(b) % 4)
    head = struct.pack("<BxHHHHxx", 0x6C, 11, 0, len(name), len(secret))
    s.sendall(head + pad(name) + pad(secret))
    return s.recv(1)[0]
print("WITH", handshake(cookie(os.environ["XAUTHORITY"])), "WITHOUT", handshake(b""))
"""


def test_a_gui_client_in_a_container_reaches_the_desktop_only_with_the_cookie(
    server: Server, kernel_image: ImageRecord
) -> None:
    need("Xvnc", "xauth")
    status, session, _ = server.request("neurodesk/api/desktop", "POST", {})
    assert status == 200 and session["running"], session
    vnc_dir = server.home / "desktop" / "vnc"
    try:
        env = dict(
            os.environ,
            NEURODESK_HOME=str(server.home),
            DISPLAY=session["display"],
            XAUTHORITY=str(vnc_dir / "Xauthority"),
        )
        argv = ["exec", "--bind", str(vnc_dir), "jupyter-neuro", "--"]
        proc = subprocess.run(
            [sys.executable, "-m", "neurodesk", *argv, "python3", "-c", X11_HANDSHAKE],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.request("neurodesk/api/desktop", "DELETE")
    # X11 setup reply: 1 = success, 0 = failed
    assert proc.stdout.strip() == "WITH 1 WITHOUT 0", proc.stdout + proc.stderr


def test_refuses_to_run_when_a_jupyter_config_switches_authentication_off(
    nd_home: Path, tmp_path: Path
) -> None:
    """A user's Jupyter config with an empty token would open the server to anyone: refuse."""
    pytest.importorskip("jupyterlab")
    config = tmp_path / "jupyter-config"
    config.mkdir()
    unsafe = {"IdentityProvider": {"token": ""}, "ServerApp": {"password": ""}}
    (config / "jupyter_server_config.json").write_text(json.dumps(unsafe))
    env = {"JUPYTER_CONFIG_DIR": str(config)}
    proc = run_cli(["desktop", "--port", "0"], nd_home, env=env, cwd=tmp_path, timeout=120)
    assert_one_line_error(proc, "without the token")
    assert "Traceback" not in proc.stdout


# -- terminals and host kernels: Lmod -------------------------------------------------------------
def test_terminal_module_avail_prints_instead_of_paging_and_load_stays_in_that_terminal(
    server: Server, dcm2niix_image: ImageRecord
) -> None:
    """The server runs with LMOD_PAGER=less (fixture): a terminal must still not stall in it."""
    _job(server, "install", "dcm2niix", dcm2niix_image.version)
    first = server.request("api/terminals", "POST", {})[1]
    second = server.request("api/terminals", "POST", {})[1]
    try:
        out = asyncio.run(
            _terminal_run(
                server,
                first["name"],
                "module avail 2>&1 | cat >/dev/null; module avail; echo PAGER=$LMOD_PAGER; "
                'module load dcm2niix; echo "LOADED=$LOADEDMODULES"; echo DONE-$((6*7))',
                "DONE-42",
            )
        )
        other = asyncio.run(
            _terminal_run(server, second["name"], 'echo "OTHER=[$LOADEDMODULES]-$((6*7))"', "]-42")
        )
    finally:
        for terminal in (first, second):
            server.request(f"api/terminals/{terminal['name']}", "DELETE")
    assert f"dcm2niix/{dcm2niix_image.version}" in out and "PAGER=none" in out, out
    assert "DONE-42" in out, out  # module avail returned: no pager waited for a key
    assert f"LOADED=dcm2niix/{dcm2niix_image.version}" in out, out
    assert "OTHER=[]-42" in other, other  # the other terminal did not load it


def test_host_kernel_can_module_load_a_tool(server: Server, dcm2niix_image: ImageRecord) -> None:
    _job(server, "install", "dcm2niix", dcm2niix_image.version)
    server.request("neurodesk/api/unload", "POST", {"name": "dcm2niix"})
    status, kernel, _ = server.request("api/kernels", "POST", {"name": "python3"})
    assert status == 201, kernel
    code = (
        "import os, shutil, subprocess\n"
        "print('BEFORE', shutil.which('dcm2niix'))\n"
        "%module load dcm2niix\n"
        "print('AFTER', shutil.which('dcm2niix'), os.environ['LOADEDMODULES'])\n"
        "print(subprocess.run(['dcm2niix', '-h'], capture_output=True, text=True).stdout[:80])"
    )
    try:
        text = asyncio.run(_execute(server, kernel["id"], code))
    finally:
        server.request(f"api/kernels/{kernel['id']}", "DELETE")
    installs = str(server.home / "installs")
    before = re.search(r"BEFORE (\S+)", text)
    assert before and not before.group(1).startswith(installs), text  # None, or the host's
    assert re.search(rf"AFTER {re.escape(installs)}/containers/\S+/bin/dcm2niix dcm2niix/", text)
    assert "Chris Rorden" in text, text  # run from the container through the wrapper


# -- the noVNC page opened directly ---------------------------------------------------------------
def test_novnc_page_opened_directly_with_the_cookie_is_served(server: Server) -> None:
    """A bookmark or a typed URL has the session cookie but no Referer: no 403."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    with opener.open(f"{server.base}lab?token={server.token}", timeout=30) as resp:
        assert resp.status == 200
    assert any(c.name.startswith("username-") for c in jar)
    for path in ("neurodesk/desktop/novnc/vnc.html", "neurodesk/static/panel.js"):
        with opener.open(server.base + path, timeout=30) as resp:  # cookie, no Referer
            assert resp.status == 200, path
    # without the cookie it is still refused, and a write without the XSRF token too
    assert server.request("neurodesk/desktop/novnc/vnc.html", token=None)[0] in (302, 401, 403)
    request = urllib.request.Request(
        server.base + "neurodesk/api/desktop", data=b"{}", method="POST"
    )
    try:
        opener.open(request, timeout=30)
        raise AssertionError("a POST with only the cookie must be refused")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403


# -- the desktop in the browser: menu, a GUI app, the panel's install/load/unload ---------------
BACKGROUND = (0x36, 0x50, 0x6B)
COVERAGE_JS = """(canvas, [r, g, b]) => {
  const ctx = canvas.getContext('2d');
  const h = canvas.height - 40;  // above the panel
  const data = ctx.getImageData(0, 0, canvas.width, h).data;
  let other = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) > 30) other++;
  }
  return other / (canvas.width * h);
}"""


def _windows(server: Server, display: str) -> str:
    env = dict(os.environ, XAUTHORITY=str(server.home / "desktop" / "vnc" / "Xauthority"))
    proc = subprocess.run(
        ["xwininfo", "-root", "-tree", "-display", display],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=10,
    )
    return proc.stdout


def _root_width(server: Server, display: str) -> int:
    env = dict(os.environ, XAUTHORITY=str(server.home / "desktop" / "vnc" / "Xauthority"))
    out = subprocess.run(
        ["xwininfo", "-root", "-display", display],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=10,
    ).stdout
    found = re.search(r"Width: (\d+)", out)
    return int(found.group(1)) if found else 0


def _point_and_click(page: Any, x: float, y: float) -> None:
    """Move there first and let the menu see it: jgmenu selects by pointer motion."""
    page.mouse.move(x - 20, y, steps=4)
    page.mouse.move(x, y, steps=4)
    time.sleep(0.6)
    page.mouse.click(x, y)


def _click_panel_button(page: Any, frame: Any, x: float) -> None:
    box = frame.bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + box["height"] - 17)


def test_browser_desktop_menu_gui_app_and_panel_actions(
    server: Server, gui_image: ImageRecord
) -> None:
    need("chromium", "openbox", "tint2", "jgmenu", "xwininfo")
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    tool = f"x11-apps/{gui_image.version}"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        try:
            page.goto(f"{server.base}lab?reset&token={server.token}")
            launcher = page.locator(".jp-Launcher")
            launcher.wait_for(timeout=60_000)
            _dismiss_news_question(page)

            # The Desktop card starts the session and opens it in a tab.
            launcher.locator(".jp-LauncherCard", has_text="Desktop").first.click()
            frame_el = page.locator("#neurodesk-desktop iframe")
            frame_el.wait_for(timeout=30_000)
            desktop = page.frame_locator("#neurodesk-desktop iframe")
            desktop.locator("canvas").wait_for(timeout=30_000)
            display = server.request("neurodesk/api/desktop")[1]["display"]
            deadline = time.monotonic() + 30
            while "tint2" not in _windows(server, display) and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(3)  # the panel redraws once after the browser resizes the screen
            canvas = desktop.locator("canvas")
            blank = canvas.evaluate(COVERAGE_JS, list(BACKGROUND))
            page.screenshot(path=str(ARTIFACTS / "desktop-blank.png"))
            assert blank < 0.01, blank

            # The panel (sidebar): show test images, find the GUI tool, install, load, unload.
            page.locator('.jp-SideBar [data-id="neurodesk-tools"]').first.click()
            panel = page.frame_locator("#neurodesk-tools iframe")
            panel.locator("li.tool").first.wait_for(timeout=30_000)
            panel.locator("#show-drafts").check()
            panel.locator("#search").fill("xeyes")  # a command of the tool
            panel.locator('li.tool[data-name="x11-apps"] .summary').click()
            row = panel.locator(f'tr[data-tool="{tool}"]')
            row.locator('button[data-action="install"]').click()
            row.locator('button[data-action="uninstall"]').wait_for(timeout=180_000)
            row.locator('button[data-action="unload"]').wait_for(timeout=10_000)  # loaded
            row.locator('button[data-action="unload"]').click()
            row.locator('button[data-action="load"]').wait_for(timeout=10_000)
            assert not _version(server, "x11-apps", gui_image.version)["loaded"]
            row.locator('button[data-action="load"]').click()
            row.locator('button[data-action="unload"]').wait_for(timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "desktop-panel-installed.png"))

            # The application menu: categories, then the tool's GUI app. jgmenu (menurc of
            # neurodesk.desktop.session) stacks 26+3 px items bottom-up from above the panel,
            # a submenu beside its parent with the same bottom line.
            folders = read_menu(server.home / "installs")
            titles = [f.title for f in folders]
            assert "Visualization" in titles, titles
            index = titles.index("Visualization")
            entries = [e.name for e in folders[index].entries]
            box = frame_el.bounding_box()
            x0, bottom = box["x"] + 60, box["y"] + box["height"] - 34 - 22

            def item_y(from_bottom: int) -> float:
                return bottom - 29 * from_bottom

            started = False
            for _attempt in range(3):
                _click_panel_button(page, frame_el, 60)  # "Applications"
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    if canvas.evaluate(COVERAGE_JS, list(BACKGROUND)) > blank + 0.005:
                        break
                    time.sleep(0.3)
                time.sleep(0.5)
                page.screenshot(path=str(ARTIFACTS / "desktop-menu.png"))
                _point_and_click(page, x0 + 60, item_y(len(titles) - 1 - index))  # Visualization
                time.sleep(1.0)
                page.screenshot(path=str(ARTIFACTS / "desktop-menu-category.png"))
                xeyes = entries.index(f"xeyes {gui_image.version}")
                _point_and_click(page, x0 + 240 + 60, item_y(len(entries) - 1 - xeyes))
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not started:
                    started = '"xeyes"' in _windows(server, display)
                    time.sleep(0.5)
                if started:
                    break
                page.keyboard.press("Escape")
            assert started, _windows(server, display)
            time.sleep(2)
            with_app = canvas.evaluate(COVERAGE_JS, list(BACKGROUND))
            page.screenshot(path=str(ARTIFACTS / "desktop-gui-app.png"))
            assert with_app > blank + 0.02, (blank, with_app)  # a window, not a blank screen

            # A GUI app from the panel's button lands on the same desktop.
            row.locator('button[data-action="gui"]', has_text="xclock").click()
            deadline = time.monotonic() + 60
            while '"xclock"' not in _windows(server, display) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert '"xclock"' in _windows(server, display), _windows(server, display)

            # Resize: the X screen follows the browser tab.
            width_before = _root_width(server, display)
            page.set_viewport_size({"width": 1100, "height": 760})
            deadline = time.monotonic() + 30
            while _root_width(server, display) == width_before and time.monotonic() < deadline:
                time.sleep(0.5)
            assert _root_width(server, display) < width_before, width_before
            time.sleep(2)
            page.screenshot(path=str(ARTIFACTS / "desktop-resized.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "desktop-failure.png"))
            raise
        finally:
            browser.close()
            server.request("neurodesk/api/desktop", "DELETE")
    # the panel's uninstall takes it out of the desktop's menu
    _job(server, "uninstall", "x11-apps", gui_image.version)
    assert "Visualization" not in [f.title for f in read_menu(server.home / "installs")]


def test_clipboard_goes_both_ways_between_the_browser_and_the_desktop(server: Server) -> None:
    """noVNC's clipboard panel ↔ the X CLIPBOARD selection of the session (Xvnc does it)."""
    need("chromium", "xclip")
    sync_api = pytest.importorskip("playwright.sync_api")
    status, session, _ = server.request("neurodesk/api/desktop", "POST", {})
    assert status == 200 and session["running"], session
    env = dict(
        os.environ,
        DISPLAY=session["display"],
        XAUTHORITY=str(server.home / "desktop" / "vnc" / "Xauthority"),
    )
    from_x, from_browser = f"from-x-{uuid.uuid4().hex[:8]}", f"from-web-{uuid.uuid4().hex[:8]}"
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = browser.new_context(viewport={"width": 1024, "height": 700}).new_page()
            try:
                page.goto(f"{server.base}lab?token={server.token}")  # the session cookie
                page.goto(f"{server.base}neurodesk/{session['url']}")
                page.locator("canvas").wait_for(timeout=30_000)
                page.wait_for_function(
                    "() => document.documentElement.classList.contains('noVNC_connected')",
                    timeout=30_000,
                )
                time.sleep(1)
                # X → browser
                subprocess.run(
                    ["xclip", "-selection", "clipboard"],
                    input=from_x,
                    text=True,
                    env=env,
                    check=True,
                    timeout=10,
                )
                page.wait_for_function(
                    f"() => document.getElementById('noVNC_clipboard_text').value === '{from_x}'",
                    timeout=20_000,
                )
                # browser → X
                page.evaluate(
                    """(text) => {
                      const area = document.getElementById('noVNC_clipboard_text');
                      area.value = text;
                      area.dispatchEvent(new Event('change'));
                    }""",
                    from_browser,
                )
                deadline = time.monotonic() + 20
                seen = ""
                while time.monotonic() < deadline:
                    seen = subprocess.run(
                        ["xclip", "-o", "-selection", "clipboard"],
                        capture_output=True,
                        text=True,
                        env=env,
                        check=False,
                        timeout=10,
                    ).stdout
                    if seen == from_browser:
                        break
                    time.sleep(0.5)
                assert seen == from_browser, seen
            finally:
                browser.close()
    finally:
        server.request("neurodesk/api/desktop", "DELETE")
