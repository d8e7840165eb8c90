"""Batch inputs (BIDS, glob, list) and the placeholders filled from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurodesk.errors import NeurodeskError
from neurodesk.jobs import template
from neurodesk.jobs.batch import check_command, output_dir_for
from neurodesk.jobs.inputs import from_bids, from_glob, from_list, stem


def make_bids(root: Path, layout: dict[str, list[str]]) -> Path:
    for subject, sessions in layout.items():
        for session in sessions or [""]:
            path = root / f"sub-{subject}" / (f"ses-{session}" if session else "") / "anat"
            path.mkdir(parents=True)
            (path / "T1w.nii.gz").write_bytes(b"x")
    (root / "dataset_description.json").write_text("{}")
    return root


def test_bids_sessions_become_tasks(tmp_path: Path) -> None:
    root = make_bids(tmp_path / "ds", {"01": ["a", "b"], "02": ["a"]})
    items = from_bids(root)
    assert [i.label for i in items] == ["sub-01_ses-a", "sub-01_ses-b", "sub-02_ses-a"]
    values = items[1].values()
    assert values["subject"] == "01" and values["session"] == "b"
    assert values["input"] == str(root / "sub-01" / "ses-b")
    assert values["bids_dir"] == str(root)
    assert output_dir_for(items[1], Path("/out")) == Path("/out/sub-01/ses-b")


def test_bids_without_sessions_and_filters(tmp_path: Path) -> None:
    root = make_bids(tmp_path / "ds", {"01": [], "02": [], "03": []})
    items = from_bids(root, subjects=("sub-02", "03"))
    assert [i.label for i in items] == ["sub-02", "sub-03"]
    assert "session" not in items[0].values()
    assert output_dir_for(items[0], Path("/out")) == Path("/out/sub-02")
    with pytest.raises(NeurodeskError, match=r"no subject/session of .* matches 09"):
        from_bids(root, subjects=("09",))


def test_bids_errors(tmp_path: Path) -> None:
    with pytest.raises(NeurodeskError, match="does not exist"):
        from_bids(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NeurodeskError, match="no sub-\\* directories"):
        from_bids(tmp_path / "empty")


def test_glob_and_list(tmp_path: Path) -> None:
    for name in ("a/scan.nii.gz", "b/scan.nii.gz", "c.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    items = from_glob(str(tmp_path / "*" / "*.nii.gz"))
    assert [i.label for i in items] == ["scan.nii.gz", "scan.nii.gz.1"]  # labels stay unique
    assert items[0].values()["input_stem"] == "scan"
    with pytest.raises(NeurodeskError, match="matches no files"):
        from_glob(str(tmp_path / "*.dcm"))
    listing = tmp_path / "inputs.txt"
    listing.write_text("# scans\nc.txt\n\na/scan.nii.gz\n")
    assert [i.path for i in from_list(listing)] == [tmp_path / "c.txt", tmp_path / "a/scan.nii.gz"]
    listing.write_text("nope.txt\n")
    with pytest.raises(NeurodeskError, match=r"line 'nope\.txt'"):
        from_list(listing)


def test_stem() -> None:
    assert stem(Path("/x/sub-01_T1w.nii.gz")) == "sub-01_T1w"
    assert stem(Path("/x/scan.dcm")) == "scan"
    assert stem(Path("/x/sub-01")) == "sub-01"


def test_placeholders(tmp_path: Path) -> None:
    argv = ["tool", "-o", "{output_dir}/{input_stem}.nii", "--opt={{literal}}"]
    assert template.fields(argv) == ["output_dir", "input_stem"]
    assert template.expand(argv, {"output_dir": "/o", "input_stem": "s"})[2:] == [
        "/o/s.nii",
        "--opt={literal}",
    ]
    items = from_bids(make_bids(tmp_path / "ds", {"01": []}))
    check_command(["tool", "{subject}", "{output_dir}"], items)
    with pytest.raises(NeurodeskError, match=r"unknown placeholder \{subjct\}"):
        check_command(["tool", "{subjct}"], items)
    with pytest.raises(NeurodeskError, match=r"\{session\} has no value for input sub-01"):
        check_command(["tool", "{session}"], items)
    with pytest.raises(NeurodeskError, match="not a plain name"):
        check_command(["tool", "{input.name}"], items)
    with pytest.raises(NeurodeskError, match="literal brace"):
        check_command(["awk", "{print"], items)


def test_batch_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same definition finds the same batch; any change makes a new one."""
    from neurodesk.jobs.batch import define_batch, load_batch
    from neurodesk.store import ImageRecord

    monkeypatch.setenv("NEURODESK_HOME", str(tmp_path / "home"))
    image = ImageRecord("tool", "1.0", "20260101", "sha256:" + "ab" * 32, tmp_path / "store")
    items = from_bids(make_bids(tmp_path / "ds", {"01": [], "02": []}))
    out = tmp_path / "out"

    def define(command: list[str], **kwargs: object) -> str:
        batch = define_batch(image, command, items, source="test", output_root=out, **kwargs)
        return batch.id

    first = define(["tool", "{input}", "{output_dir}"])
    assert first.startswith("tool-")
    assert define(["tool", "{input}", "{output_dir}"]) == first
    assert define(["tool", "-v", "{input}"]) != first
    assert define(["tool", "{input}"], env={"A": "1"}) != define(["tool", "{input}"])
    assert define(["tool", "{input}"], binds=("/data",)) != define(["tool", "{input}"])
    batch = load_batch(first)
    assert [t.argv for t in batch.spec.tasks] == [
        ["tool", str(items[0].path), str(out / "sub-01")],
        ["tool", str(items[1].path), str(out / "sub-02")],
    ]
    assert batch.task_dir(1) == tmp_path / "home" / "batches" / first / "tasks" / "0001"
    assert define(["a", "{input}"], name="mine") == "mine"
    with pytest.raises(NeurodeskError, match="already exists with a different definition"):
        define(["b", "{input}"], name="mine")
    with pytest.raises(NeurodeskError, match="characters other than"):
        define(["b"], name="../escape")
