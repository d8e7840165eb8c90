"""Bad input never gives a traceback (issue 17): one ``error:`` line, a non-zero exit, and
nothing half-made left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, run_cli


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    root = tmp_path / "sandbox"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "bin").mkdir()
    tool = root / "usr" / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    return root


@pytest.mark.parametrize("home_is", ["/etc/passwd", "/etc/passwd/below"])
@pytest.mark.parametrize("command", [["images"], ["gc"], ["list", "--local"], ["du"]])
def test_a_home_that_is_a_file_is_refused(home_is: str, command: list[str]) -> None:
    proc = run_cli(command, Path(home_is))
    assert_one_line_error(proc, "NEURODESK_HOME", "not a directory")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"sources: \xff\xfe\n", "not UTF-8"),
        (b"timeout: [1]\nsources: {a: 1}\n", "sources"),
        (b"- 1\n- 2\n", "mapping"),
        (b"sources: [1]\n", "sources[0]"),
        (b"max_unpack_size: lots\n", "max_unpack_size"),
        (b"low_speed_limit: fast\n", "low_speed_limit"),
        (b"sources: [{name: [1], kind: tree, mirrors: 5}]\n", "sources[0].name"),
        (b"!!python/object/apply:os.system [echo owned]\n", "YAML"),
    ],
)
def test_a_bad_config_is_one_line(home: Path, content: bytes, needle: str) -> None:
    (home / "config.yaml").write_bytes(content)
    proc = run_cli(["install", "anything"], home)
    assert_one_line_error(proc, needle)
    assert "owned" not in proc.stdout


@pytest.mark.parametrize("name", ["[/]", "[bold red]x[/]"])
def test_rich_markup_in_names_is_printed_as_text(home: Path, sandbox: Path, name: str) -> None:
    for command in (["install", name], ["info", name], ["verify", name], ["rm", name]):
        proc = run_cli(command, home)
        assert_one_line_error(proc)
    proc = run_cli(["import", str(sandbox), "--name", name, "--version", "1"], home)
    assert_one_line_error(proc, name.split("/")[0])


def test_a_name_in_markup_that_is_valid_lists_fine(home: Path, sandbox: Path) -> None:
    proc = run_cli(["import", str(sandbox), "--name", "[red]x", "--version", "1"], home)
    assert proc.returncode == 0, proc.stderr
    listing = run_cli(["images"], home)
    assert listing.returncode == 0 and "[red]x" in listing.stdout


@pytest.mark.parametrize("field", ["--name", "--version", "--builddate"])
def test_names_over_255_bytes_are_one_line(home: Path, sandbox: Path, field: str) -> None:
    args = {"--name": "tool", "--version": "1", "--builddate": "20260101"}
    args[field] = "é" * 150  # 300 bytes
    flat = [x for pair in args.items() for x in pair]
    proc = run_cli(["import", str(sandbox), *flat], home)
    assert_one_line_error(proc, "longer than")
    assert not (home / "store" / "refs").exists() or not any((home / "store" / "refs").iterdir())
    assert_one_line_error(run_cli(["install", "a" * 300], home))
    assert_one_line_error(run_cli(["exec", "tool/" + "b" * 300, "--", "true"], home))


@pytest.mark.parametrize("output", ["/etc/passwd", "/etc/passwd/below"])
def test_batch_output_that_is_a_file_leaves_no_batch(
    home: Path, sandbox: Path, output: str
) -> None:
    assert (
        run_cli(["import", str(sandbox), "--name", "tool", "--version", "1"], home).returncode == 0
    )
    proc = run_cli(
        ["batch", "tool", "--glob", f"{sandbox}/usr/bin/*", "--output", output, "--", "true"],
        home,
    )
    assert_one_line_error(proc, output, "not a directory")
    assert not (home / "batches").exists() or not any((home / "batches").iterdir())


def test_paths_that_cannot_be_directories_are_one_line(home: Path, sandbox: Path) -> None:
    assert (
        run_cli(["import", str(sandbox), "--name", "tool", "--version", "1"], home).returncode == 0
    )
    assert_one_line_error(run_cli(["publish", "tool", "--tree", "/etc/passwd/t"], home), "tree")
    assert_one_line_error(run_cli(["verify", "/etc/passwd"], home), "container directory")
    assert_one_line_error(run_cli(["verify", "--tree", str(sandbox)], home), "containers/")
