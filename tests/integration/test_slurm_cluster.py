"""The SLURM test cluster itself: a job and a job array run and report their states."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.slurm import SlurmCluster

pytestmark = pytest.mark.integration


def test_job_and_array_run(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    out = tmp_path / "out-%a.txt"
    job = slurm_cluster.sbatch(
        "--array=0-2", f"--output={out}", "--wrap", "echo task $SLURM_ARRAY_TASK_ID"
    )
    states = slurm_cluster.wait(job, timeout=60)
    assert sorted(states) == [f"{job}_{i}" for i in range(3)]
    assert set(states.values()) == {"COMPLETED"}
    assert (tmp_path / "out-1.txt").read_text() == "task 1\n"
    failing = slurm_cluster.sbatch(f"--output={tmp_path / 'f.txt'}", "--wrap", "exit 3")
    assert slurm_cluster.wait(failing) == {failing: "FAILED"}
