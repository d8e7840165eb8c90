"""The lock file format: versioned, validated, one clear line for anything that is not one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurodesk.errors import ValidationError
from neurodesk.paths import Paths
from neurodesk.repro import lockfile
from neurodesk.repro.lockfile import LockedSource, LockedTool, LockFile, load_lock
from neurodesk.repro.reference import Reference, best_reference, remember_reference
from tests.conftest import assert_one_line_error, run_cli

DIGEST = "sha256:" + "ab" * 32


def tool(**changes: object) -> LockedTool:
    data: dict[str, object] = {
        "name": "dcm2niix",
        "version": "1.0.20220720",
        "builddate": "20261121",
        "id": "dcm2niix_1.0.20220720_20261121",
        "digest": DIGEST,
        "reference": f"reg.lab:5000/nd/dcm2niix_1.0.20220720:20261121@{DIGEST}",
        "source": LockedSource(kind="registry", location="reg.lab:5000/nd", name="lab"),
    }
    data.update(changes)
    return LockedTool.model_validate(data)


def test_a_lock_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "neurodesk.lock"
    LockFile.new([tool()]).save(path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == "neurodesk.lock/1"
    assert load_lock(path).tools == [tool()]


def test_an_older_schema_is_converted_before_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend the current format is 2 and version 1 lacked "neurodesk": the converter adds it.
    def one_to_two(data: dict[str, object]) -> dict[str, object]:
        return {**data, "neurodesk": "old"}

    monkeypatch.setattr(lockfile, "CURRENT", 2)
    monkeypatch.setattr(lockfile, "CONVERTERS", {1: one_to_two})
    path = tmp_path / "old.lock"
    old = json.loads(LockFile.new([tool()]).to_text())
    del old["neurodesk"]
    path.write_text(json.dumps(old))
    loaded = load_lock(path)
    assert loaded.neurodesk == "old"
    assert loaded.schema_version == "neurodesk.lock/2"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("hello", "is not a neurodesk lock file (not JSON)"),
        ("[1, 2]", "not a JSON object"),
        ('{"schema_version": "something/1", "tools": []}', "is not a neurodesk lock file"),
        ('{"schema_version": "neurodesk.lock/99", "tools": []}', "reads up to 1"),
    ],
)
def test_a_file_that_is_not_a_lock_is_refused(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "x.lock"
    path.write_text(text)
    with pytest.raises(ValidationError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_lock(path)


def test_a_bad_digest_in_a_lock_names_its_key(tmp_path: Path) -> None:
    data = json.loads(LockFile.new([tool()]).to_text())
    data["tools"][0]["digest"] = "sha256:1234"
    path = tmp_path / "bad.lock"
    path.write_text(json.dumps(data))
    with pytest.raises(ValidationError) as caught:
        load_lock(path)
    assert "tools[0].digest" in str(caught.value)


def test_references_parse_and_the_best_known_one_is_remembered(tmp_path: Path) -> None:
    registry = f"127.0.0.1:5000/lab/tiny_1.0:20260101@{DIGEST}"
    parsed = Reference.parse(registry)
    assert (parsed.location, parsed.repo, parsed.tag) == (
        "127.0.0.1:5000/lab",
        "tiny_1.0",
        "20260101",
    )
    assert str(parsed) == registry
    assert Reference.parse(f"tiny_1.0_20260101@{DIGEST}").id == "tiny_1.0_20260101"
    paths = Paths(tmp_path)
    assert best_reference(paths, "tiny_1.0_20260101", DIGEST) == f"tiny_1.0_20260101@{DIGEST}"
    remember_reference(paths, registry)
    assert best_reference(paths, "tiny_1.0_20260101", DIGEST) == registry
    with pytest.raises(ValidationError):
        Reference.parse("tiny@sha256:12")


def test_cli_lock_errors_are_one_line(home: Path, tmp_path: Path) -> None:
    assert_one_line_error(run_cli(["lock", "-o", str(tmp_path / "l")], home), "nothing to lock")
    assert_one_line_error(run_cli(["lock", "nosuch"], home), "no image named 'nosuch'")
    bad = tmp_path / "not.lock"
    bad.write_text("name: dcm2niix\n")
    assert_one_line_error(run_cli(["sync", str(bad)], home), "is not a neurodesk lock file")
    assert_one_line_error(run_cli(["sync", str(tmp_path / "missing")], home), "does not exist")
    assert not (tmp_path / "l").exists()


def test_generated_by_names_a_resolvable_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neurodesk.jobs.batch import Batch, BatchSpec
    from neurodesk.jobs.derivative import generated_by
    from neurodesk.jobs.provenance import ImageInfo

    monkeypatch.setenv("NEURODESK_HOME", str(tmp_path))
    image = ImageInfo(
        name="tool", version="1.2", builddate="20260101", id="tool_1.2_20260101", digest=DIGEST
    )
    spec = BatchSpec(
        id="b", created="now", image=image, command=["tool"], source="glob x",
        output_root=str(tmp_path), tasks=[],
    )  # fmt: skip
    batch = Batch(tmp_path / "b", spec)
    # Nothing known about registries: the catalog id plus the digest (never name_version@...).
    assert generated_by(batch)["Container"]["URI"] == f"tool_1.2_20260101@{DIGEST}"
    assert Reference.parse(generated_by(batch)["Container"]["URI"]).digest == DIGEST
    # Once a registry is known to serve the digest (lock or sync saw it), that reference.
    served = f"reg.lab:5000/nd/tool_1.2:20260101@{DIGEST}"
    remember_reference(Paths(tmp_path), served)
    assert generated_by(batch)["Container"]["URI"] == served


def test_default_set_is_what_is_installed_or_loaded(tmp_path: Path) -> None:
    from neurodesk.repro.lock import installed_or_loaded

    def install(prefix: Path, name: str, version: str) -> Path:
        directory = prefix / "containers" / f"{name}_{version}_20260101"
        (directory / "bin").mkdir(parents=True)
        image = {"name": name, "version": version, "builddate": "20260101"}
        (directory / "install.json").write_text(json.dumps({"image": image, "files": []}))
        return directory / "bin"

    paths = Paths(tmp_path / "home")
    install(paths.installs, "dcm2niix", "1.0")
    site_bin = install(tmp_path / "site", "mrtrix3", "3.0.4")  # another prefix, loaded
    found = installed_or_loaded(paths, path_env=f"/usr/bin:{site_bin}:/bin")
    assert [(s.spec, s.why) for s in found] == [
        ("mrtrix3/3.0.4/20260101", "loaded"),
        ("dcm2niix/1.0/20260101", "installed"),
    ]
