"""A plan's command line holds every bind; dropping, where the task runs, the words of those
whose source is missing there gives exactly the runtime's own command line for that host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from neurodesk.jobs import hotpath
from neurodesk.jobs.plan import every_bind, planned_binds
from neurodesk.runtime.apptainer import apptainer_argv
from neurodesk.runtime.bwrap import bwrap_argv
from neurodesk.runtime.spec import Bind, RunSpec


def bwrap(spec: RunSpec) -> list[str]:
    return bwrap_argv(spec, program="bwrap")


def apptainer(spec: RunSpec) -> list[str]:
    return apptainer_argv(spec, "apptainer")


RUNTIMES: dict[str, Callable[[RunSpec], list[str]]] = {"bwrap": bwrap, "apptainer": apptainer}


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_dropping_missing_binds_gives_the_runtimes_own_command_line(
    tmp_path: Path, runtime: str
) -> None:
    rootfs = tmp_path / "rootfs"
    for name in ("usr/bin", "opt/tool", "home"):
        (rootfs / name).mkdir(parents=True)
    here, later = tmp_path / "here", tmp_path / "later"
    here.mkdir()
    spec = RunSpec(
        rootfs=rootfs,
        argv=["tool", "--bind", str(later), "/scratch"],  # the same words in the argv
        cwd="/",
        binds=[Bind(str(here), "/data"), Bind(str(later), "/scratch", readonly=True)],
        env={"HOME": "/home/u"},
    )
    argv_of = RUNTIMES[runtime]
    full = argv_of(every_bind(spec))
    binds = planned_binds(spec, runtime, full, full)
    assert binds is not None and [b["source"] for b in binds] == [str(here), str(later)]
    plan: Any = {"binds": binds}

    def on_the_node() -> list[str]:
        drop, runtime_drop = hotpath.missing_binds(plan)
        assert drop == runtime_drop
        return [word for i, word in enumerate(full) if i not in drop]

    # at submission "later" is missing, so the runtime itself would leave it out ...
    assert argv_of(spec) != full
    assert on_the_node() == argv_of(spec)
    # ... but on the node it exists: bound, the same command line the runtime makes there
    later.mkdir()
    assert on_the_node() == argv_of(spec) == full
    # and a source gone on the node is left out
    here.rmdir()
    assert on_the_node() == argv_of(spec) != full
