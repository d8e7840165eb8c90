"""Installed tools driven by the real clients: Lmod, environment-modules (Tcl), nipype, a shell
pipeline and a SLURM batch job, each on an install tree used in place and on moved trees.

Trees (one session fixture, each with a hard-linked copy of the session store so it can move):

- ``in-place``:       installed and used where it was installed;
- ``moved``:          the prefix and its store moved together (the relative ``store`` link);
- ``prefix-moved``:   only the prefix moved, the store stayed (wrappers fall back to the image's
                      location at install time);
- ``read-only``:      the in-place tree and its store bind-mounted read-only elsewhere (as an
                      NFS or CVMFS export would be): moved, and nothing can be written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from neurodesk.build.build import build_recipe
from neurodesk.install.installer import install_image
from neurodesk.paths import Paths
from neurodesk.store import ImageRecord, Store
from tests.integration.conftest import need
from tests.integration.slurm import SlurmCluster

pytestmark = pytest.mark.integration

LMOD_INIT = "/usr/share/lmod/lmod/init/bash"
VARIANTS = ["in-place", "moved", "prefix-moved", "read-only"]

# A second image with commands in a DEPLOY_PATH directory, a generic name to skip (ls), a GUI
# app, a DEPLOY_ENV_ variable and two categories. Built on the session's cached base: seconds.
TOOLBOX_RECIPE = r"""
name: ndtoolbox
version: "2.1"
architectures: [x86_64]
copyright:
  - license: MIT
    url: https://example.org/ndtoolbox
build:
  kind: neurodocker
  base-image: debian:bookworm
  pkg-manager: apt
  directives:
    - run:
        - mkdir -p /opt/ndtoolbox/bin
        - printf '#!/bin/sh\nexec tr a-z A-Z\n' > /opt/ndtoolbox/bin/ndupper
        - printf '#!/bin/sh\nexec wc -l\n' > /opt/ndtoolbox/bin/ndcount
        - printf '#!/bin/sh\necho "home=$NDTOOLBOX_HOME"\n' > /opt/ndtoolbox/bin/ndenv
        - printf '#!/bin/sh\necho viewer "$@"\n' > /opt/ndtoolbox/bin/ndview
        - chmod 755 /opt/ndtoolbox/bin/nd*
        - ln -s /bin/ls /opt/ndtoolbox/bin/ls
    - environment:
        DEPLOY_ENV_NDTOOLBOX_HOME: /opt/ndtoolbox
deploy:
  path:
    - /opt/ndtoolbox/bin
categories:
  - image registration
  - visualization
gui_apps:
  - name: ndviewGUI
    exec: ndview
readme: |-
  ## ndtoolbox/{{ context.version }}

  A toolbox for the install tests: upper-cases and counts lines.
