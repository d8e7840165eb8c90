"""The desktop's decisions without a server: tools, kernels, environment, token, loading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from neurodesk.desktop.actions import find_tool, gui_argv, load_tool
from neurodesk.desktop.catalog import by_category, list_tools
from neurodesk.desktop.environment import (
    TOKEN_ENV,
    DesktopDirs,
    DesktopError,
    choose_token,
    is_loopback,
    server_env,
    write_config,
)
from neurodesk.desktop.kernels import find_kernel_python, kernel_name, write_kernelspecs
from neurodesk.errors import NotFoundError
from neurodesk.install.installer import install_image
from neurodesk.paths import Paths
from neurodesk.store import ImageRecord
from tests.conftest import assert_one_line_error, run_cli


def add_image(
    home: Path,
    name: str,
    version: str,
    *,
    builddate: str = "20260101",
    kernel: bool = False,
    categories: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> ImageRecord:
    """A store entry as the store writes it: a ref and an unpacked root filesystem."""
    digest = "sha256:" + f"{name}{version}{builddate}".encode().hex().ljust(64, "0")[:64]
    record = ImageRecord(name, version, builddate, digest, home / "store", env or {})
    rootfs = record.rootfs
    (rootfs / "usr/bin").mkdir(parents=True)
    if kernel:
        (rootfs / "usr/bin/python3.11").write_text("")
        (rootfs / "usr/bin/python3").symlink_to("/usr/bin/python3.11")  # absolute, as in Debian
        site = rootfs / "usr/lib/python3/dist-packages/ipykernel"
        site.mkdir(parents=True)
        (site / "__init__.py").write_text("")
    if categories is not None:
        (rootfs / "build.yaml").write_text(json.dumps({"name": name, "categories": categories}))
    ref = home / "store" / "refs" / name / version / f"{builddate}.json"
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(json.dumps(record.to_json()))
    return record


def add_recipe(recipes: Path, name: str, version: str, categories: list[str]) -> None:
    (recipes / name).mkdir(parents=True)
    body = {"name": name, "version": version, "categories": categories}
    (recipes / name / "build.yaml").write_text(json.dumps(body))


def test_kernel_needs_python3_and_ipykernel(home: Path) -> None:
    with_kernel = add_image(home, "pyneuro", "1.0", kernel=True)
    without = add_image(home, "dcm2niix", "1.0")
    assert find_kernel_python(with_kernel) == "/usr/bin/python3"
    assert find_kernel_python(without) is None
    # python3 present but no ipykernel: no kernel
    bare = add_image(home, "bare", "1.0")
    (bare.rootfs / "usr/bin/python3").write_text("")
    assert find_kernel_python(bare) is None


def test_kernel_python_follows_the_image_path(home: Path) -> None:
    record = add_image(home, "conda", "2.0", env={"PATH": "/opt/conda/bin:/usr/bin"})
    (record.rootfs / "opt/conda/bin").mkdir(parents=True)
    (record.rootfs / "opt/conda/bin/python3").write_text("")
    site = record.rootfs / "opt/conda/lib/python3.12/site-packages/ipykernel"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("")
    assert find_kernel_python(record) == "/opt/conda/bin/python3"


def test_kernel_names_are_valid_jupyter_names(home: Path) -> None:
    record = add_image(home, "fsl", "6.0.7+cuda~rc1")
    assert kernel_name(record) == "nd-fsl-6.0.7-cuda-rc1"


def test_kernelspecs_one_per_kernel_image_and_stale_ones_removed(home: Path) -> None:
    paths = Paths(home)
    kernels = home / "kernels"
    add_image(home, "pyneuro", "1.0", kernel=True, builddate="20260101")
    add_image(home, "pyneuro", "1.0", kernel=True, builddate="20260202")
    add_image(home, "dcm2niix", "1.0")
    foreign = kernels / "nd-someone-elses"
    foreign.mkdir(parents=True)
    (foreign / "kernel.json").write_text(json.dumps({"argv": ["x"], "display_name": "x"}))
    stale = kernels / "nd-old-1"
    stale.mkdir()
    (stale / "kernel.json").write_text(json.dumps({"metadata": {"neurodesk": {}}}))

    written = write_kernelspecs(paths, kernels)

    assert written == {"pyneuro_1.0_20260202": "nd-pyneuro-1.0"}
    spec = json.loads((kernels / "nd-pyneuro-1.0" / "kernel.json").read_text())
    assert spec["display_name"] == "pyneuro 1.0 (container)"
    argv = spec["argv"]
    assert argv[1:6] == ["-m", "neurodesk", "exec", "pyneuro/1.0/20260202", "--"]
    assert argv[6:] == ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert spec["env"]["NEURODESK_HOME"] == str(home)
    assert not stale.exists(), "a kernelspec of ours for a removed image must go"
    assert foreign.exists(), "kernelspecs we did not write are left alone"


def test_tools_merge_recipes_images_and_installs(home: Path, tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    add_recipe(recipes, "dcm2niix", "1.0", ["data organisation"])
    add_recipe(recipes, "mrtrix3", "3.0.4", ["diffusion imaging", "visualization"])
    (recipes / "broken").mkdir()
    (recipes / "broken" / "build.yaml").write_text("name: [unclosed")
    add_image(home, "dcm2niix", "1.0", categories=["data organisation"])
    add_image(home, "pyneuro", "1.0", kernel=True)  # no build.yaml in the image

    tools = {(t.name, t.version): t for t in list_tools(Paths(home), recipes)}

    assert tools[("mrtrix3", "3.0.4")].state == "available"
    assert tools[("dcm2niix", "1.0")].state == "built"
    assert tools[("dcm2niix", "1.0")].image_id == "dcm2niix_1.0_20260101"
    assert tools[("pyneuro", "1.0")].categories == ["other"]
    groups = by_category(list(tools.values()))
    assert [t.name for t in groups["visualization"]] == ["mrtrix3"]
    assert [t.name for t in groups["diffusion imaging"]] == ["mrtrix3"]
    assert list(groups) == sorted(groups)


def test_find_tool_unknown_is_a_not_found_error(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEURODESK_RECIPES", str(tmp_path))
    with pytest.raises(NotFoundError):
        find_tool(Paths(home), "no-such-tool", "")


def test_token_is_random_and_never_empty() -> None:
    first, second = choose_token({}), choose_token({})
    assert first != second and len(first) >= 32
    assert choose_token({TOKEN_ENV: "x" * 20}) == "x" * 20
    for bad in ("", "short", " " + "x" * 20):
        with pytest.raises(DesktopError):
            choose_token({TOKEN_ENV: bad})


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert not is_loopback("example.org")


def test_server_environment_puts_ours_first(home: Path) -> None:
    paths = Paths(home)
    dirs = DesktopDirs.of(paths)
    environ = {
        "PATH": "/usr/bin:/bin",
        "JUPYTER_PATH": "/site/jupyter",
        "MODULEPATH": "/etc/modules",
        TOKEN_ENV: "t" * 20,
    }
    env = server_env(paths, dirs, "secret-token", environ)
    assert env["JUPYTER_PATH"].split(os.pathsep) == [str(dirs.jupyter_path), "/site/jupyter"]
    assert env["JUPYTER_CONFIG_PATH"].split(os.pathsep)[0] == str(dirs.config)
    assert env["MODULEPATH"].split(":") == [str(home / "installs" / "modules"), "/etc/modules"]
    assert env["PATH"].endswith("/usr/bin:/bin")
    assert env["JUPYTER_TOKEN"] == "secret-token"
    assert TOKEN_ENV not in env
    assert env["NEURODESK_HOME"] == str(home)


def test_config_enables_the_extension_and_a_terminal_shell(home: Path) -> None:
    dirs = DesktopDirs.of(Paths(home))
    write_config(Paths(home), dirs)
    enabled = json.loads((dirs.config / "jupyter_server_config.d" / "neurodesk.json").read_text())
    assert enabled["ServerApp"]["jpserver_extensions"] == {"neurodesk.desktop.extension": True}
    shell = json.loads((dirs.config / "jupyter_server_config.json").read_text())
    assert shell["ServerApp"]["terminado_settings"]["shell_command"][:3] == [
        "bash",
        "--rcfile",
        str(dirs.bashrc),
    ]
    rc = dirs.bashrc.read_text()
    # the user's rc and Lmod first, then our PATH/MODULEPATH win
    assert rc.index(".bashrc") < rc.index("lmod") < rc.index('export PATH="$nd_path"')
    for written in dirs.root.rglob("*"):
        if written.is_file():
            assert "password" not in written.read_text().lower()


def test_load_puts_one_version_first(home: Path) -> None:
    bins = {}
    for version in ("1.0", "2.0"):
        record = add_image(home, "tool", version, env={"DEPLOY_BINS": "tool"})
        (record.rootfs / "usr/bin/tool").write_text("#!/bin/sh\n")
        (record.rootfs / "usr/bin/tool").chmod(0o755)
        bins[version] = str(install_image(record, Paths(home).installs).bin_dir)
    v1, v2 = bins["1.0"], bins["2.0"]
    environ = {"PATH": f"{v2}:/usr/bin"}
    load_tool(Paths(home), "tool", "1.0", environ)
    assert environ["PATH"] == f"{v1}:/usr/bin"
    with pytest.raises(NotFoundError):
        load_tool(Paths(home), "tool", "3.0", environ)


def test_cli_refuses_a_short_token(home: Path) -> None:
    proc = run_cli(["desktop", "--port", "0"], home, env={TOKEN_ENV: "abc"})
    assert_one_line_error(proc, TOKEN_ENV)


def test_gui_apps_run_through_neurodesk_exec_with_the_cookie_dir(home: Path) -> None:
    recipe_data = {
        "name": "mrtrix3",
        "categories": ["visualization"],
        "gui_apps": [{"name": "mrviewGUI", "exec": "mrview -mode 2"}, {"name": "broken"}],
    }
    record = add_image(home, "mrtrix3", "3.0.4", env={"DEPLOY_BINS": "mrview"})
    (record.rootfs / "build.yaml").write_text(json.dumps(recipe_data))
    (record.rootfs / "usr/bin/mrview").write_text("#!/bin/sh\n")
    (record.rootfs / "usr/bin/mrview").chmod(0o755)
    tool = find_tool(Paths(home), "mrtrix3", "3.0.4")
    assert tool.gui_apps == [{"name": "mrviewGUI", "exec": "mrview -mode 2"}]
    with pytest.raises(NotFoundError, match="install the tool first"):
        gui_argv(tool, "mrviewGUI", "/vnc")  # built, not installed
    install_image(record, Paths(home).installs)
    tool = find_tool(Paths(home), "mrtrix3", "3.0.4")
    argv = gui_argv(tool, "mrviewGUI", "/vnc")
    assert argv[1:] == [
        "-m",
        "neurodesk",
        "exec",
        "--bind",
        "/vnc",
        "mrtrix3/3.0.4/20260101",
        "--",
        "mrview",
        "-mode",
        "2",
    ]
    with pytest.raises(NotFoundError, match="mrviewGUI"):
        gui_argv(tool, "nope", "/vnc")
