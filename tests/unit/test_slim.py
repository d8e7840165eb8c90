"""Slim images (recipe.slim): the base leaves out documentation, translations and package
caches, every rendered install step cleans up after itself, and licences stay."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from neurodesk.build.base import Distro, slim_rootfs
from neurodesk.recipe import slim
from neurodesk.recipe.load import load_recipe
from neurodesk.recipe.render_apptainer import render_apptainer
from neurodesk.recipe.render_docker import install_line, render_dockerfile

# What debootstrap or an apt install leaves: (path, kept?)
TREE: tuple[tuple[str, bool], ...] = (
    ("usr/share/doc/bash/copyright", True),
    ("usr/share/doc/bash/README.gz", False),
    ("usr/share/doc/bash/examples/loadables/hello.c", False),
    ("usr/share/doc/perl/changelog.Debian.gz", False),
    ("usr/share/man/man1/ls.1.gz", False),
    ("usr/share/man/de/man1/ls.1.gz", False),
    ("usr/share/info/coreutils.info.gz", False),
    ("usr/share/lintian/overrides/bash", False),
    ("usr/share/locale/de/LC_MESSAGES/coreutils.mo", False),
    ("usr/share/locale/fr/LC_TIME/coreutils.mo", False),
    ("usr/share/locale/locale.alias", True),
    ("usr/share/common-licenses/GPL-3", True),
    ("usr/share/i18n/locales/en_US", True),
    ("usr/share/zoneinfo/UTC", True),
    ("usr/share/libdcmtk17/dicom.dic", True),
    ("usr/bin/dcm2niix", True),
    ("var/lib/dpkg/status", True),
    ("var/lib/dpkg/status-old", False),
    ("var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", False),
    ("var/lib/apt/lists/lock", False),
    ("var/cache/apt/pkgcache.bin", False),
    ("var/cache/apt/srcpkgcache.bin", False),
    ("var/cache/apt/archives/bash_5.2.15-2+b13_amd64.deb", False),
    ("var/cache/debconf/config.dat-old", False),
    ("var/cache/debconf/config.dat", True),
    ("var/log/dpkg.log", False),
    ("var/log/bootstrap.log", False),
    ("var/log/apt/history.log", False),
)


def make_tree(root: Path) -> None:
    for rel, _kept in TREE:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
    # A link in the documentation to another package's directory (common in Debian).
    (root / "usr/share/doc/bash-doc").symlink_to("bash")


def survivors(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


def test_a_debootstrap_tree_keeps_licences_and_loses_docs_caches_and_logs(tmp_path: Path) -> None:
    make_tree(tmp_path)
    removed = slim_rootfs(tmp_path)
    left = survivors(tmp_path)
    assert left == {rel for rel, kept in TREE if kept} | {
        slim.DPKG_EXCLUDES_PATH.lstrip("/"),
        slim.APT_CONFIG_PATH.lstrip("/"),
    }
    assert removed == 1000 * sum(not kept for _rel, kept in TREE)
    # Later installs are told the same rules: dpkg filters and apt without caches.
    dpkg = (tmp_path / slim.DPKG_EXCLUDES_PATH.lstrip("/")).read_text()
    assert "path-exclude=/usr/share/doc/*\n" in dpkg
    assert dpkg.index("path-include=/usr/share/doc/*/copyright") > dpkg.index("path-exclude")
    apt = (tmp_path / slim.APT_CONFIG_PATH.lstrip("/")).read_text()
    assert 'Dir::Cache::pkgcache "";' in apt and 'Dir::Cache::srcpkgcache "";' in apt
    assert not (tmp_path / "usr/share/doc/bash-doc").is_symlink()
    # Slimming twice changes nothing more.
    assert slim_rootfs(tmp_path) == 0 and survivors(tmp_path) == left


@pytest.mark.skipif(shutil.which("find") is None, reason="needs find")
def test_the_rendered_cleanup_removes_exactly_what_the_base_rules_exclude(tmp_path: Path) -> None:
    """The shell half (find -path in every install step) and the Python half (the base) agree."""
    make_tree(tmp_path)
    usr_share = [rel for rel, _ in TREE if rel.startswith("usr/share/")]
    script = slim.apt_cleanup()[-1].replace("/usr/share", f"{tmp_path}/usr/share")
    subprocess.run(["sh", "-c", script], check=True)
    for rel in usr_share:
        assert (tmp_path / rel).exists() == (not slim.excluded("/" + rel)), rel
    assert [rel for rel in usr_share if slim.excluded("/" + rel)] == [
        rel for rel, kept in TREE if rel.startswith("usr/share/") and not kept
    ]


def test_every_apt_install_step_refreshes_lists_and_cleans_up_in_the_same_command() -> None:
    line = install_line("apt", ["dcm2niix", "pigz"])
    update, install, *cleanup = line.split(" && ")
    assert update == "apt-get update -qq"
    assert install.endswith("apt-get install -y -q --no-install-recommends dcm2niix pigz")
    assert cleanup == slim.apt_cleanup()
    assert "apt-get clean" in cleanup and any("/var/lib/apt/lists/*" in c for c in cleanup)


def test_a_later_install_directive_gets_its_own_package_lists(tmp_path: Path) -> None:
    recipe = tmp_path / "build.yaml"
    recipe.write_text(
        "name: twice\nversion: '1'\nbuild:\n  kind: neurodocker\n  base-image: debian:bookworm\n"
        "  pkg-manager: apt\n  add-default-template: false\n  directives:\n"
        "    - install: pigz\n    - run: ['echo between']\n    - install: [dcm2niix]\n"
        "deploy:\n  bins: [dcm2niix]\n"
    )
    loaded = load_recipe(recipe)
    for text in (render_dockerfile(loaded), render_apptainer(loaded)):
        steps = [line for line in text.splitlines() if "apt-get install" in line]
        assert len(steps) == 2, text
        for step in steps:
            assert step.index("apt-get update") < step.index("apt-get install")
            assert step.index("apt-get install") < step.index("rm -rf /var/lib/apt/lists/*")


def test_the_cached_base_tarball_is_named_after_the_slimming() -> None:
    # A tarball cached before this policy (debian-bookworm.tar) is never taken for a slim one.
    name = Distro("debian", "bookworm").tarball_name
    assert name != "debian-bookworm.tar" and name.startswith("debian-bookworm.")
