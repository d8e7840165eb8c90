"""Install and uninstall on a synthetic image: files written, exact removal, conflicts, quoting.

No container runs here (see tests/integration/test_install*.py for the real clients); the image
is a directory tree with the files install reads (DEPLOY_PATH executables, /build.yaml,
/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from neurodesk.errors import NotFoundError
from neurodesk.install.installer import (
    InstallConflictError,
    install_image,
    installed,
    uninstall_image,
)
from neurodesk.install.metadata import app_info
from neurodesk.install.templating import desktop_exec, lua_long_string, tcl_string
from neurodesk.store import ImageRecord

BUILD_YAML = """\
name: toolbox
version: "2.1"
copyright:
  - license: MIT
    url: https://example.org/toolbox
categories: [image registration, visualization]
gui_apps:
  - name: tbviewGUI
    exec: tbview --gui
readme: ignored here
"""

README = "## toolbox/2.1\n\nToolbox registers images ]] and {braces} $HOME [cmd].\n"


def make_image(
    root: Path, builddate: str = "20260101", name: str = "toolbox", recipe: bool = True
) -> ImageRecord:
    store = root / "store"
    digest = "sha256:" + (name + builddate).encode().hex().rjust(64, "0")
    rootfs = store / "images" / digest.removeprefix("sha256:") / "rootfs"
    for directory in ("usr/bin", "opt/tb/bin", "etc", "home"):
        (rootfs / directory).mkdir(parents=True, exist_ok=True)
    for program in ("tbreg", "tbview", "ls", "bash", ".hidden"):
        exe = rootfs / "opt/tb/bin" / program
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    (rootfs / "opt/tb/bin/notes.txt").write_text("not executable")
    (rootfs / "opt/tb/bin/tblink").symlink_to("tbreg")
    (rootfs / "usr/bin/tbextra").write_text("#!/bin/sh\n")
    if recipe:
        (rootfs / "build.yaml").write_text(BUILD_YAML)
        (rootfs / "README.md").write_text(README)
    env = {
        "DEPLOY_PATH": "/opt/tb/bin",
        "DEPLOY_BINS": "/usr/bin/tbextra",
        "DEPLOY_ENV_TOOLBOX_HOME": "/opt/tb",
        "DEPLOY_ENV_LD_LIBRARY_PATH": "/opt/tb/lib",
        "PATH": "/opt/tb/bin:/usr/bin:/bin",
    }
    return ImageRecord(name, "2.1", builddate, digest, store, env, {})


@pytest.fixture
def image(tmp_path: Path) -> ImageRecord:
    return make_image(tmp_path)


def tree(prefix: Path) -> set[str]:
    return {str(p.relative_to(prefix)) for p in prefix.rglob("*")}


def test_install_writes_every_artifact(image: ImageRecord, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    result = install_image(image, prefix)
    # generic names (ls, bash), dotfiles and non-executables are not commands
    assert result.commands == ["tbextra", "tblink", "tbreg", "tbview"]
    container = f"containers/{image.id}"
    assert (prefix / container / "commands.txt").read_text() == "tbextra\ntblink\ntbreg\ntbview\n"
    for command in result.commands:
        wrapper = prefix / container / "bin" / command
        assert wrapper.stat().st_mode & 0o777 == 0o755
        assert wrapper.read_text().startswith("#!/bin/sh\n")
    expected = {
        "modules/toolbox/2.1.lua",
        "modulefiles/toolbox/2.1",
        f"{container}/activate",
        f"{container}/deactivate",
        f"{container}/terminal",
        f"share/applications/neurodesk-toolbox-2-1-{image.builddate}.desktop",
        f"share/applications/neurodesk-toolbox-2-1-{image.builddate}-tbviewgui.desktop",
        "share/desktop-directories/neurodesk.directory",
        "share/desktop-directories/neurodesk-image-registration.directory",
        "share/desktop-directories/neurodesk-visualization.directory",
        "etc/xdg/menus/applications-merged/neurodesk.menu",
    }
    assert expected <= tree(prefix)
    # the store is reached through a relative link inside the prefix
    assert os.readlink(prefix / "store") == "../store"


def test_module_files_carry_help_whatis_path_and_env(image: ImageRecord, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    install_image(image, prefix)
    lua = (prefix / "modules/toolbox/2.1.lua").read_text()
    assert 'whatis("Name: toolbox")' in lua and 'whatis("Version: 2.1")' in lua
    assert 'whatis("Categories: image registration, visualization")' in lua
    assert 'whatis("URL: https://example.org/toolbox")' in lua
    assert 'whatis("Description: Toolbox registers images ]] and' in lua
    assert f'pathJoin(prefix, "containers/{image.id}/bin")' in lua
    assert 'setenv("TOOLBOX_HOME", "/opt/tb")' in lua
    assert "LD_LIBRARY_PATH" not in lua  # would break host programs
    assert "[=[\n" + README + "]=]" in lua  # a level that the README's "]]" cannot close
    assert str(prefix) not in lua  # nothing absolute
    tcl = (prefix / "modulefiles/toolbox/2.1").read_text()
    assert tcl.startswith("#%Module")
    assert 'setenv "TOOLBOX_HOME" "/opt/tb"' in tcl
    assert "\\$HOME \\[cmd\\]" in tcl and str(prefix) not in tcl


def test_metadata_comes_from_the_image(image: ImageRecord) -> None:
    info = app_info(image)
    assert info.description.startswith("Toolbox registers images")
    assert info.categories == ["image registration", "visualization"]
    assert [(g.name, g.command) for g in info.gui_apps] == [("tbviewGUI", "tbview")]
    assert info.deploy_env == [("TOOLBOX_HOME", "/opt/tb")]


def test_uninstall_removes_exactly_what_install_wrote(image: ImageRecord, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    (prefix / "modules" / "mine").mkdir(parents=True)
    (prefix / "modules" / "mine" / "1.0.lua").write_text("-- the user's own module\n")
    before = tree(prefix)
    install_image(image, prefix)
    (prefix / "modules" / "toolbox" / "notes.txt").write_text("user notes beside the module")
    (prefix / f"containers/{image.id}/bin/my-script").write_text("user script")
    uninstall_image(prefix, "toolbox/2.1")
    left = tree(prefix)
    assert left == before | {
        "modules/toolbox",
        "modules/toolbox/notes.txt",
        "containers",
        f"containers/{image.id}",
        f"containers/{image.id}/bin",
        f"containers/{image.id}/bin/my-script",
    }
    (prefix / "modules/toolbox/notes.txt").unlink()
    (prefix / f"containers/{image.id}/bin/my-script").unlink()
    install_image(image, prefix)
    uninstall_image(prefix, "toolbox")
    assert tree(prefix) == before  # no empty module directories, no store link left


def test_two_images_share_menus_until_the_last_goes(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    first = make_image(tmp_path, "20260101")
    other = make_image(tmp_path, "20260101", name="other", recipe=False)
    install_image(first, prefix)
    install_image(other, prefix)
    menu = prefix / "etc/xdg/menus/applications-merged/neurodesk.menu"
    assert "X-Neurodesk-other" in menu.read_text()  # no categories: an "other" folder
    uninstall_image(prefix, "toolbox")
    assert "X-Neurodesk-visualization" not in menu.read_text()
    assert not (prefix / "share/desktop-directories/neurodesk-visualization.directory").exists()
    assert (prefix / "store").is_symlink()
    uninstall_image(prefix, "other")
    assert tree(prefix) == set()


def test_new_build_of_same_version_replaces_the_old(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    install_image(make_image(tmp_path, "20260101"), prefix)
    newer = make_image(tmp_path, "20260202")
    install_image(newer, prefix)
    assert [i.image_id for i in installed(prefix)] == [newer.id]
    assert not (prefix / "containers" / "toolbox_2.1_20260101").exists()
    assert newer.id in (prefix / "modules/toolbox/2.1.lua").read_text()


def test_reinstall_is_idempotent(image: ImageRecord, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    install_image(image, prefix)
    first = {p: (prefix / p).read_bytes() for p in tree(prefix) if (prefix / p).is_file()}
    install_image(image, prefix)
    assert {p: (prefix / p).read_bytes() for p in tree(prefix) if (prefix / p).is_file()} == first


def test_install_never_overwrites_a_foreign_file(image: ImageRecord, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    (prefix / "modules" / "toolbox").mkdir(parents=True)
    (prefix / "modules" / "toolbox" / "2.1.lua").write_text("-- hand-written\n")
    with pytest.raises(InstallConflictError, match="not written by neurodesk"):
        install_image(image, prefix)
    assert (prefix / "modules/toolbox/2.1.lua").read_text() == "-- hand-written\n"
    assert not (prefix / "containers").exists()


def test_prefix_bound_to_another_store_is_refused(image: ImageRecord, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    install_image(image, prefix)
    other = make_image(tmp_path / "second", name="other")
    with pytest.raises(InstallConflictError, match="already holds images of the store"):
        install_image(other, prefix)


def test_uninstall_of_something_not_installed_lists_what_is(
    image: ImageRecord, tmp_path: Path
) -> None:
    prefix = tmp_path / "prefix"
    install_image(image, prefix)
    with pytest.raises(NotFoundError, match=r"installed there: toolbox/2\.1"):
        uninstall_image(prefix, "fsl/6.0")


def test_install_tree_is_world_readable(image: ImageRecord, tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        install_image(image, tmp_path / "prefix")
    finally:
        os.umask(old)
    for path in (tmp_path / "prefix").rglob("*"):
        if not path.is_symlink():
            assert path.stat().st_mode & 0o005 == 0o005 or path.is_file(), path
            assert path.stat().st_mode & 0o004, path


def test_activate_and_deactivate_in_dash(image: ImageRecord, tmp_path: Path) -> None:
    """Sourced in a POSIX shell: PATH and DEPLOY_ENV variables set, then restored exactly."""
    prefix = tmp_path / "prefix"
    install_image(image, prefix)
    directory = prefix / "containers" / image.id
    script = f"""
        TOOLBOX_HOME=before; export TOOLBOX_HOME
        old=$PATH
        . {directory}/activate
        . {directory}/activate
        echo "$PATH" | tr : '\\n' | grep -c containers
        echo "$TOOLBOX_HOME"
        . {directory}/deactivate
        [ "$PATH" = "$old" ] && echo restored
        echo "$TOOLBOX_HOME"
    """
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "/opt/tb", "restored", "before"]


def test_activate_in_bash_finds_itself_after_a_move(image: ImageRecord, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    install_image(image, prefix)
    moved = tmp_path / "moved"
    prefix.rename(moved)
    script = f". {moved}/containers/{image.id}/activate; command -v tbreg"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"{moved}/containers/{image.id}/bin/tbreg"


def test_manifest_lists_relative_paths(image: ImageRecord, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    install_image(image, prefix)
    data = json.loads((prefix / "containers" / image.id / "install.json").read_text())
    assert all(not f.startswith("/") for f in data["files"])
    assert data["commands"] == ["tbextra", "tblink", "tbreg", "tbview"]


@pytest.mark.parametrize(
    "text",
    ["plain", "a]]b", "]=]]==]", "line\nbreak", ""],
)
def test_lua_long_string_roundtrip_shape(text: str) -> None:
    literal = lua_long_string(text)
    level = literal.index("[", 1)
    closing = "]" + "=" * (level - 1) + "]"
    assert literal.endswith(closing) and closing not in text


def test_tcl_string_quotes_substitutions() -> None:
    assert tcl_string('a "b" $c [d] \\e') == '"a \\"b\\" \\$c \\[d\\] \\\\e"'


def test_desktop_exec_quotes_per_spec() -> None:
    assert desktop_exec(["/opt/nd/bin/tool", "--x"]) == "/opt/nd/bin/tool --x"
    # reserved characters → double quotes; backslash-escapes doubled at the string level
    assert desktop_exec(["/my apps/tool", "50%", 'a"b']) == '"/my apps/tool" 50%% "a\\\\"b"'


def test_reinstall_after_the_prefix_moved_repoints_the_store_link(
    image: ImageRecord, tmp_path: Path
) -> None:
    prefix = tmp_path / "prefix"
    install_image(image, prefix)
    moved = tmp_path / "elsewhere" / "prefix"
    moved.parent.mkdir()
    prefix.rename(moved)
    assert not (moved / "store").exists()  # the relative link dangles now
    install_image(image, moved)
    assert (moved / "store").resolve() == image.store_root.resolve()
    assert os.readlink(moved / "store") == "../../store"
    desktop = next((moved / "share/applications").glob("*-2-1-*0101.desktop")).read_text()
    assert f"Exec={moved}/containers/{image.id}/terminal" in desktop  # refreshed


def test_wrappers_hold_no_prefix_path(image: ImageRecord, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    result = install_image(image, prefix)
    for command in result.commands:
        text = (result.bin_dir / command).read_text()
        assert str(prefix) not in text
        assert "$nd_here/../../../store/images/" in text


def test_menu_terminal_opens_a_shell_with_the_commands(image: ImageRecord, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    install_image(image, prefix)
    fake_shell = tmp_path / "fakeshell"
    fake_shell.write_text('#!/bin/sh\necho "args=$*"\necho "PATH=$PATH"\n')
    fake_shell.chmod(0o755)
    proc = subprocess.run(
        [str(prefix / "containers" / image.id / "terminal")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SHELL": str(fake_shell)},
        check=True,
    )
    assert "commands: tbextra tblink tbreg tbview" in proc.stdout
    assert "args=-i" in proc.stdout
    assert f"PATH={prefix}/containers/{image.id}/bin:/usr/bin:/bin" in proc.stdout


def fake_bwrap_args(
    image: ImageRecord, tmp_path: Path, env: dict[str, str], *args: str
) -> list[str]:
    """Run an installed wrapper with a ``bwrap`` that prints its arguments, NUL-separated."""
    prefix = tmp_path / "prefix"
    if not prefix.exists():
        install_image(image, prefix)
    fake = tmp_path / "fakebin"
    fake.mkdir(exist_ok=True)
    (fake / "bwrap").write_text("#!/bin/sh\nprintf '%s\\0' \"$@\"\n")
    (fake / "bwrap").chmod(0o755)
    wrapper = prefix / "containers" / image.id / "bin" / "tbreg"
    proc = subprocess.run(
        [str(wrapper), *args],
        capture_output=True,
        env={"PATH": f"{fake}:/usr/bin:/bin", **env},
        cwd=env.get("PWD", "/"),
        check=True,
    )
    return proc.stdout.decode().split("\0")[:-1]


def binds(argv: list[str]) -> list[tuple[str, str, str]]:
    return [
        (argv[i], argv[i + 1], argv[i + 2])
        for i in range(len(argv) - 2)
        if argv[i] in ("--bind", "--ro-bind") and "/rootfs/" not in argv[i + 1]
    ]


# Bind sources must exist, and paths below /tmp count as bound already: use host directories.
def test_wrapper_bind_paths_order_dedupe_and_ro(image: ImageRecord, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "sub").mkdir(parents=True)
    env = {
        "HOME": str(home),
        "NEURODESK_BINDPATH": f"/usr/share:/in:ro,/does/not/exist,{home}/sub",
        "APPTAINER_BINDPATH": "/etc::rw,/usr/share:/in",
        "SINGULARITY_BINDPATH": ",/etc,",
    }
    argv = fake_bwrap_args(image, tmp_path, env, "a b", "", "*")
    assert argv[-4:] == ["tbreg", "a b", "", "*"]  # the user's arguments, untouched
    # /tmp and $HOME first; then the bind paths in the order given, a target bound once (the
    # later wins, in its place, as in the RunSpec), missing sources and paths already visible
    # through /tmp dropped (this $HOME lies below /tmp); the store read-only over /tmp last.
    assert binds(argv) == [
        ("--bind", "/tmp", "/tmp"),
        ("--bind", "/var/tmp", "/var/tmp"),
        ("--bind", "/etc", "/etc"),
        ("--bind", "/usr/share", "/in"),
        ("--ro-bind", str(tmp_path / "store"), str(tmp_path / "store")),
    ]
    env = {"HOME": str(home), "NEURODESK_BINDPATH": "/usr/share:/x:ro"}
    assert ("--ro-bind", "/usr/share", "/x") in binds(fake_bwrap_args(image, tmp_path, env))


def test_wrapper_binds_the_working_directory_last(image: ImageRecord, tmp_path: Path) -> None:
    env = {"HOME": "/nonexistent-home", "PWD": "/mnt", "NEURODESK_BINDPATH": "/etc"}
    argv = fake_bwrap_args(image, tmp_path, env)
    assert [b[1] for b in binds(argv) if b[0] == "--bind"][-2:] == ["/etc", "/mnt"]
    assert argv[argv.index("--chdir") + 1] == "/mnt"
    # a non-empty directory of the image (its /opt holds the tool) is never hidden by the host's
    env = {"HOME": "/nonexistent-home", "PWD": "/opt"}
    argv = fake_bwrap_args(image, tmp_path, env)
    assert "/opt" not in [b[2] for b in binds(argv)]
    assert argv[argv.index("--chdir") + 1] == "/opt"
    # the image's environment, with DEPLOY_ENV_ applied, and a clean slate before it
    assert argv.index("--clearenv") < argv.index("TOOLBOX_HOME")
    assert "TOOLBOX_HOME" in argv and argv[argv.index("TOOLBOX_HOME") + 1] == "/opt/tb"


def _killed_install(image: ImageRecord, prefix: Path, after: int, shared: bool) -> None:
    """Child process: install, dying like ``kill -9`` after ``after`` files (no clean-up runs)."""
    from neurodesk.install import installer

    real_write = installer._write
    calls = {"n": 0}

    def dying_write(root: Path, files: installer.Files) -> None:
        calls["n"] += 1
        if shared == (calls["n"] > 1):  # the first call writes the container's files
            real_write(root, dict(list(files.items())[:after]))
            os._exit(9)
        real_write(root, files)

    installer._write = dying_write
    install_image(image, prefix)
    os._exit(0)


@pytest.mark.parametrize(("after", "shared"), [(0, False), (3, False), (1, True), (2, True)])
def test_an_install_killed_midway_is_completed_or_removed_later(
    image: ImageRecord, tmp_path: Path, after: int, shared: bool
) -> None:
    import multiprocessing

    prefix = tmp_path / "prefix"
    child = multiprocessing.get_context("fork").Process(
        target=_killed_install, args=(image, prefix, after, shared)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 9
    install_image(image, prefix)  # no "not written by neurodesk" for its own leftovers
    assert (prefix / "modules/toolbox/2.1.lua").is_file()
    uninstall_image(prefix, "toolbox")
    assert tree(prefix) == set()


def test_wrapper_runtime_options_gpu_and_runtime_choice(image: ImageRecord, tmp_path: Path) -> None:
    env = {"HOME": "/nonexistent-home", "NEURODESK_RUNTIME_OPTS": "--unshare-net --new-session"}
    argv = fake_bwrap_args(image, tmp_path, env, "x")
    assert argv[-4:] == ["--unshare-net", "--new-session", "tbreg", "x"]
    prefix = tmp_path / "prefix"
    wrapper = prefix / "containers" / image.id / "bin" / "tbreg"
    plain = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home", "NEURODESK_RUNTIME": "bwrap"}
    if not list(Path("/dev").glob("nvidia[0-9]*")):
        proc = subprocess.run(
            [str(wrapper)], capture_output=True, text=True, env={**plain, "NEURODESK_GPU": "1"}
        )
        assert proc.returncode == 1 and "no NVIDIA GPU" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        gpu_prefix = tmp_path / "gpu-prefix"
        install_image(image, gpu_prefix, gpu=True)
        gpu_wrapper = gpu_prefix / "containers" / image.id / "bin" / "tbreg"
        proc = subprocess.run([str(gpu_wrapper)], capture_output=True, text=True, env=plain)
        assert proc.returncode == 1 and "no NVIDIA GPU" in proc.stderr  # --gpu at install
    proc = subprocess.run(
        [str(wrapper)], capture_output=True, text=True, env={**plain, "NEURODESK_RUNTIME": "x"}
    )
    assert proc.returncode == 127 and "NEURODESK_RUNTIME=x" in proc.stderr


def test_wrapper_falls_back_to_apptainer_without_user_namespaces(
    image: ImageRecord, tmp_path: Path
) -> None:
    """The per-boot probe says bwrap cannot make a user namespace: apptainer runs instead."""
    prefix = tmp_path / "prefix"
    install_image(image, prefix)
    fake = tmp_path / "fakebin"
    fake.mkdir()
    for name in ("bwrap", "apptainer"):
        (fake / name).write_text(f'#!/bin/sh\necho {name} "$@"\n')
        (fake / name).chmod(0o755)
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    runtime_dir = tmp_path / "run"
    runtime_dir.mkdir()
    (runtime_dir / f"neurodesk-userns-{os.getuid()}").write_text(f"{boot} no\n")
    wrapper = prefix / "containers" / image.id / "bin" / "tbreg"
    env = {"PATH": f"{fake}:/usr/bin:/bin", "HOME": "/nonexistent-home"}
    env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    out = subprocess.run([str(wrapper), "a"], capture_output=True, text=True, env=env).stdout
    assert out.startswith("apptainer exec --cleanenv") and out.rstrip().endswith("tbreg a")
    (runtime_dir / f"neurodesk-userns-{os.getuid()}").write_text(f"{boot} yes\n")
    out = subprocess.run([str(wrapper), "a"], capture_output=True, text=True, env=env).stdout
    assert out.startswith("bwrap --die-with-parent")
