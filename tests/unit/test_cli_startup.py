"""A fast command line (issue 16): `neurodesk search`/`list`/`info` import only what they use,
and the caches that make them fast (store offers, info settings) follow what they summarise."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from neurodesk.catalog.collect import build_catalog, tree_size
from neurodesk.cli import output
from neurodesk.cli.output import (
    PIPE_WIDTH,
    plain_table,
    print_text,
    rich_table,
    terminal_table,
)
from neurodesk.paths import Paths
from neurodesk.store.store import Store
from tests.conftest import REPO, assert_one_line_error, run_cli
from tests.upstream_data import write_apps_json

# Never needed to list or search the catalog once its caches are warm (each costs 10-150 ms).
HEAVY = {
    "pydantic",
    "httpx",
    "jinja2",
    "filelock",
    "neurodesk.store.store",
    "neurodesk.recipe.model",
    "neurodesk.sources.config",
}
# Also not needed when the output is a pipe (a plain table or JSON) or for --version.
PRINTING = {"rich", "yaml", "platformdirs", "importlib.metadata"}


def _fill(commands: list[str]) -> Callable[[Path], dict[str, Any]]:
    def fill(rootfs: Path) -> dict[str, Any]:
        (rootfs / "opt" / "bin").mkdir(parents=True)
        for name in commands:
            (rootfs / "opt" / "bin" / name).write_text("#!/bin/sh\n")
            (rootfs / "opt" / "bin" / name).chmod(0o755)
        (rootfs / "build.yaml").write_text("categories: [spine]\n")
        return {"config": {"Env": ["DEPLOY_PATH=/opt/bin"], "Labels": {}}}

    return fill


def add_image(home: Path, name: str, commands: list[str]) -> None:
    digest = "sha256:" + name.encode().hex().ljust(64, "0")
    Store(home / "store").import_rootfs(digest, _fill(commands), name, "1.0", "20240101", "test")


def catalog_home(home: Path) -> Path:
    (home / "cache" / "upstream").mkdir(parents=True)
    write_apps_json(home / "cache" / "upstream" / "apps.json", tools=12)
    add_image(home, "mytool", ["bet", "flirt"])
    return home


def imported_by(home: Path, args: list[str]) -> set[str]:
    """Top modules (and neurodesk's) that ``neurodesk ARGS`` imports, output to a pipe."""
    probe = (
        "import sys\n"
        "from neurodesk.cli.main import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "finally:\n"
        "    full = ('neurodesk.', 'importlib.metadata')\n"
        "    names = {m if m.startswith(full) else m.split('.')[0] for m in sys.modules}\n"
        "    sys.stderr.write('MODULES ' + ' '.join(sorted(names)) + '\\n')\n"
    )
    env = dict(os.environ, NEURODESK_HOME=str(home), NEURODESK_RECIPES=str(REPO / "recipes"))
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES "))
    return set(line.split()[1:])


def test_catalog_commands_import_only_what_they_use(home: Path) -> None:
    catalog_home(home)
    (home / "recipes").mkdir()
    (home / "recipes" / "fsl.yaml").write_text("structured_readme:\n  citation: Smith 2004\n")
    (home / "config.yaml").write_text(f"recipe_url: file://{home}/recipes/{{name}}.yaml\n")
    warm = run_cli(["info", "fsl"], home)  # fills the caches (recipes, store, settings)
    assert warm.returncode == 0, warm.stderr
    version = imported_by(home, ["--version"])
    assert version & (HEAVY | PRINTING) == set()
    assert not [m for m in version if m.startswith(("neurodesk.catalog", "neurodesk.store"))]
    for args in (["search", "fsl"], ["list"], ["list", "--json"], ["search", "bet", "--json"]):
        assert imported_by(home, args) & (HEAVY | PRINTING) == set(), args
    assert "Smith 2004" in warm.stdout
    assert imported_by(home, ["info", "fsl"]) & HEAVY == set()


def test_version_is_the_installed_distributions(home: Path) -> None:
    from importlib.metadata import version

    import neurodesk

    assert neurodesk.__version__ == version("neurodesk")
    proc = run_cli(["--version"], home)
    assert proc.stdout == f"neurodesk, version {version('neurodesk')}\n"


def test_search_follows_the_store_through_its_cache(home: Path) -> None:
    catalog_home(home)
    paths = Paths(home)
    assert build_catalog(paths).tools["mytool"].commands == ["bet", "flirt"]
    assert (paths.cache / "store-offers.json").is_file()
    # 'info' measures the image on disk once, then reads the size from the cache
    rootfs = Store(paths.store).resolve("mytool").rootfs
    for _ in range(2):
        detail = build_catalog(paths, detail=True, only="mytool").tools["mytool"]
        assert [o.size for o in detail.offers] == [tree_size(rootfs)]
    assert '"tree_size"' in (paths.cache / "store-offers.json").read_text()
    add_image(home, "newtool", ["newcmd"])
    tools = build_catalog(paths).tools
    assert tools["newtool"].sources == ["store"] and tools["newtool"].commands == ["newcmd"]
    Store(paths.store).remove("newtool")
    assert "newtool" not in build_catalog(paths).tools
    # An image used in place (a CVMFS tree) can change under the store: new commands show.
    sandbox = home / "tree" / "vis.simg"
    (sandbox / "opt" / "bin").mkdir(parents=True)
    (sandbox / "opt" / "bin" / "view").write_text("#!/bin/sh\n")
    (sandbox / "opt" / "bin" / "view").chmod(0o755)
    env = {"DEPLOY_PATH": "/opt/bin"}
    Store(paths.store).register_sandbox(sandbox, "vis", "2.0", "20240202", env)
    assert build_catalog(paths).tools["vis"].commands == ["view"]
    (sandbox / "opt" / "bin" / "edit").write_text("#!/bin/sh\n")
    (sandbox / "opt" / "bin" / "edit").chmod(0o755)
    assert build_catalog(paths).tools["vis"].commands == ["edit", "view"]
    # A cache that is not ours (another version, damaged) is read again from the store.
    cache = paths.cache / "store-offers.json"
    damaged = json.loads(cache.read_text())
    for entry in damaged["entries"]:
        del entry["offer"]["name"]
    cache.write_text(json.dumps(damaged))
    assert build_catalog(paths).tools["mytool"].commands == ["bet", "flirt"]


def test_info_follows_config_changes(home: Path) -> None:
    catalog_home(home)
    config = home / "config.yaml"

    def channels() -> list[str]:
        proc = run_cli(["info", "fsl", "--json"], home)
        assert proc.returncode == 0, proc.stderr
        return list(json.loads(proc.stdout)["channels"])

    assert "cvmfs" in channels()
    config.write_text("defaults:\n  cvmfs: false\n")
    assert "cvmfs" not in channels()
    config.write_text("defaults:\n  nosuchchannel: false\n")
    assert_one_line_error(run_cli(["info", "fsl"], home), "nosuchchannel")
    config.unlink()
    assert "cvmfs" in channels()


def _rich_pipe(columns: list[str], rows: list[list[str]]) -> str:
    """What rich prints for the table to a pipe (no terminal), as print_table did before."""
    out = io.StringIO()
    Console(file=out, width=PIPE_WIDTH, highlight=False).print(rich_table(None, columns, rows))
    return out.getvalue()


_cell = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12)


