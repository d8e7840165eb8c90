"""Each build keeps its own log, even two builds of one image started in the same second."""

from __future__ import annotations

from pathlib import Path

from neurodesk.build.build import new_log


def test_builds_in_the_same_second_get_logs_of_their_own(tmp_path: Path) -> None:
    logs = tmp_path / "logs" / "build"
    first = new_log(logs, "dcm2niix_1.0_20260101", "20260101T120000")
    first.write_text("first build\n")
    second = new_log(logs, "dcm2niix_1.0_20260101", "20260101T120000")
    third = new_log(logs, "dcm2niix_1.0_20260101", "20260101T120000")
    assert first.name == "dcm2niix_1.0_20260101.20260101T120000.log"
    assert second.name == "dcm2niix_1.0_20260101.20260101T120000-2.log"
    assert third.name == "dcm2niix_1.0_20260101.20260101T120000-3.log"
    assert first.read_text() == "first build\n"  # never truncated by a later build
    assert second.exists() and second.read_text() == ""
    # another second or another image starts a name of its own
    assert new_log(logs, "dcm2niix_1.0_20260101", "20260101T120001").name.endswith("T120001.log")
    assert new_log(logs, "other_1_20260101", "20260101T120000").name.endswith("T120000.log")
