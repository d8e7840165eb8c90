"""The tools panel's data and the desktop session's menu, without a server or a display."""

from __future__ import annotations

import json
import shlex
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from neurodesk.catalog.collect import Offer, merge
from neurodesk.desktop import session, xmenu
from neurodesk.desktop.catalog import citation_of, panel_tools
from neurodesk.desktop.labels import category_label
from neurodesk.install.installer import install_image
from neurodesk.paths import Paths
from neurodesk.store import ImageRecord
from tests.unit.test_desktop import add_image, add_recipe


@pytest.mark.parametrize(
    ("category", "label"),
    [
        ("bids apps", "BIDS apps"),
        ("cryo EM", "Cryo EM"),
        ("data organisation", "Data organisation"),
        ("diffusion imaging", "Diffusion imaging"),
        ("visualization", "Visualization"),
    ],
)
def test_category_labels(category: str, label: str) -> None:
    assert category_label(category) == label


def test_citation_is_found_in_a_readme() -> None:
    readme = "## dcm2niix/1\n\nConverts.\n\nCitation: Li X, Rorden C (2016).\nJ Neurosci Methods.\n"
    assert citation_of(readme) == "Li X, Rorden C (2016). J Neurosci Methods."
    assert (
        citation_of("## Citation\n\nSmith S (2004). NeuroImage.\n") == "Smith S (2004). NeuroImage."
    )
    assert citation_of("nothing to cite here") == ""


def _tool_image(home: Path, name: str, categories: list[str], **extra: object) -> ImageRecord:
    record = add_image(home, name, "1.0", env={"DEPLOY_BINS": name})
    data = {"name": name, "categories": categories, **extra}
    (record.rootfs / "build.yaml").write_text(json.dumps(data))
    (record.rootfs / "usr/bin" / name).write_text("#!/bin/sh\n")
    (record.rootfs / "usr/bin" / name).chmod(0o755)
    return record


def test_one_entry_per_tool_with_every_version_and_the_catalogs_facts(
    home: Path, tmp_path: Path
) -> None:
    recipes = tmp_path / "recipes"
    add_recipe(recipes, "mrtrix3", "3.0.3", ["diffusion imaging", "visualization"])
    record = _tool_image(home, "mrtrix3", ["diffusion imaging", "visualization"])
    install_image(record, Paths(home).installs)
    _tool_image(home, "xdemo", ["visualization"], draft=True)
    offers = [
        Offer(
            "mrtrix3",
            "3.0.3",
            "",
            "recipes",
            ["diffusion imaging"],
            ["mrconvert"],
            "MRtrix3 does diffusion.",
            "Citation: Tournier 2019.",
            ["MPL-2.0"],
        ),
        Offer("mrtrix3", "3.0.4", "20260101", "upstream", ["diffusion imaging"]),
        Offer("fsl", "6.0.7", "20260101", "upstream", ["functional imaging"], [], "FSL."),
    ]
    tools = {t.name: t for t in panel_tools(Paths(home), merge(offers), recipes=recipes)}

    mrtrix = tools["mrtrix3"]
    assert [(v.version, v.state) for v in mrtrix.versions] == [
        ("1.0", "installed"),
        ("3.0.3", "available"),
        ("3.0.4", "available"),
    ]
    assert mrtrix.description == "MRtrix3 does diffusion." and mrtrix.licenses == ["MPL-2.0"]
    assert mrtrix.citation == "Tournier 2019."
    assert mrtrix.sources == ["recipes", "upstream"]
    assert mrtrix.categories == ["diffusion imaging", "visualization"]
    assert mrtrix.to_json()["category_labels"] == ["Diffusion imaging", "Visualization"]
    assert tools["fsl"].versions[0].state == "available"  # only the upstream catalog has it
    assert tools["xdemo"].draft and not mrtrix.draft  # a test image is marked, to be hidden