@settings(max_examples=40, deadline=None)
@given(
    columns=st.lists(_cell.filter(bool), min_size=1, max_size=4),
    rows=st.lists(st.lists(_cell, min_size=4, max_size=4), max_size=5),
)
def test_plain_table_is_what_rich_prints_to_a_pipe(
    columns: list[str], rows: list[list[str]]
) -> None:
    rows = [row[: len(columns)] for row in rows]
    plain = plain_table(columns, rows)
    cells = [*columns, *(c for row in rows for c in row)]
    if any("[" in c for c in columns) or any("\\" in c for c in cells):
        assert plain is None  # markup or escapes to rich: only rich renders them
    else:
        assert plain == _rich_pipe(columns, rows)


def test_plain_table_leaves_wide_and_multiline_cells_to_rich() -> None:
    assert plain_table(["A"], [["日本"]]) is None
    assert plain_table(["A"], [["x\ny"]]) is None
    assert plain_table(["A"], [["café…"]]) is None


@settings(max_examples=80, deadline=None)
@given(
    text=st.text(max_size=40),
    markup=st.booleans(),
    style=st.sampled_from([None, "bold"]),
    terminal=st.booleans(),
)
def test_print_text_is_what_rich_prints(
    text: str, markup: bool, style: str | None, terminal: bool
) -> None:
    env = {"TTY_COMPATIBLE": "1" if terminal else "0", "TERM": "xterm"}
    old = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        ours = io.StringIO()
        # a console made now (rich fixes its colours when made), for what print_text leaves to it
        fresh = output._LazyConsole(highlight=False)
        with contextlib.redirect_stdout(ours), mock.patch.object(output, "console", fresh):
            print_text(text, markup=markup, style=style)
        theirs = io.StringIO()
        rich = Console(file=theirs, width=80, highlight=False, force_terminal=terminal)
        rich.print(text, soft_wrap=True, markup=markup, style=style)
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    assert ours.getvalue() == theirs.getvalue()


