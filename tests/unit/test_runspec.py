"""The RunSpec rules: binds deduplicated, the working directory always usable, clean env."""

from __future__ import annotations

from pathlib import Path

from neurodesk.runtime.spec import Bind, build_runspec, dedupe_binds
from neurodesk.store import ImageRecord


def record(tmp_path: Path, env: dict[str, str] | None = None) -> ImageRecord:
    return ImageRecord("tool", "1.0", "20260101", "sha256:" + "0" * 64, tmp_path, env or {})


def test_bind_parse_forms() -> None:
    assert Bind.parse("/data") == Bind("/data", "/data")
    assert Bind.parse("/data:/mnt") == Bind("/data", "/mnt")
    assert Bind.parse("/data:/mnt:ro") == Bind("/data", "/mnt", readonly=True)


def test_dedupe_drops_repeats_and_binds_inside_other_binds() -> None:
    binds = [
        Bind("/home/u", "/home/u"),
        Bind("/home/u/proj", "/home/u/proj"),
        Bind("/home/u", "/home/u"),
    ]
    assert dedupe_binds(binds) == [Bind("/home/u", "/home/u")]


def test_bindpath_variables_are_all_honoured_and_deduplicated(tmp_path: Path) -> None:
    environ = {
        "HOME": "/home/u",
        "NEURODESK_BINDPATH": "/data,/scratch:/scratch",
        "APPTAINER_BINDPATH": "/data",
        "SINGULARITY_BINDPATH": "/refs:/refs:ro",
    }
    spec = build_runspec(record(tmp_path), ["x"], cwd="/home/u/work", environ=environ)
    dsts = [b.dst for b in spec.binds]
    assert dsts.count("/data") == 1
    assert "/scratch" in dsts and "/refs" in dsts
    assert Bind("/refs", "/refs", readonly=True) in spec.binds
    assert "/home/u/work" not in dsts  # inside $HOME, which is bound already


def test_cwd_outside_home_is_bound_but_never_over_system_dirs(tmp_path: Path) -> None:
    environ = {"HOME": "/home/u"}
    spec = build_runspec(record(tmp_path), ["x"], cwd="/work/project", environ=environ)
    assert Bind("/work/project", "/work/project") in spec.binds
    image = record(tmp_path)
    (image.rootfs / "usr" / "share").mkdir(parents=True)
    spec = build_runspec(image, ["x"], cwd="/usr/share", environ=environ)
    assert all(b.dst != "/usr/share" for b in spec.binds)
    # a system path the image lacks hides nothing of it: bound, so the command can start there
    spec = build_runspec(image, ["x"], cwd="/usr/local/project", environ=environ)
    assert Bind("/usr/local/project", "/usr/local/project") in spec.binds


def test_environment_is_clean_and_deploy_env_applied(tmp_path: Path) -> None:
    image_env = {"PATH": "/opt/tool/bin:/usr/bin", "DEPLOY_ENV_FSLDIR": "/opt/fsl"}
    environ = {"HOME": "/h", "SECRET_TOKEN": "x", "DISPLAY": ":1", "LC_ALL": "C", "TERM": "xterm"}
    spec = build_runspec(record(tmp_path, image_env), ["x"], cwd="/h", environ=environ)
    assert "SECRET_TOKEN" not in spec.env
    assert spec.env["FSLDIR"] == "/opt/fsl"
    assert spec.env["PATH"] == "/opt/tool/bin:/usr/bin"
    assert spec.env["DISPLAY"] == ":1" and spec.env["LC_ALL"] == "C" and spec.env["TERM"] == "xterm"
    assert spec.env["HOME"] == "/h"
