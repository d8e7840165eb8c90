"""``neurodesk examples test`` fails on any error cell, names it in one line, and still
renders every notebook; a file that is not a notebook is one clear line too."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tests.conftest import assert_one_line_error, run_cli


def write(path: Path, *sources: str, images: list[str] | None = None) -> None:
    book = new_notebook(cells=[new_markdown_cell(f"# {path.stem}")])
    book.cells += [new_code_cell(s) for s in sources]
    book.metadata["neurodesk"] = {"images": images or [], "kernel": "host"}
    nbformat.write(book, str(path))


def test_an_error_cell_fails_the_run_and_every_page_is_written(home: Path, tmp_path: Path) -> None:
    book = tmp_path / "book"
    book.mkdir()
    write(book / "a_good.ipynb", "x = 6 * 7", "print('answer', x)")
    write(book / "b_bad.ipynb", "y = 1", "raise ValueError('boom in cell two')", "print('never')")
    write(book / "c_needs_image.ipynb", "1", images=["fsl"])
    site = tmp_path / "site"
    proc = run_cli(["examples", "test", str(book), "--html", str(site)], home)
    assert_one_line_error(proc, "1 notebook(s) failed: b_bad: cell 2: ValueError: boom in cell two")
    assert (
        "skipped  c_needs_image" in proc.stderr and "image 'fsl' is not in the store" in proc.stderr
    )
    assert "answer 42" in (site / "a_good.html").read_text()
    bad_page = (site / "b_bad.html").read_text()
    assert "boom in cell two" in bad_page and "never" in bad_page  # source shown, not run
    assert all((site / f"{n}.html").is_file() for n in ("a_good", "b_bad", "c_needs_image"))
    listed = run_cli(["examples", "list", str(book), "--json"], home)
    assert [e["name"] for e in json.loads(listed.stdout)] == ["a_good", "b_bad", "c_needs_image"]


def test_bad_examples_input_is_one_line(home: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.ipynb").write_text("{not json")
    assert_one_line_error(run_cli(["examples", "test", str(tmp_path)], home), "is not a notebook")
    assert_one_line_error(run_cli(["examples", "list", str(tmp_path / "none")], home),
                          "no examples directory")  # fmt: skip
