"""``neurodesk hub`` for real: JupyterHub, configurable-http-proxy, PAM, real system users.

Three users are created here (useradd, removed at the end) and log in with headless Chromium at
once; each server is the neurodesk desktop environment run as that user. The session's dcm2niix
and jupyter-neuro images (the latter as tests/integration/test_desktop.py builds it: a second
build in the same home is served by the build cache) are installed into the shared site tree by
``hub prepare``; each user runs a cell in the jupyter-neuro container kernel.

Users' servers need a Python every account can run; this machine's venv lives under /root
(0700), so ``python_for_users`` makes a venv from Debian's python3 (same 3.11 ABI) that sees the
project's venv through a .pth file: a test shortcut for what an organiser does with
``python3 -m venv /opt/neurodesk/venv && pip install neurodesk[hub]``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import neurodesk
from neurodesk.build.build import build_recipe
from neurodesk.paths import Paths
from neurodesk.recipe import find_recipe
from neurodesk.store import ImageRecord
from tests.conftest import REPO, run_cli
from tests.integration.conftest import need
from tests.integration.slurm import SlurmCluster

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "test-artifacts"
USERS = {f"ndhub{i}": f"Pass-word-{i}-{os.getpid()}" for i in (1, 2, 3)}
SYSTEM_PYTHON = Path("/usr/bin/python3")
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
KERNEL_CARD = "jupyter-neuro 0.1.0 (container)"
CELL = (
    "import os, sys\n"
    "print('IMAGE', open('/build.yaml').readline().strip())\n"
    "print('DATA', sorted(os.listdir(os.path.expanduser('~/shared-data'))))\n"
    "try:\n"
    "    open(os.path.expanduser('~/shared-data/mine.txt'), 'w')\n"
    "    print('WROTE-SHARED')\n"
    "except OSError as exc:\n"
    "    print('READ-ONLY', exc.errno)\n"
    "print('WHO', os.getuid(), sys.executable)"
)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def python_for_users() -> Iterator[Path]:
    need("useradd", "userdel", "chpasswd", "su", "runuser", "node", "npm")
    if not SYSTEM_PYTHON.is_file():
        pytest.skip("no /usr/bin/python3")
    version = sysconfig.get_python_version()
    probe = [str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info[:2])"]
    if subprocess.run(probe, capture_output=True, text=True).stdout.strip() != str(
        sys.version_info[:2]
    ):
        pytest.skip(f"/usr/bin/python3 is not Python {version} like the venv")
    root = Path("/opt") / f"nd-hub-python-{os.getpid()}"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(root)], check=True)
    site = root / "lib" / f"python{version}" / "site-packages"
    package_root = Path(neurodesk.__file__).resolve().parents[1]
    (site / "neurodesk-test.pth").write_text(
        f"{sysconfig.get_paths()['purelib']}\n{package_root}\n"
    )
    # Jupyter's data and config (JupyterLab's assets, server extensions) live in sys.prefix
    for sub in ("etc", "share"):
        (root / sub).symlink_to(Path(sys.prefix) / sub)
    yield root / "bin" / "python"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def users() -> Iterator[dict[str, str]]:
    need("useradd", "userdel", "chpasswd")
    for name in USERS:
        subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
    lines = "".join(f"{name}:{password}\n" for name, password in USERS.items())
    subprocess.run(["chpasswd"], input=lines, text=True, check=True)
    yield USERS
    for name in USERS:
        remove_user(name)


def remove_user(name: str) -> None:
    """End the user's processes (userdel refuses while any runs), then remove them and home."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True).returncode:
            break  # no process left (or no such user)
        time.sleep(0.3)
    proc = subprocess.run(["userdel", "-r", name], capture_output=True, text=True, check=False)
    assert proc.returncode in (0, 6, 12), proc.stderr  # 6: no such user; 12: mail spool


@dataclass
class Hub:
    root: Path
    url: str
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(["hub", *args, str(self.root)], self.root / "nd-home", env=self.env)

    def status(self) -> dict[str, Any]:
        proc = self.cli("status", "--json")
        assert proc.returncode == 0, proc.stderr
        return dict(json.loads(proc.stdout))


