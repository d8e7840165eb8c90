"""Lmod for the desktop's terminals and host kernels, and the tools' kernel icons."""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurodesk.desktop import lmod
from neurodesk.desktop.environment import DesktopDirs, server_env, write_config
from neurodesk.desktop.hostkernel import write_host_kernelspec
from neurodesk.desktop.icons import initials, tool_svg
from neurodesk.desktop.kernels import write_kernelspecs
from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from tests.unit.test_desktop import add_image

needs_lmod = pytest.mark.skipif(not lmod.LMOD_CMD.is_file(), reason="Lmod is not installed")


@pytest.fixture
def modules(tmp_path: Path) -> Iterator[Path]:
    """A MODULEPATH with tool/1.0 (puts /opt/tool/bin on PATH); the environment is restored."""
    root = tmp_path / "modules"
    (root / "tool").mkdir(parents=True)
    (root / "tool" / "1.0.lua").write_text('prepend_path("PATH", "/opt/tool/bin")\n')
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith(("_LM", "__LM", "LOADEDMODULES"))]:
        del os.environ[key]
    os.environ["MODULEPATH"] = str(root)
    yield root
    os.environ.clear()
    os.environ.update(saved)


@needs_lmod
def test_module_load_and_unload_change_this_process(modules: Path) -> None:
    lmod.module("load", "tool")
    assert os.environ["PATH"].split(":")[0] == "/opt/tool/bin"
    assert os.environ["LOADEDMODULES"] == "tool/1.0"
    # a child process (what `!cmd` and subprocess.run start) sees it
    seen = subprocess.run(["sh", "-c", "echo $PATH"], capture_output=True, text=True, check=True)
    assert seen.stdout.startswith("/opt/tool/bin:")
    lmod.module("unload", "tool")
    assert "/opt/tool/bin" not in os.environ["PATH"].split(":")
    assert "tool/1.0" in lmod.module("avail")  # printed and returned: no pager waits


@needs_lmod
def test_module_load_of_an_unknown_tool_is_one_clear_error(modules: Path) -> None:
    path = os.environ["PATH"]
    with pytest.raises(NeurodeskError, match="unknown"):
        lmod.module("load", "nosuchtool")
    assert os.environ["PATH"] == path


@needs_lmod
def test_ipython_magic_loads_a_module(modules: Path) -> None:
    shell = pytest.importorskip("IPython.core.interactiveshell").InteractiveShell.instance()
    shell.extension_manager.load_extension("neurodesk.desktop.lmod")
    shell.run_line_magic("module", "load tool")
    assert os.environ["PATH"].split(":")[0] == "/opt/tool/bin"
    shell.run_line_magic("ml", "unload tool")
    assert "/opt/tool/bin" not in os.environ["PATH"]


def test_no_pager_for_anything_the_server_starts(home: Path) -> None:
    paths = Paths(home)
    env = server_env(paths, DesktopDirs.of(paths), "t" * 20, {"PATH": "/bin", "LMOD_PAGER": "less"})
    assert env["LMOD_PAGER"] == "none"
    write_config(paths, DesktopDirs.of(paths))
    assert 'LMOD_PAGER="${LMOD_PAGER:-none}"' in DesktopDirs.of(paths).bashrc.read_text()


def test_host_kernel_loads_the_module_magic(tmp_path: Path) -> None:
    name = write_host_kernelspec(tmp_path)
    spec = json.loads((tmp_path / name / "kernel.json").read_text())
    assert name == "python3" and "--IPKernelApp.extensions=neurodesk.desktop.lmod" in spec["argv"]


def test_container_kernels_carry_the_tools_icon(home: Path) -> None:
    add_image(home, "jupyter-neuro", "0.1.0", kernel=True)
    kernels = home / "kernels"
    write_kernelspecs(Paths(home), kernels)
    logo = kernels / "nd-jupyter-neuro-0.1.0" / "logo-svg.svg"
    assert ET.fromstring(logo.read_text()).find("{http://www.w3.org/2000/svg}text").text == "JN"


@pytest.mark.parametrize(
    ("name", "letters"),
    [("mrtrix3", "MR"), ("dcm2niix", "DC"), ("bids-validator", "BV"), ("x", "X")],
)
def test_initials(name: str, letters: str) -> None:
    assert initials(name) == letters


def test_icon_text_is_escaped() -> None:
    svg = tool_svg("<&>")
    ET.fromstring(svg)  # well-formed: the name cannot inject markup
    assert "<&>" not in svg
