"""The installed wrapper (POSIX sh) and the RunSpec decide alike: the same bwrap command line.

For each call (environment, working directory), the wrapper's command line
(``NEURODESK_WRAPPER_PRINT=1``) is compared with ``bwrap_argv(build_runspec(...))`` for the
same call: the image's layout (splayed directories included), the binds in mount order, the
made-up files, the working directory, the environment and the runtime options. Runs under
dash, the shell the wrapper is written for, whatever /bin/sh is, and under bash (/bin/sh on
some systems).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from neurodesk.install.installer import install_image
from neurodesk.install.wrapper import MORE_FILE, render_wrapper
from neurodesk.runtime.bwrap import bwrap_argv
from neurodesk.runtime.spec import build_runspec
from neurodesk.store import ImageRecord
from tests.unit.test_install import make_image

DASH = shutil.which("dash")
pytestmark = pytest.mark.skipif(DASH is None, reason="dash is not installed")


def sections(argv: list[str], rootfs: str) -> dict[str, object]:
    """A bwrap command line cut into the parts that must agree."""
    words = [w.replace(rootfs, "<root>") for w in argv]
    layout_end = words.index("--dev")
    layout = []
    i = 1
    while i < layout_end:
        arity = 2 if words[i] == "--dir" else 3
        if words[i] in ("--die-with-parent", "--cap-drop", "--unshare-user"):
            arity = 1 if words[i] != "--cap-drop" else 2
        if words[i] in ("--uid", "--gid"):
            arity = 2
        layout.append(tuple(words[i : i + arity]))
        i += arity
    start = words.index("--proc") + 2
    chdir = words.index("--chdir")
    binds = []
    data = set()
    i = start
    while i < chdir:
        if words[i] == "--ro-bind-data":
            data.add(words[i + 2])
        else:
            binds.append(tuple(words[i : i + 3]))
        i += 3
    env: dict[str, str] = {}
    i = words.index("--clearenv") + 1
    while i < len(words) and words[i] == "--setenv":
        env[words[i + 1]] = words[i + 2]
        i += 3
    return {
        "layout": sorted(layout),
        "binds": binds,
        "data": data,
        "cwd": words[chdir + 1],
        "env": env,
        "rest": words[i:],
    }


def compare(record: ImageRecord, wrapper: Path, env: dict[str, str], cwd: str, shell: str) -> None:
    # TERM set: bash (not dash) gives itself TERM=dumb when the caller has none
    full = {"PATH": "/usr/bin:/bin", "PWD": cwd, "TERM": "xterm", **env}
    proc = subprocess.run(
        [shell, str(wrapper), "a b", "", "-n"],
        capture_output=True,
        text=True,
        env={**full, "NEURODESK_WRAPPER_PRINT": "1", "NEURODESK_RUNTIME": "bwrap"},
        cwd=cwd,
        check=True,
    )
    got = proc.stdout.split("\n")[:-1]
    spec = build_runspec(record, [wrapper.name, "a b", "", "-n"], cwd=cwd, environ=full)
    fds = {path: 3 + n for n, path in enumerate(sorted(spec.files))}
    want = bwrap_argv(spec, fds, program="bwrap")
    rootfs = os.path.realpath(record.rootfs)
    got = [os.path.realpath(w) if "/rootfs" in w else w for w in got]
    assert sections(got, rootfs) == sections(want, rootfs)


@pytest.fixture
def installed(tmp_path: Path) -> tuple[ImageRecord, Path]:
    record = make_image(tmp_path)
    (record.rootfs / "opt/tb/share").mkdir()
    (record.rootfs / "opt/tb/.hidden-dir").mkdir()
    (record.rootfs / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nubuntu:x:1000:1000::/home/ubuntu:/bin/sh\n"
    )
    (record.rootfs / "etc/group").write_text("root:x:0:\n")
    (record.rootfs / "bin").symlink_to("usr/bin")
    result = install_image(record, tmp_path / "prefix")
    return record, result.bin_dir / "tbreg"


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_wrapper_and_runspec_build_the_same_command_line(
    installed: tuple[ImageRecord, Path], tmp_path: Path, shell: str
) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    record, wrapper = installed
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    xauth = tmp_path / "xauth"
    xauth.write_text("cookie")
    calls = [
        ({"HOME": str(home)}, "/"),
        ({"HOME": str(home)}, str(home / "data")),
        ({"HOME": "/nonexistent-home", "TMPDIR": "/nonexistent-tmp"}, "/opt"),
        ({"HOME": "/nonexistent-home"}, "/usr/share"),  # splays the image's /usr
        ({"HOME": "/nonexistent-home"}, "/usr/bin"),
        ({}, "/var"),
        (
            {
                "HOME": str(home),
                "NEURODESK_BINDPATH": f"/usr/share:/opt/in:ro,{home}/data:/data,,/etc/:/x//y/./",
                "APPTAINER_BINDPATH": f"{home},/usr/lib:/usr/lib:ro",
                "SINGULARITY_BINDPATH": "/does/not/exist",
                "DISPLAY": ":1",
                "XAUTHORITY": str(xauth),
                "LC_ALL": "C",
                "LC_NDX": "x y",
                "LANG": "C.UTF-8",
                "APPTAINERENV_FOO": "1",
                "SINGULARITYENV_BAR": "",
                "APPTAINERENV_PATH": "/p",
                "SECRET": "not passed",
                "NEURODESK_RUNTIME_OPTS": "--unshare-net  --new-session",
            },
            "/tmp",
        ),
    ]
    for env, cwd in calls:
        compare(record, wrapper, env, cwd, shell)


def test_unknown_user_gets_passwd_and_group_entries(
    installed: tuple[ImageRecord, Path],
) -> None:
    """A uid the image does not know (run in a user namespace as uid 4321)."""
    _record, wrapper = installed
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    printed = f"NEURODESK_WRAPPER_PRINT=1 NEURODESK_RUNTIME=bwrap {DASH} {wrapper}"
    script = printed + ' | grep -c "^--ro-bind-data$"'
    proc = subprocess.run(
        ["unshare", "--user", "--map-user=4321", "--map-group=4321", "sh", "-c", script],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/", "USER": "alice"},
        check=False,
    )
    if proc.returncode != 0 and "unshare" in proc.stderr:
        pytest.skip(f"no user namespaces here: {proc.stderr.strip()}")
    assert proc.stdout.strip() == "2"


def test_the_wrapper_is_posix_sh(installed: tuple[ImageRecord, Path], tmp_path: Path) -> None:
    """dash (a strict POSIX sh) parses the whole file and its lazily read helpers: those of
    the file beside an installed wrapper, and those a wrapper carries itself (a published
    tree's, rendered without that file)."""
    record, wrapper = installed
    text = wrapper.read_text()
    assert text.startswith("#!/bin/sh\n")
    subprocess.run([str(DASH), "-n", str(wrapper)], check=True)
    more = wrapper.parent / MORE_FILE
    assert "nd_bindpath()" in more.read_text()
    assert not os.access(more, os.X_OK)  # never taken for a command
    subprocess.run([str(DASH), "-n", str(more)], check=True)
    carried = tmp_path / "carried"
    carried.write_text(render_wrapper(record, "tbreg"))
    subprocess.run([str(DASH), "-n", str(carried)], check=True)
    helpers = subprocess.run(
        [str(DASH), "-c", 'eval "$(sed -n "/^nd_more_defs=/,/^nd_more() /p" "$1")"; '
         'printf %s "$nd_more_defs"', "sh", str(carried)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "nd_bindpath()" in helpers
    subprocess.run([str(DASH), "-n"], input=helpers, text=True, check=True)


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_directories_splayed_for_the_installing_users_home_are_laid_out_at_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shell: str
) -> None:
    """A $HOME below a non-empty image directory splays it on every call: the layout for the
    installing user's $HOME is written at install time, and calls that need another layout
    still get theirs; either way the command line is the RunSpec's."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    record = make_image(tmp_path)
    monkeypatch.setenv("HOME", "/usr/share")  # the image has /usr/bin only
    wrapper = install_image(record, tmp_path / "prefix").bin_dir / "tbreg"
    assert "\n    '\n/usr\n') nd_L=" in wrapper.read_text()
    for env, cwd in [
        ({"HOME": "/usr/share"}, "/"),
        ({"HOME": "/nonexistent-home"}, "/usr/share"),
        ({"HOME": "/usr/share"}, "/opt"),
        ({"HOME": "/usr/share", "NEURODESK_BINDPATH": "/usr/share:/opt/in"}, "/"),  # not foreseen
        ({"HOME": str(tmp_path)}, "/"),  # nothing to splay
    ]:
        compare(record, wrapper, env, cwd, shell)