"""


@dataclass(frozen=True)
class Tree:
    variant: str
    prefix: Path
    dcm2niix: ImageRecord
    toolbox: ImageRecord
    writable: Path  # the same prefix, where a test can add files (differs for read-only)

    @property
    def modules(self) -> Path:
        return self.prefix / "modules"

    @property
    def modulefiles(self) -> Path:
        return self.prefix / "modulefiles"


@pytest.fixture(scope="session")
def toolbox_image(nd_home: Path, tmp_path_factory: pytest.TempPathFactory) -> ImageRecord:
    recipe = tmp_path_factory.mktemp("recipe") / "ndtoolbox" / "build.yaml"
    recipe.parent.mkdir()
    recipe.write_text(TOOLBOX_RECIPE)
    return build_recipe(recipe, Paths(nd_home)).record


def _copy_store(store: Path, home: Path) -> Store:
    home.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(store), str(home / "store")], check=True)
    return Store(home / "store")


@pytest.fixture(scope="session")
def trees(
    dcm2niix_image: ImageRecord,
    toolbox_image: ImageRecord,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Tree]]:
    need("bwrap", "mount", "umount")
    base = tmp_path_factory.mktemp("trees")
    out: dict[str, Tree] = {}
    for variant in VARIANTS[:3]:
        home = base / f"{variant}-installed"
        store = _copy_store(dcm2niix_image.store_root, home)
        dcm = store.resolve(f"dcm2niix/{dcm2niix_image.version}/{dcm2niix_image.builddate}")
        tool = store.resolve(f"ndtoolbox/{toolbox_image.version}/{toolbox_image.builddate}")
        prefix = home / "installs"
        install_image(dcm, prefix)
        install_image(tool, prefix)
        if variant == "moved":
            home = home.rename(base / "moved-here")
            prefix = home / "installs"
            store = Store(home / "store")  # the same images, at their new place
            dcm, tool = (store.resolve(f"{r.name}/{r.version}/{r.builddate}") for r in (dcm, tool))
        elif variant == "prefix-moved":
            prefix = prefix.rename(base / "prefix-alone")
            assert not (prefix / "store").exists()  # the relative link now leads nowhere
        out[variant] = Tree(variant, prefix, dcm, tool, prefix)
    source = out["in-place"]
    mount = base / "read-only-mount"
    mount.mkdir()
    subprocess.run(["mount", "--bind", str(source.prefix.parent), str(mount)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], check=True)
        store = Store(mount / "store")
        dcm, tool = (
            store.resolve(f"{r.name}/{r.version}/{r.builddate}")
            for r in (source.dcm2niix, source.toolbox)
        )
        out["read-only"] = Tree("read-only", mount / "installs", dcm, tool, source.prefix)
        yield out
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture(params=VARIANTS)
def tree(request: pytest.FixtureRequest, trees: dict[str, Tree]) -> Tree:
    return trees[str(request.param)]


def bash(
    script: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh bash with a clean, typical user environment."""
    base_env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "LMOD_IGNORE_CACHE": "1",  # every tree is new: no stale spider cache
    }
    return subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", "set -e\n" + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**base_env, **(env or {})},
        timeout=120,
        check=False,
    )