def test_menu_from_a_real_install(home: Path) -> None:
    gui = [{"name": "viewGUI", "exec": "view --flag 2"}]
    record = _tool_image(home, "viewer", ["bids apps", "visualization"], gui_apps=gui)
    (record.rootfs / "usr/bin/view").write_text("#!/bin/sh\n")
    (record.rootfs / "usr/bin/view").chmod(0o755)
    install_image(record, Paths(home).installs)

    folders = xmenu.read_menu(Paths(home).installs)

    assert [f.title for f in folders] == ["BIDS apps", "Visualization"]
    names = {e.name: e for e in folders[1].entries}
    assert set(names) == {"viewer 1.0", "view 1.0"}
    assert names["viewer 1.0"].terminal and not names["view 1.0"].terminal
    values = xmenu.read_desktop_file(names["view 1.0"].path)
    argv = xmenu.exec_argv(values["Exec"])
    assert argv[0].endswith("/bin/view") and argv[1:] == ["--flag", "2"]

    csv = xmenu.render_jgmenu(folders, "xterm")
    assert "BIDS apps,^checkout(nd0),folder" in csv and "^tag(nd1)" in csv
    launch = shlex.join([sys.executable, "-m", "neurodesk.desktop.xmenu", "launch"])
    assert f'view 1.0,"""{launch} {names["view 1.0"].path}"""' in csv
    pipe = ET.fromstring(xmenu.render_openbox(folders, "xterm"))
    assert [m.get("label") for m in pipe.findall("menu")] == ["BIDS apps", "Visualization"]


@pytest.mark.parametrize(
    ("value", "argv"),
    [
        ('"/opt/a b/run" --x %f', ["/opt/a b/run", "--x"]),
        ('run "say \\"hi\\"" 100%%', ["run", 'say "hi"', "100%"]),
        ("run  a\tb", ["run", "a", "b"]),
    ],
)
def test_exec_values_are_parsed_per_the_specification(value: str, argv: list[str]) -> None:
    assert xmenu.exec_argv(value) == argv


def test_hostile_entry_names_stay_labels() -> None:
    entry = xmenu.Entry('x,"""; rm -rf ~\n^sep()', "", Path("/p/x.desktop"), False)
    csv = xmenu.render_jgmenu([xmenu.Folder("^tag(evil)", [entry])], "xterm")
    lines = csv.splitlines()
    assert lines[2] == "tag(evil),^checkout(nd0),folder"
    item = lines[-1]
    assert item.startswith("x '''; rm -rf ~ ^sep(),") and item.count(",") == 2 + 0
    pipe = xmenu.render_openbox([xmenu.Folder("<b>", [entry])], "xterm")
    ET.fromstring(pipe)  # well-formed whatever the names


def test_session_files(tmp_path: Path) -> None:
    files = session.write_session_files(tmp_path / "session", tmp_path / "bashrc")
    tint2 = files["tint2rc"].read_text()
    assert "button_text = Applications" in tint2 and "--csv-cmd=" in tint2
    assert f"--rcfile {tmp_path / 'bashrc'}" in tint2  # the terminal of JupyterLab's terminals
    menu = ET.parse(files["menu.xml"]).getroot()
    assert "neurodesk.desktop.xmenu openbox" in menu[0].get("execute", "")
    rc = files["rc.xml"].read_text()
    assert f"<file>{files['menu.xml']}</file>" in rc and "debian-menu.xml" not in rc


def test_session_environment_binds_the_cookie_dir_and_adds_the_menus(tmp_path: Path) -> None:
    env = session.session_env(
        {"NEURODESK_BINDPATH": "/data", "XDG_DATA_DIRS": "/usr/share"},
        ":21",
        tmp_path / "Xauthority",
        [tmp_path / "installs"],
        tmp_path / "vnc",
        tmp_path / "bashrc",
    )
    assert env["DISPLAY"] == ":21" and env["XAUTHORITY"] == str(tmp_path / "Xauthority")
    assert env["NEURODESK_BINDPATH"] == f"/data,{tmp_path / 'vnc'}"
    assert env["XDG_DATA_DIRS"] == f"{tmp_path / 'installs' / 'share'}:/usr/share"
    assert env["NEURODESK_MENU_PREFIXES"] == str(tmp_path / "installs")
