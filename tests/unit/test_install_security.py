"""Hostile images cannot run code on the host through what install generates.

Each generated file kind is attacked with values an image controls (DEPLOY_BINS, the image
name, environment keys and values, /README.md, /build.yaml): values that name files or
variables must match strict patterns (the image is refused with one line, nothing written);
free text is quoted for its language, so running each file (sourcing activate in dash and
bash, evaluating the Lua and Tcl modules with stand-ins for the module commands, the wrapper
with a stand-in bwrap) never creates the marker file the payloads try to create. A fuzz test
feeds random image configs through import and install and runs every file through its
language's parser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurodesk.errors import NeurodeskError
from neurodesk.image.oci import OCILayout
from neurodesk.install.installer import install_image
from neurodesk.install.validate import UnsafeImageError
from neurodesk.install.wrapper import MORE_FILE
from neurodesk.store import ImageRecord, Store
from tests.conftest import assert_one_line_error, run_cli
from tests.unit.ocihelp import write_layout

MARK = "/tmp/nd-pwned-{pid}"


def payloads(marker: str) -> list[str]:
    """Text that runs ``touch marker`` if pasted unquoted into sh, Lua, Tcl or a desktop entry."""
    return [
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"'; touch {marker}; '",
        f'"; touch {marker}; "',
        f"]==] os.execute('touch {marker}') --[==[",
        f'" .. os.execute("touch {marker}") .. "',
        f"[exec touch {marker}]",
        f"}}; exec touch {marker}; {{",
        f'\\\\"; touch {marker} #',
    ]


def make_record(
    root: Path, env: dict[str, str], name: str = "tool", readme: str = "# tool\n", yaml: str = ""
) -> ImageRecord:
    store = root / "store"
    digest = "sha256:" + "5e" * 32
    rootfs = store / "images" / digest.removeprefix("sha256:") / "rootfs"
    (rootfs / "opt/tool/bin").mkdir(parents=True)
    (rootfs / "usr/bin").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    exe = rootfs / "opt/tool/bin/toolcmd"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (rootfs / "README.md").write_text(readme)
    if yaml:
        (rootfs / "build.yaml").write_text(yaml)
    return ImageRecord(name, "1.0", "20260101", digest, store, env, {})


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.mark.parametrize(
    ("what", "env", "name"),
    [
        ("DEPLOY_BINS", {"DEPLOY_BINS": "/usr/bin/x\ntouch /tmp/nd-pwned"}, "tool"),
        ("DEPLOY_BINS", {"DEPLOY_BINS": "/usr/bin/$(touch /tmp/nd-pwned)"}, "tool"),
        ("environment variable", {"DEPLOY_ENV_X}$(touch /tmp/nd-pwned)": "1"}, "tool"),
        ("environment variable", {"A B": "1"}, "tool"),
        ("name", {}, "tool\nos.execute('touch /tmp/nd-pwned')"),
        ("name", {}, "tool]]"),
        ("value of DEPLOY_ENV_X", {"DEPLOY_ENV_X": "a\nos.execute('x')"}, "tool"),
    ],
)
def test_bad_names_refuse_the_image_before_anything_is_written(
    tmp_path: Path, what: str, env: dict[str, str], name: str
) -> None:
    record = make_record(tmp_path, {"DEPLOY_PATH": "/opt/tool/bin", **env}, name=name)
    prefix = tmp_path / "prefix"
    with pytest.raises(UnsafeImageError, match=what) as caught:
        install_image(record, prefix)
    assert "\n" not in str(caught.value).split(" is not allowed")[1]
    assert not prefix.exists()


def test_install_of_a_hostile_image_is_one_line(tmp_path: Path) -> None:
    layout = write_layout(
        tmp_path / "layout",
        [{"opt/tool/bin/toolcmd.sh": b"#!/bin/sh\n"}],
        env=["PATH=/usr/bin:/bin", "DEPLOY_PATH=/opt/tool/bin", "DEPLOY_ENV_X}$(id)=1"],
    )
    home = tmp_path / "home"
    Store(home / "store").import_layout(OCILayout(layout), "tool", "1.0", "20260101")
    proc = run_cli(["install", "tool", "--prefix", str(tmp_path / "prefix")], home)
    assert_one_line_error(proc, "DEPLOY_ENV_X}$(id)")
    assert not (tmp_path / "prefix" / "containers").exists()


def stubs(tmp: Path) -> tuple[Path, Path]:
    """Stand-ins for Lmod's and environment-modules' commands, so modules can be evaluated."""
    lua = tmp / "stubs.lua"
    lua.write_text(
        "function help(...) end function whatis(...) end function prepend_path(...) end\n"
        "function setenv(...) end function myFileName() return '/p/modules/t/1.lua' end\n"
        "function pathJoin(a, b) return a .. '/' .. b end\n"
    )
    tcl = tmp / "stubs.tcl"
    tcl.write_text(
        "proc module-whatis {args} {}\nproc conflict {args} {}\nproc prepend-path {args} {}\n"
        "proc setenv {args} {}\nset ModulesCurrentModulefile /p/modulefiles/t/1\n"
    )
    return lua, tcl


def run_everything(prefix: Path, tmp: Path) -> None:
    """Run or parse every generated file the way a host would use it."""
    lua_stubs, tcl_stubs = stubs(tmp)
    fake = tmp / "fakebin"
    fake.mkdir(exist_ok=True)
    (fake / "bwrap").write_text("#!/bin/sh\nexit 0\n")
    (fake / "bwrap").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp), "NEURODESK_RUNTIME": "bwrap"}
    marker = MARK.format(pid=os.getpid())
    for path in files_under(prefix):
        assert not os.path.exists(marker), f"ran code before {path}"
        rel = path.relative_to(prefix)
        if rel.suffix == ".lua":
            subprocess.run(["luac5.3", "-p", str(path)], check=True)
            script = f"dofile({str(lua_stubs)!r}) dofile({str(path)!r})"
            subprocess.run(["lua5.3", "-e", script], check=True, capture_output=True)
        elif rel.parts[0] == "modulefiles":
            script = f"source {tcl_stubs}; source {path}"
            subprocess.run(["tclsh"], input=script, text=True, check=True, capture_output=True)
        elif rel.suffix in (".desktop", ".directory"):
            proc = subprocess.run(["desktop-file-validate", str(path)], capture_output=True)
            assert b"error" not in proc.stdout.lower(), proc.stdout
        elif rel.name in ("activate", "deactivate"):
            for shell in ("dash", "bash"):
                subprocess.run([shell, "-n", str(path)], check=True)
                activate = path.parent / "activate"
                script = f'. "{activate}"; . "{path.parent / "deactivate"}"'
                subprocess.run([shell, "-c", script], check=True, env=env, capture_output=True)
        elif rel.parts[-2:-1] == ("bin",) and rel.name == MORE_FILE:
            # the wrappers' helpers, sourced: defining them runs nothing
            subprocess.run(["dash", "-c", '. "$1"', "sh", str(path)], check=True, env=env, cwd=tmp)
        elif rel.parts[-2:-1] == ("bin",):
            subprocess.run(["bash", "-n", str(path)], check=True)
            subprocess.run([str(path), "x"], env=env, capture_output=True, timeout=30, cwd=tmp)
        elif rel.name == "terminal":
            subprocess.run(["dash", "-n", str(path)], check=True)


def test_quoted_payloads_never_run_on_the_host(tmp_path: Path) -> None:
    marker = MARK.format(pid=os.getpid())
    texts = payloads(marker)
    env = {"DEPLOY_PATH": "/opt/tool/bin", "DEPLOY_BINS": "/usr/bin/toolcmd"}
    env.update({f"DEPLOY_ENV_V{i}": text for i, text in enumerate(texts)})
    env["PATH"] = "/opt/tool/bin:/usr/bin:/bin"
    yaml = (
        "categories: [" + ", ".join(repr(t.replace("\\", "")) for t in texts[:3]) + "]\n"
        "structured_readme:\n  description: " + repr(" ".join(texts)) + "\n"
        "gui_apps:\n  - name: toolGUI\n    exec: " + repr("toolcmd " + texts[0]) + "\n"
    )
    readme = "\n".join(["# tool", *texts, "]]", "]=]", "}", "{"]) + "\n"
    record = make_record(tmp_path, env, readme=readme, yaml=yaml)
    prefix = tmp_path / "prefix"
    install_image(record, prefix)
    try:
        run_everything(prefix, tmp_path)
        assert not os.path.exists(marker), "a generated file ran the image's code"
    finally:
        if os.path.exists(marker):
            os.unlink(marker)


def test_a_readme_linking_to_a_host_file_does_not_leak_it(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("HOST SECRET 4711\n")
    record = make_record(tmp_path, {"DEPLOY_PATH": "/opt/tool/bin"})
    readme = record.rootfs / "README.md"
    readme.unlink()
    readme.symlink_to(secret)
    (record.rootfs / "build.yaml").symlink_to(secret)
    (record.rootfs / "etc/passwd").symlink_to("/etc/passwd")
    prefix = tmp_path / "prefix"
    install_image(record, prefix)
    for path in files_under(prefix):
        assert "HOST SECRET" not in path.read_text(errors="replace"), path
        assert "root:x:0:0" not in path.read_text(errors="replace"), path


# -- fuzz: random image configs through import and install ---------------------------------

# Mostly values an image may carry (so that most examples install and every file kind gets
# parsed), sometimes anything at all (so that refusals are exercised too).
_PRINTABLE = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40
)
_ANY = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_TEXT = st.one_of(_PRINTABLE, _PRINTABLE, _PRINTABLE, _ANY)
_GOOD_NAME = st.sampled_from(["tool", "fsl", "a.b-c", "x+y", "1.0", "v2_rc1"])
_NAMEISH = st.one_of(
    _GOOD_NAME,
    _GOOD_NAME,
    _GOOD_NAME,
    _GOOD_NAME,
    st.text(alphabet="ab1._-+ \n$`'\"/\\;]}{[()=:\t", min_size=1, max_size=12),
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=_NAMEISH,
    version=_NAMEISH,
    env=st.dictionaries(
        st.one_of(
            st.sampled_from(["A", "DEPLOY_ENV_K", "B_1", "LC_X", "DEPLOY_ENV_HOME"]),
            st.sampled_from(["X}$(id)", "A B", "1X"]),
        ),
        _TEXT,
        max_size=4,
    ),
    bins=st.lists(_NAMEISH, max_size=2),
    labels=st.dictionaries(
        st.sampled_from(["org.opencontainers.image.description", "org.opencontainers.image.url"]),
        _TEXT,
    ),
    readme=_TEXT,
)
def test_fuzz_import_and_install(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    version: str,
    env: dict[str, str],
    bins: list[str],
    labels: dict[str, str],
    readme: str,
) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    marker = MARK.format(pid=os.getpid())
    config_env = [f"{k}={v}" for k, v in env.items() if "\0" not in k + v]
    config_env += ["PATH=/usr/bin:/bin", "DEPLOY_PATH=/opt/tool/bin"]
    config_env.append("DEPLOY_BINS=" + ":".join(f"/usr/bin/{b}" for b in bins))
    layout = write_layout(
        tmp / "layout",
        [{"opt/tool/bin/toolcmd.sh": b"#!/bin/sh\n", "README.md": readme.encode()}],
        env=config_env,
        labels={k: v for k, v in labels.items() if "\0" not in v},
    )
    home, prefix = tmp / "home", tmp / "prefix"
    outside = {p: p.stat().st_mtime_ns for p in tmp.iterdir()}
    try:
        record = Store(home / "store").import_layout(OCILayout(layout), name, version, "20260101")
    except NeurodeskError:
        return  # the store refuses the name: a one-line error, nothing to install
    try:
        install_image(record, prefix)
    except UnsafeImageError:
        assert not (prefix / "containers").exists() or not any((prefix / "containers").iterdir())
        return
    try:
        run_everything(prefix, tmp)
        assert not os.path.exists(marker)
        changed = {p for p in tmp.iterdir() if p not in (home, prefix, tmp / "fakebin")}
        changed |= {tmp / "stubs.lua", tmp / "stubs.tcl"} & set(tmp.iterdir())
        for path in changed - {tmp / "stubs.lua", tmp / "stubs.tcl"}:
            assert outside.get(path) == path.stat().st_mtime_ns, path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if os.path.exists(marker):
            os.unlink(marker)