@contextlib.contextmanager
def running_hub(
    name: str,
    python: Path,
    store: Path,
    *,
    init: list[str],
    edit: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Hub]:
    """A deployment under /opt (users must reach it), prepared with the session's dcm2niix."""
    root = Path("/opt") / f"nd-hub-{name}-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    port = free_port()
    hub = Hub(root, f"http://127.0.0.1:{port}/", dict(env or {}))
    base = ["--authenticator", "pam", *(f"--user={u}" for u in USERS)]
    args = [*base, "--bind", f"127.0.0.1:{port}", "--python", str(python), *init]
    proc = run_cli(["hub", "init", str(root), *args], root / "nd-home", env=hub.env)
    assert proc.returncode == 0, proc.stderr
    try:
        if edit:
            import yaml

            data = yaml.safe_load((root / "neurodesk-hub.yaml").read_text())
            data.update(edit)
            (root / "neurodesk-hub.yaml").write_text(yaml.safe_dump(data))
        # the session's store stands in for a registry: prepare resolves the tool from it. A
        # copy, not hard links: prepare makes the site tree readable for everyone, and through
        # shared inodes that would change the session's images too (verify then fails)
        subprocess.run(["cp", "-a", str(store), str(root / "site" / "store")], check=True)
        (root / "data" / "subject-01.txt").write_text("shared\n")
        proc = hub.cli("prepare")
        assert proc.returncode == 0, proc.stderr
        started = time.monotonic()
        proc = hub.cli("start")
        assert proc.returncode == 0, proc.stderr + _log(root)
        print(f"hub {name} started in {time.monotonic() - started:.1f} s")
        yield hub
    finally:
        hub.cli("stop")
        shutil.rmtree(root, ignore_errors=True)


def _log(root: Path) -> str:
    log = root / "logs" / "jupyterhub.log"
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log.is_file() else ""


@pytest.fixture(scope="module")
def kernel_image(nd_home: Path) -> ImageRecord:
    """recipes/jupyter-neuro in the session's home (python3 + ipykernel): a container kernel."""
    started = time.monotonic()
    record = build_recipe(find_recipe("jupyter-neuro"), Paths(nd_home)).record
    print(f"jupyter-neuro built in {time.monotonic() - started:.1f} s")
    return record


@pytest.fixture(scope="module")
def hub(
    python_for_users: Path,
    users: dict[str, str],
    dcm2niix_image: ImageRecord,
    kernel_image: ImageRecord,
) -> Iterator[Hub]:
    need("bwrap")
    pytest.importorskip("jupyterhub")
    tools = [f"--tool={r.name}/{r.version}" for r in (dcm2niix_image, kernel_image)]
    with running_hub(
        "main",
        python_for_users,
        dcm2niix_image.store_root,
        init=[*tools, "--idle-timeout", "0"],
    ) as running:
        yield running


@contextlib.contextmanager
def login(hub: Hub, user: str, password: str) -> Iterator[httpx.Client]:
    """A client with the user's hub login (which also starts their server)."""
    with httpx.Client(base_url=hub.url, follow_redirects=True, timeout=120) as client:
        client.get("hub/login")
        response = client.post(
            "hub/login",
            data={"username": user, "password": password, "_xsrf": client.cookies["_xsrf"]},
        )
        assert response.status_code == 200, response.status_code
        yield client


def open_server(client: httpx.Client, user: str, timeout: float = 120) -> None:
    """Wait until the user's JupyterLab answers (the login started it); the client then holds
    the server's own OAuth cookie too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"user/{user}/lab")
        if response.status_code == 200 and response.url.path == f"/user/{user}/lab":
            return
        time.sleep(1)
    raise AssertionError(f"{user}'s server did not open: {response.status_code} {response.url}")


def as_user(user: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", user, "--", "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )


# -- the browser ---------------------------------------------------------------------------------
def _open_lab(page: Any, hub: Hub, user: str, password: str) -> None:
    """Log in through the hub's form; JupyterHub then starts the server and opens JupyterLab."""
    page.goto(f"{hub.url}hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")


def _wait_for_lab(page: Any, timeout: float = 180_000) -> None:
    """JupyterLab is up: its file browser lists the home (with the shared-data link)."""
    page.locator(".jp-DirListing-item", has_text="shared-data").wait_for(timeout=timeout)


