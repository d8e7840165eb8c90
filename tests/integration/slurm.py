"""A real single-node SLURM cluster for integration tests (munged, slurmctld, slurmd).

Usage: in any test module under tests/integration (``conftest.py`` registers the fixture)::

    def test_something(slurm_cluster: SlurmCluster) -> None:
        job = slurm_cluster.sbatch("--wrap", "hostname")          # the job id, as a string
        states = slurm_cluster.wait(job)                          # {"123": "COMPLETED"}
        assert set(states.values()) == {"COMPLETED"}
        subprocess.run(["squeue"], env=slurm_cluster.env)         # any client: pass .env

``slurm_cluster.env`` is ``os.environ`` plus ``SLURM_CONF`` (the generated slurm.conf); every
SLURM client (sbatch, squeue, scontrol, scancel, sinfo) must run with it. There is no ``sacct``
(that needs slurmdbd): ``wait`` polls ``scontrol show job``, which keeps finished jobs for an
hour here (MinJobAge). The one node is ``localhost`` with 2 CPUs in partition ``debug``; jobs
run as root on this machine, so they see the same filesystem as the test.

Everything (munge key and socket, state, spool, logs, pid files) lives in a private temp dir;
ports are free loopback ports, so several clusters can run side by side. Teardown cancels the
jobs, stops the daemons and removes the directory. Needs root and the Debian packages
``slurm-wlm`` and ``munge``; the fixture skips (fails in CI) when they are missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Job states after which a job will not run again (see squeue(1), "JOB STATE CODES").
FINAL_STATES = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
}

SLURM_CONF = """\
ClusterName={cluster}
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
MaxArraySize=10001
SchedulerParameters=sched_interval=1
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class SlurmCluster:
    """A running cluster: ``env`` for clients, ``conf`` its slurm.conf, ``root`` its files."""

    root: Path
    conf: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a SLURM client (``sinfo``, ``squeue`` ...) against this cluster."""
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, check=check, timeout=60
        )

    def sbatch(self, *args: str) -> str:
        """Submit with ``sbatch --parsable ARGS``; returns the job id."""
        out = self.run("sbatch", "--parsable", *args).stdout.strip()
        return out.split(";")[0]

    def states(self, job_id: str) -> dict[str, str]:
        """``{job or array task id: state}`` for a job (every task of an array job)."""
        proc = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        states: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            task = fields.get("ArrayTaskId")
            key = f"{fields.get('ArrayJobId')}_{task}" if task else fields.get("JobId", "?")
            states[key] = fields.get("JobState", "UNKNOWN")
        return states

    def wait(self, job_id: str, timeout: float = 120) -> dict[str, str]:
        """Block until every task of ``job_id`` reached a final state; return the states."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states(job_id)
            # a pending array record ("123_[4-9]") is later replaced by one line per task
            done = all(s in FINAL_STATES for s in states.values())
            if states and done and not any("[" in key for key in states):
                return states
            if time.monotonic() > deadline:
                raise TimeoutError(f"SLURM job {job_id} not finished after {timeout} s: {states}")
            time.sleep(0.3)

    def log_tail(self) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.root / "log" / name
            if path.is_file():
                parts.append(f"--- {name}\n" + "\n".join(path.read_text().splitlines()[-15:]))
        return "\n".join(parts)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 2048


def _start(
    cluster: SlurmCluster, name: str, argv: list[str], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    log = (cluster.root / "log" / f"{name}.out").open("wb")
    proc = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    cluster.processes[name] = proc
    return proc


def _wait_for(what: str, check: object, cluster: SlurmCluster, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        for name, proc in cluster.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode})\n{cluster.log_tail()}")
        time.sleep(0.2)
    raise TimeoutError(
        f"SLURM test cluster: {what} not reached in {timeout} s\n{cluster.log_tail()}"
    )


def start_cluster(root: Path) -> SlurmCluster:
    """Start munged, slurmctld and slurmd with everything under ``root``."""
    for sub in ("munge", "state", "spool", "run", "log"):
        (root / sub).mkdir(parents=True)
    # munged refuses a socket directory others can write to; clients need to reach it (755)
    root.chmod(0o755)
    (root / "munge").chmod(0o755)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    socket_path = root / "munge" / "munge.socket"
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            cluster=f"ndtest{os.getpid()}",
            ctld_port=free_port(),
            slurmd_port=free_port(),
            munge_socket=socket_path,
            root=root,
            memory=max(512, int(machine_memory_mb() * 0.9)),
        )
    )
    env = dict(os.environ, SLURM_CONF=str(conf))
    cluster = SlurmCluster(root=root, conf=conf, env=env)
    try:
        _start(
            cluster,
            "munged",
            [
                "munged",
                "--foreground",
                "--force",
                f"--socket={socket_path}",
                f"--key-file={key}",
                f"--pid-file={root / 'run' / 'munged.pid'}",
                f"--log-file={root / 'log' / 'munged.log'}",
                f"--seed-file={root / 'munge' / 'munged.seed'}",
            ],
            env,
        )
        _wait_for("munge socket", socket_path.exists, cluster)
        _start(cluster, "slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)], env)
        _wait_for(
            "slurmctld answering",
            lambda: cluster.run("sinfo", check=False).returncode == 0,
            cluster,
        )
        _start(cluster, "slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(conf)], env)

        def idle() -> bool:
            out = cluster.run("sinfo", "-h", "-N", "-o", "%t", check=False).stdout.split()
            return out == ["idle"]

        _wait_for("node localhost idle", idle, cluster, timeout=60)
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: SlurmCluster) -> None:
    """Cancel jobs, stop the daemons (slurmd, slurmctld, munged, in that order)."""
    if "slurmctld" in cluster.processes and cluster.processes["slurmctld"].poll() is None:
        cluster.run("scancel", "--full", "--partition=debug", check=False)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not cluster.run("squeue", "-h", check=False).stdout.strip():
                break
            time.sleep(0.3)
    for name in ("slurmd", "slurmctld", "munged"):
        proc = cluster.processes.get(name)
        if proc is None or proc.poll() is not None:
            continue
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running single-node SLURM cluster; see the module docstring."""
    from tests.integration.conftest import need  # here: conftest imports this module

    need("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")
    root = Path(tempfile.mkdtemp(prefix="nd-slurm-"))
    try:
        cluster = start_cluster(root)
        try:
            yield cluster
        finally:
            stop_cluster(cluster)
    finally:
        shutil.rmtree(root, ignore_errors=True)