def test_print_text_writes_plain_lines_itself() -> None:
    for plain in ("fsl — FSL tools", "docs:       https://fsl.example/docs/", ""):
        ours = io.StringIO()
        with contextlib.redirect_stdout(ours):
            print_text(plain)
        assert ours.getvalue() == plain + "\n"


_words = st.lists(st.text("abcdefghij0123456789-,.", min_size=1, max_size=14), max_size=6)
_name = st.text("abcdefghij", min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(_name, _words.map(" ".join), _words.map(" ".join)), max_size=6),
    width=st.integers(min_value=40, max_value=140),  # names (<= 8) never fold from 40 on
)
def test_terminal_table_fits_the_width_and_cuts_nothing(
    rows: list[tuple[str, str, str]], width: int
) -> None:
    out = terminal_table(["NAME", "VERSIONS", "DESCRIPTION"], rows, width, bold=False)
    assert out is not None
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines), out
    rule = next(i for i, line in enumerate(lines) if line.startswith("\u2501"))
    assert set(lines[rule]) == {"\u2501", "\u2547"}
    bars = [i for i, c in enumerate(lines[0]) if c == "\u2503"]
    edges = list(zip([0, *(b + 1 for b in bars)], [*bars, len(lines[0])], strict=True))
    body = lines[rule + 1 :]
    starts = [i for i, line in enumerate(body) if line[edges[0][0] : edges[0][1]].strip()]
    assert len(starts) == len(rows)
    for row, start, end in zip(rows, starts, [*starts[1:], len(body)][: len(rows)], strict=True):
        for cell, (left, right) in zip(row, edges, strict=True):
            # read down the column: the cell's text, folded at spaces or inside long words
            pieces = [line[left:right] for line in body[start:end]]
            assert "".join(pieces).replace(" ", "") == cell.replace(" ", "")


def test_terminal_table_is_the_piped_table_in_bold_when_it_fits() -> None:
    rows = [["fsl", "6.0.7.4", "FSL tools"], ["afni", "24.1.02", "AFNI…"]]
    wide = terminal_table(["NAME", "VERSION", "DESCRIPTION"], rows, 200, bold=False)
    rule = "\u2501" * 6 + "\u2547" + "\u2501" * 9 + "\u2547" + "\u2501" * 13
    assert wide == (
        " NAME \u2503 VERSION \u2503 DESCRIPTION \n"
        + rule
        + "\n fsl  \u2502 6.0.7.4 \u2502 FSL tools   \n"
        + " afni \u2502 24.1.02 \u2502 AFNI…       \n"
    )
    bold = terminal_table(["NAME"], [["fsl"]], 80)
    assert bold is not None and bold.startswith("\x1b[1m NAME \x1b[0m\n")