def _run_cell(page: Any, user: str) -> str:
    _wait_for_lab(page)
    if not page.locator(".jp-Launcher").count():  # a restored workspace: open a launcher
        page.locator(".lm-TabBar-addButton:not(.lm-mod-hidden)").first.click()
    page.locator(".jp-Launcher").wait_for(timeout=30_000)
    with contextlib.suppress(Exception):  # JupyterLab's news question, when asked
        page.locator(".jp-toast-button", has_text="No").first.click(timeout=3_000)
    card = '.jp-LauncherCard[data-category="Notebook"]'
    page.locator(card, has_text=KERNEL_CARD).first.click()
    # run only once the container kernel is up: a cell run before is silently skipped
    page.wait_for_function(
        f"() => document.body.innerText.includes('{KERNEL_CARD} | Idle')", timeout=90_000
    )
    page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first.click()
    page.keyboard.insert_text(CELL)
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-OutputArea-output')]"
        ".some(e => e.innerText.includes('WHO'))",
        timeout=90_000,
    )
    page.screenshot(path=str(ARTIFACTS / f"hub-{user}-notebook.png"))
    return str(page.locator(".jp-NotebookPanel .jp-OutputArea-output").first.inner_text())


def test_three_users_log_in_at_once_and_each_runs_a_container_kernel_cell(hub: Hub) -> None:
    need("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    outputs: dict[str, str] = {}
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        pages = {}
        try:
            started = time.monotonic()
            for user, password in USERS.items():  # every login submitted before any waits
                page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
                pages[user] = page
                _open_lab(page, hub, user, password)
            for user, page in pages.items():
                outputs[user] = _run_cell(page, user)
            print(f"three users to a cell's output: {time.monotonic() - started:.1f} s")
            status = hub.status()
        except Exception as exc:
            for user, page in pages.items():
                page.screenshot(path=str(ARTIFACTS / f"hub-{user}-failure.png"))
            raise AssertionError(f"{exc}\n{_log(hub.root)}") from exc
        finally:
            browser.close()
    for user, text in outputs.items():
        assert "IMAGE name: jupyter-neuro" in text, text  # /build.yaml: inside our image
        assert "DATA ['subject-01.txt']" in text, text
        assert "READ-ONLY 30" in text and "WROTE-SHARED" not in text, text  # EROFS
        uid = subprocess.check_output(["id", "-u", user], text=True).strip()
        assert f"WHO {uid} /usr/bin/python3" in text, text  # their account, the image's python
    servers = {u["name"]: u["server"] for u in status["users"]}
    assert set(servers) == set(USERS)
    for user, server in servers.items():
        assert server and server["ready"], status
        assert server["memory_bytes"] and server["memory_bytes"] > 20 * 1024**2, server
        assert server["idle_seconds"] is not None
        uid = Path(f"/proc/{server['pid']}").stat().st_uid
        assert uid == int(subprocess.check_output(["id", "-u", user]).strip())


def test_shared_tree_and_data_are_read_only_and_homes_private(hub: Hub) -> None:
    site, data = hub.root / "site", hub.root / "data"
    proc = as_user(
        "ndhub1",
        f"""
        for target in {site}/x {site}/store/x {site}/modules/x {data}/x {data}/subject-01.txt; do
            (echo no > "$target") 2>/dev/null && echo "WROTE $target"
        done
        ls ~ndhub2 >/dev/null 2>&1 && echo READ-HOME
        cat ~ndhub2/.bashrc >/dev/null 2>&1 && echo READ-FILE
        ls {hub.root}/scratch >/dev/null 2>&1 && echo LIST-SCRATCH
        ls {hub.root}/scratch/ndhub2 >/dev/null 2>&1 && echo READ-SCRATCH
        ls {hub.root}/state >/dev/null 2>&1 && echo READ-STATE
        echo mine > {hub.root}/scratch/ndhub1/mine.txt && echo OWN-SCRATCH
        echo mine > ~/mine.txt && echo OWN-HOME
        cat {data}/subject-01.txt
        {site}/containers/dcm2niix_*/bin/dcm2niix -h | head -1
        """,
    )
    assert "WROTE" not in proc.stdout, proc.stdout
    for leak in ("READ-HOME", "READ-FILE", "LIST-SCRATCH", "READ-SCRATCH", "READ-STATE"):
        assert leak not in proc.stdout, proc.stdout
    assert "OWN-SCRATCH" in proc.stdout and "OWN-HOME" in proc.stdout, proc.stdout + proc.stderr
    assert "shared" in proc.stdout
    assert "Chris Rorden's dcm2niiX" in proc.stdout, proc.stderr  # the site's wrapper, as them


def test_one_user_cannot_reach_another_users_server(hub: Hub) -> None:
    with login(hub, "ndhub1", USERS["ndhub1"]) as client:
        open_server(client, "ndhub1")
        own = client.get("user/ndhub1/api/contents")
        assert own.status_code == 200, own.text
        for path in ("user/ndhub2/api/contents", "user/ndhub2/lab", "user/ndhub2/api/kernels"):
            response = client.get(path)
            assert response.status_code in (403, 404), (path, response.status_code)
            assert "subject-01" not in response.text
        xsrf = next(c.value for c in client.cookies.jar if c.name == "_xsrf" and "hub" in c.path)
        api = client.get("hub/api/users/ndhub2", headers={"X-XSRFToken": str(xsrf)})
        assert api.status_code in (403, 404)


def test_wrong_password_and_unknown_user_are_refused(hub: Hub) -> None:
    for user, password in (("ndhub1", "wrong-password"), ("nosuchuser", "whatever-pass")):
        client = httpx.Client(base_url=hub.url, follow_redirects=False, timeout=30)
        client.get("hub/login")
        response = client.post(
            "hub/login",
            data={"username": user, "password": password, "_xsrf": client.cookies["_xsrf"]},
        )
        assert response.status_code == 403, (user, response.status_code)
        assert "jupyterhub-session-id" not in response.headers.get("set-cookie", "")
        assert client.get("hub/api/user").status_code == 403
        assert client.get("user/ndhub1/api/contents").status_code in (302, 403)
    # and nothing at all without a login: every path ends at the login page or a 403
    bare = httpx.Client(base_url=hub.url, follow_redirects=True, timeout=30)
    for path in ("hub/home", "user/ndhub1/lab", "hub/spawn", "user/ndhub1/neurodesk/api/tools"):
        response = bare.get(path)
        assert response.status_code == 403 or response.url.path == "/hub/login", (
            path,
            response.status_code,
            response.url,
        )
        assert "jupyterlab" not in response.text.lower()


def test_idle_server_is_culled(
    python_for_users: Path, users: dict[str, str], dcm2niix_image: ImageRecord
) -> None:
    need("bwrap")
    with running_hub(
        "cull", python_for_users, dcm2niix_image.store_root, init=["--idle-timeout", "15"]
    ) as hub:
        with login(hub, "ndhub3", USERS["ndhub3"]) as client:
            open_server(client, "ndhub3")
            assert client.get("user/ndhub3/api/status").status_code == 200
        answered = time.monotonic()
        # this hub's server of ndhub3 (the module's other hub may run one for ndhub3 too)
        pids = [u["server"]["pid"] for u in hub.status()["users"] if u["server"]]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            users_now = {u["name"]: u for u in hub.status()["users"]}
            gone = not any(Path(f"/proc/{pid}").exists() for pid in pids)
            if users_now["ndhub3"]["server"] is None and gone:
                break
            time.sleep(1)
        else:
            raise AssertionError("the idle server was not culled\n" + _log(hub.root))
        print(f"culled {time.monotonic() - answered:.1f} s after the server answered")
        assert "Culling server ndhub3" in (hub.root / "logs" / "jupyterhub.log").read_text()


def test_slurm_session_runs_as_a_job_and_its_desktop_opens(
    python_for_users: Path,
    users: dict[str, str],
    dcm2niix_image: ImageRecord,
    slurm_cluster: SlurmCluster,
) -> None:
    need("bwrap", "chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    pytest.importorskip("batchspawner")
    edit = {
        "hub_connect_ip": "127.0.0.1",
        "limits": {"memory": "1G", "cpus": 1},
        "spawner": {"kind": "slurm", "slurm": {"partition": "debug", "time": "00:15:00"}},
    }
    with running_hub(
        "slurm",
        python_for_users,
        dcm2niix_image.store_root,
        init=["--idle-timeout", "0"],
        edit=edit,
        env={"SLURM_CONF": slurm_cluster.env["SLURM_CONF"]},
    ) as hub:
        ARTIFACTS.mkdir(exist_ok=True)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            try:
                _open_lab(page, hub, "ndhub2", USERS["ndhub2"])
                _wait_for_lab(page)
                page.screenshot(path=str(ARTIFACTS / "hub-slurm-lab.png"))
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "hub-slurm-failure.png"))
                queue = slurm_cluster.run("squeue", "-a", check=False).stdout
                raise AssertionError(queue + _log(hub.root)) from None
            finally:
                browser.close()
        jobs = slurm_cluster.run("squeue", "-h", "-a", "-o", "%i %u %j %T %P %l %m").stdout
        server = {u["name"]: u["server"] for u in hub.status()["users"]}["ndhub2"]
        assert server and server["job_id"], hub.status()
        line = next(x for x in jobs.splitlines() if x.split()[0] == server["job_id"])
        assert line.split()[1:] == ["ndhub2", "neurodesk-ndhub2", "RUNNING", "debug", "15:00", "1G"]
