"""A user's server environment (as the spawner starts it) and the memory figures of status."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from neurodesk.errors import NeurodeskError
from neurodesk.hub.singleuser import container_binds, singleuser_env, user_paths
from neurodesk.hub.spawners import DATA_ENV, SCRATCH_ENV, SITE_ENV
from neurodesk.hub.status import tree_memory


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    for name in ("site/store", "data", "scratch/alice", "home"):
        (tmp_path / name).mkdir(parents=True)
    return {
        "HOME": str(tmp_path / "home"),
        "PATH": "/usr/bin:/bin",
        SITE_ENV: str(tmp_path / "site"),
        DATA_ENV: str(tmp_path / "data"),
        SCRATCH_ENV: str(tmp_path / "scratch" / "alice"),
        "JUPYTER_TOKEN": "must-not-survive-into-the-server",
        "NEURODESK_BINDPATH": "/srv/extra:/extra:ro",
    }


def test_user_home_links_into_the_shared_trees(environ: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    paths = user_paths(home, environ)
    assert paths.home == home / ".neurodesk-hub"
    assert paths.store.resolve() == tmp_path / "site" / "store"
    assert paths.installs.resolve() == tmp_path / "site"
    assert (home / "shared-data").resolve() == tmp_path / "data"
    assert (home / "scratch").resolve() == tmp_path / "scratch" / "alice"
    assert oct(paths.home.stat().st_mode & 0o777) == "0o700"
    # a user's own file named like a link is kept; the tool links are always ours
    (home / "shared-data").unlink()
    (home / "shared-data").mkdir()
    user_paths(home, environ)
    assert (home / "shared-data").is_dir() and not (home / "shared-data").is_symlink()
    (paths.home / "store").unlink()
    (paths.home / "store").symlink_to("/elsewhere")
    user_paths(home, environ)
    assert paths.store.resolve() == tmp_path / "site" / "store"
    (paths.home / "store").unlink()
    (paths.home / "store").mkdir()
    with pytest.raises(NeurodeskError, match="is not a link"):
        user_paths(home, environ)


def test_server_environment_has_no_token_and_binds_data_read_only(
    environ: dict[str, str], tmp_path: Path
) -> None:
    paths = user_paths(tmp_path / "home", environ)
    env = singleuser_env(paths, environ)
    assert "JUPYTER_TOKEN" not in env  # the hub's OAuth login is the only way in
    assert env["NEURODESK_HOME"] == str(paths.home)
    assert str(paths.home / "desktop" / "config") in env["JUPYTER_CONFIG_PATH"]
    binds = env["NEURODESK_BINDPATH"].split(",")
    data, scratch = environ[DATA_ENV], environ[SCRATCH_ENV]
    assert binds == [f"{data}:{data}:ro", f"{scratch}:{scratch}", "/srv/extra:/extra:ro"]


def test_binds_without_hub_variables_keep_the_users_own() -> None:
    assert container_binds({"NEURODESK_BINDPATH": "/a"}) == "/a"
    assert container_binds({}) == ""


def test_tree_memory_counts_children() -> None:
    code = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        "time.sleep(30)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        alone = 0
        while time.monotonic() < deadline:
            children = subprocess.run(
                ["pgrep", "-P", str(parent.pid)], capture_output=True, text=True
            ).stdout.split()
            if children:
                alone = tree_memory(int(children[0])) or 0
                break
            time.sleep(0.1)
        total = tree_memory(parent.pid)
        assert total is not None and alone > 0
        assert total > alone  # parent + child
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()
    assert tree_memory(parent.pid) is None