# -- Lmod -----------------------------------------------------------------------------------------
def test_lmod_avail_spider_load_ml(tree: Tree, tmp_path: Path) -> None:
    need("bwrap")
    if not Path(LMOD_INIT).is_file():
        pytest.skip("Lmod is not installed (apt-get install lmod)")
    dcm = tree.dcm2niix
    proc = bash(
        f"""
        source {LMOD_INIT}
        module use {tree.modules}
        module avail 2>&1
        echo ---spider
        module spider ndtoolbox/2.1 2>&1
        echo ---load
        module load dcm2niix/{dcm.version}
        dcm2niix -h | head -1
        ml ndtoolbox
        ml 2>&1
        ndenv
        echo "host NDTOOLBOX_HOME=$NDTOOLBOX_HOME"
        echo ---unload
        module unload dcm2niix ndtoolbox
        command -v ndupper || echo "ndupper gone"
        command -v dcm2niix | grep -q containers || echo "dcm2niix wrapper gone"
        echo "host NDTOOLBOX_HOME=${{NDTOOLBOX_HOME:-unset}}"
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    avail, rest = proc.stdout.split("---spider", 1)
    spider, rest = rest.split("---load", 1)
    loaded, unloaded = rest.split("---unload", 1)
    assert f"dcm2niix/{dcm.version}" in avail and "ndtoolbox/2.1" in avail
    assert "A toolbox for the install tests" in spider  # whatis Description / help
    assert "Chris Rorden's dcm2niiX" in loaded
    assert "dcm2niix/" in loaded and "ndtoolbox/2.1" in loaded  # `ml` lists both
    assert "home=/opt/ndtoolbox" in loaded  # DEPLOY_ENV_ applied in the container
    assert "host NDTOOLBOX_HOME=/opt/ndtoolbox" in loaded  # and set by the module (setenv)
    assert "ndupper gone" in unloaded and "dcm2niix wrapper gone" in unloaded
    assert "NDTOOLBOX_HOME=unset" in unloaded


def test_lmod_whatis_and_help(tree: Tree, tmp_path: Path) -> None:
    if not Path(LMOD_INIT).is_file():
        pytest.skip("Lmod is not installed (apt-get install lmod)")
    proc = bash(
        f"""
        source {LMOD_INIT}
        module use {tree.modules}
        module whatis ndtoolbox 2>&1
        module help ndtoolbox 2>&1
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    for line in (
        "Name: ndtoolbox",
        "Version: 2.1",
        "Categories: image registration, visualization",
        "URL: https://example.org/ndtoolbox",
        "Commands: ndcount ndenv ndupper ndview",
        "## ndtoolbox/2.1",  # the image's README as help
    ):
        assert line in proc.stdout, proc.stdout


# -- environment-modules (Tcl) --------------------------------------------------------------------
@pytest.fixture(scope="session")
def modulecmd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """environment-modules' modulecmd.tcl, unpacked from the Debian package (it conflicts with
    the installed lmod package, so it is not installed)."""
    need("apt-get", "dpkg-deb", "tclsh")
    work = tmp_path_factory.mktemp("envmodules")
    os.chmod(work, 0o755)  # apt's download user must be able to write here
    proc = subprocess.run(
        ["apt-get", "download", "environment-modules"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    debs = list(work.glob("environment-modules_*.deb"))
    if not debs:
        pytest.fail(f"apt-get download environment-modules failed: {proc.stderr[-500:]}")
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(work / "root")], check=True)
    found = sorted((work / "root").glob("usr/lib/*/modulecmd.tcl"))
    assert found, "modulecmd.tcl not in the environment-modules package"
    return found[0]


def test_environment_modules_load_whatis_help(tree: Tree, modulecmd: Path, tmp_path: Path) -> None:
    need("bwrap", "tclsh")
    dcm = tree.dcm2niix
    proc = bash(
        f"""
        module() {{ eval "$(tclsh {modulecmd} bash "$@")"; }}
        module use {tree.modulefiles}
        module avail 2>&1
        module whatis ndtoolbox 2>&1
        module help ndtoolbox 2>&1
        echo ---load
        module load dcm2niix/{dcm.version} ndtoolbox/2.1
        dcm2niix -h | head -1
        ndenv
        echo "host NDTOOLBOX_HOME=$NDTOOLBOX_HOME"
        echo ---unload
        module unload ndtoolbox
        command -v ndenv || echo "ndenv gone"
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listing, rest = proc.stdout.split("---load", 1)
    loaded, unloaded = rest.split("---unload", 1)
    assert f"dcm2niix/{dcm.version}" in listing and "ndtoolbox/2.1" in listing
    assert "Description: A toolbox for the install tests" in listing
    assert "## ndtoolbox/2.1" in listing  # ModulesHelp prints the README
    assert "Chris Rorden's dcm2niiX" in loaded
    assert "home=/opt/ndtoolbox" in loaded and "host NDTOOLBOX_HOME=/opt/ndtoolbox" in loaded
    assert "ndenv gone" in unloaded


# -- a shell pipeline through wrapped tools of two images -----------------------------------------
def test_pipeline_through_two_wrapped_tools(tree: Tree, tmp_path: Path) -> None:
    need("bwrap")
    (tmp_path / "in.txt").write_text("alpha\nbeta gamma\n")
    proc = bash(
        f"""
        . {tree.prefix}/containers/{tree.toolbox.id}/activate
        . {tree.prefix}/containers/{tree.dcm2niix.id}/activate
        ndupper < in.txt | ndupper | tee upper.txt | ndcount
        dcm2niix -h | ndupper | grep -c "DCM2NIIX VERSION"
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["2", "1"]
    assert (tmp_path / "upper.txt").read_text() == "ALPHA\nBETA GAMMA\n"


# -- nipype ---------------------------------------------------------------------------------------
def test_nipype_commandline_calls_the_wrapped_tool(tree: Tree, tmp_path: Path) -> None:
    """A nipype CommandLine interface runs plain 'dcm2niix' after 'module load'."""
    pytest.importorskip("nipype")
    if not Path(LMOD_INIT).is_file():
        pytest.skip("Lmod is not installed (apt-get install lmod)")
    from neurodesk.demo.check import check_nifti
    from neurodesk.demo.dicom import write_series

    write_series(tmp_path / "dicom")
    (tmp_path / "out").mkdir()
    script = tmp_path / "flow.py"
    script.write_text(
        textwrap.dedent(
            """
            from nipype.interfaces.base import CommandLine

            cmd = CommandLine(command="dcm2niix", args="-z n -f vol -o out dicom")
            result = cmd.run()
            print("nipype rc", result.runtime.returncode)
            """
        )
    )
    proc = bash(
        f"""
        source {LMOD_INIT}
        module use {tree.modules}
        module load dcm2niix
        {sys.executable} {script}
        """,
        tmp_path,
        env={"NIPYPE_NO_ET": "1", "NO_ET": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nipype rc 0" in proc.stdout
    assert check_nifti(tmp_path / "out" / "vol.nii").ok


# -- SLURM ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def job_dir() -> Iterator[Path]:
    # Jobs run in slurmd's environment: a directory outside pytest's private tmp tree is simplest.
    path = Path("/var/tmp") / f"nd-install-jobs-{os.getpid()}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_slurm_batch_job_loads_the_module(
    tree: Tree, slurm_cluster: SlurmCluster, job_dir: Path
) -> None:
    if not Path(LMOD_INIT).is_file():
        pytest.skip("Lmod is not installed (apt-get install lmod)")
    from neurodesk.demo.check import check_nifti
    from neurodesk.demo.dicom import write_series

    work = job_dir / tree.variant
    write_series(work / "dicom")
    (work / "out").mkdir()
    job = work / "job.sh"
    job.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/bash
            #SBATCH --job-name=nd-{tree.variant}
            #SBATCH --output={work}/slurm-%j.out
            #SBATCH --chdir={work}
            set -e
            source {LMOD_INIT}
            module use {tree.modules}
            module load dcm2niix/{tree.dcm2niix.version} ndtoolbox
            dcm2niix -z n -f vol -o out dicom
            ls out | ndupper
            """
        )
    )
    job_id = slurm_cluster.sbatch(str(job))
    states = slurm_cluster.wait(job_id)
    log = (work / f"slurm-{job_id}.out").read_text()
    assert set(states.values()) == {"COMPLETED"}, log + slurm_cluster.log_tail()
    assert "VOL.NII" in log  # through the second image's wrapper
    assert check_nifti(work / "out" / "vol.nii").ok


# -- the wrapper itself, in every tree ------------------------------------------------------------
ODD_ARGS = ["a b", "'c'", '"d"', "$HOME", "*", "", "line1\nline2", "-x", "--", "\\", "é"]


def test_wrapper_arguments_and_bind_paths(tree: Tree, tmp_path: Path) -> None:
    """Arguments arrive exactly; *_BINDPATH binds are honoured, read-only where asked, once."""
    need("bwrap")
    from neurodesk.install.wrapper import render_wrapper

    bin_dir = tree.writable / "containers" / tree.toolbox.id / "bin"
    extra = {name: bin_dir / name for name in ("printf", "sh")}
    run_dir = tree.prefix / "containers" / tree.toolbox.id / "bin"
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.txt").write_text("bound\n")
    try:
        for name, path in extra.items():
            path.write_text(render_wrapper(tree.toolbox, name))
            path.chmod(0o755)
        proc = subprocess.run(
            [str(run_dir / "printf"), "[%s]", *ODD_ARGS], capture_output=True, text=True, cwd="/"
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "".join(f"[{a}]" for a in ODD_ARGS)
        script = "cat /in/f.txt; echo x > /in/new 2>/dev/null || echo ro"
        script += "; grep -c ' /in ' /proc/self/mountinfo"
        env = dict(
            os.environ,
            NEURODESK_BINDPATH=f"{data}:/in:ro,/does/not/exist",
            APPTAINER_BINDPATH=f"{data}:/in:ro",
            SINGULARITY_BINDPATH=f",{data}:/in:ro,",
        )
        proc = subprocess.run(
            [str(run_dir / "sh"), "-c", script], capture_output=True, text=True, env=env, cwd="/"
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["bound", "ro", "1"]
    finally:
        for path in extra.values():
            path.unlink(missing_ok=True)


MENU_CLIENT = """
import json, sys
import xdg.Menu

def walk(menu):
    out = []
    for item in menu.getEntries():
        if isinstance(item, xdg.Menu.Menu):
            title = item.Directory.DesktopEntry.getName() if item.Directory else None
            out.append({"menu": item.getName(), "title": title, "items": walk(item)})
        elif isinstance(item, xdg.Menu.MenuEntry):
            entry = item.DesktopEntry
            out.append({"exec": entry.getExec(), "terminal": entry.getTerminal()})
    return out

print(json.dumps(walk(xdg.Menu.parse())))
"""

ROOT_MENU = """<!DOCTYPE Menu PUBLIC "-//freedesktop//DTD Menu 1.0//EN"
 "http://www.freedesktop.org/standards/menu-spec/1.0/menu.dtd">
<Menu><Name>Applications</Name><DefaultMergeDirs/></Menu>
"""


def test_menu_entries_validate_and_show_in_a_menu_client(
    trees: dict[str, Tree], tmp_path: Path
) -> None:
    """desktop-file-validate accepts every entry; a desktop's root menu with the prefix's
    etc/xdg on XDG_CONFIG_DIRS shows Neurodesk > category folders > entries (pyxdg's menu
    parser, relative AppDir/DirectoryDir resolved); the GUI entry's Exec runs the app."""
    import json
    import shlex

    need("desktop-file-validate")
    pytest.importorskip("xdg.Menu")
    prefix = trees["in-place"].prefix
    files = [*prefix.glob("share/applications/*.desktop")]
    files += prefix.glob("share/desktop-directories/*.directory")
    proc = subprocess.run(
        ["desktop-file-validate", *map(str, files)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
    (tmp_path / "desktop" / "menus").mkdir(parents=True)
    (tmp_path / "desktop" / "menus" / "applications.menu").write_text(ROOT_MENU)
    env = dict(
        os.environ,
        XDG_CONFIG_DIRS=f"{tmp_path / 'desktop'}:{prefix / 'etc/xdg'}",
        XDG_CONFIG_HOME=str(tmp_path / "none"),
        XDG_DATA_DIRS=str(tmp_path / "none"),
        XDG_DATA_HOME=str(tmp_path / "none"),
        XDG_MENU_PREFIX="",
    )
    proc = subprocess.run(
        [sys.executable, "-c", MENU_CLIENT], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    [top] = json.loads(proc.stdout)
    assert (top["menu"], top["title"]) == ("Neurodesk", "Neurodesk")
    folders = {f["title"]: f["items"] for f in top["items"]}
    assert set(folders) == {"data organisation", "image registration", "visualization"}
    assert all(folders.values())
    gui = [e for e in folders["visualization"] if not e["terminal"]]
    assert len(gui) == 1
    proc = subprocess.run([*shlex.split(gui[0]["exec"]), "x"], capture_output=True, text=True)
    assert proc.stdout == "viewer x\n", proc.stderr
    terminal = [e for e in folders["data organisation"] if e["terminal"]]
    assert terminal[0]["exec"].endswith(f"/containers/{trees['in-place'].dcm2niix.id}/terminal")
