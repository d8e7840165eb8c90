"""How each user's server is started: local processes, systemd units, SLURM jobs, Kubernetes.

Every spawner runs the same program, ``neurodesk.hub.singleuser``: the neurodesk desktop
environment (tools panel, container kernels, terminals with modules) behind JupyterHub's login,
with the shared site tree and data read-only and the user's own home and scratch writable. This
module only turns the organiser's settings into the traits of the spawner class they chose.
"""

from __future__ import annotations

import ipaddress
import math
import shutil
import sys
from pathlib import Path
from typing import Any

from neurodesk.hub.layout import HubDir
from neurodesk.hub.settings import HubSettings, parse_size

Sections = dict[str, dict[str, Any]]

LOCAL = "jupyterhub.spawner.LocalProcessSpawner"
SYSTEMD = "systemdspawner.SystemdSpawner"
SLURM = "batchspawner.SlurmSpawner"
SINGLEUSER_SCRIPT = "neurodesk-hub-singleuser"
# The variables the single-user program reads (set by the hub for each user).
SITE_ENV = "NEURODESK_HUB_SITE"
DATA_ENV = "NEURODESK_HUB_DATA"
SCRATCH_ENV = "NEURODESK_HUB_SCRATCH"
# Each user's own NEURODESK_HOME (desktop config, kernelspecs, logs), inside their home.
USER_HOME = ".neurodesk-hub"

# A SLURM job that runs one user's server. {{...}} are batchspawner's own fields.
SLURM_SCRIPT = """#!/bin/bash
#SBATCH --job-name=neurodesk-{{username}}
#SBATCH --output={{homedir}}/.neurodesk-hub/slurm-%j.log
#SBATCH --chdir={{homedir}}
#SBATCH --export={{keepvars}}
{% if partition %}#SBATCH --partition={{partition}}
{% endif %}{% if runtime %}#SBATCH --time={{runtime}}
{% endif %}{% if memory %}#SBATCH --mem={{memory}}
{% endif %}{% if nprocs %}#SBATCH --cpus-per-task={{nprocs}}
{% endif %}{% if options %}{{options}}
{% endif %}
set -eu
mkdir -p "$HOME/.neurodesk-hub"
{{cmd}}
"""


def server_python(settings: HubSettings) -> str:
    """The Python users' servers run with: the configured one, else the hub's own."""
    return settings.python or sys.executable


def singleuser_command(settings: HubSettings) -> list[str]:
    return [server_python(settings), "-m", "neurodesk.hub.singleuser"]


def _script(settings: HubSettings, name: str) -> str:
    """A console script beside the servers' Python (or the hub's), else from PATH."""
    for python in (server_python(settings), sys.executable):
        beside = Path(python).parent / name
        if beside.is_file():
            return str(beside)
    return shutil.which(name) or name


def unusable_by_others(path: str) -> str | None:
    """The first part of ``path`` other accounts cannot reach or run, or None if all can."""
    target = Path(path)
    try:
        resolved = target.resolve(strict=True)
    except OSError:
        return path
    for candidate in (*reversed(resolved.parents), resolved):
        try:
            mode = candidate.stat().st_mode
        except OSError:
            return str(candidate)
        if not mode & 0o001:
            return str(candidate)
    return None


def slurm_memory(settings: HubSettings) -> str:
    """``--mem`` in whole megabytes (SLURM's default unit)."""
    size = settings.spawner.slurm.memory or settings.limits.memory
    return f"{math.ceil(parse_size(size) / 1024**2)}M"


def spawner_config(hub: HubDir, settings: HubSettings) -> tuple[str, Sections]:
    """(spawner class, {config section: {trait: value}}) for the chosen kind."""
    site, data = str(hub.site), str(hub.data(settings))
    common: dict[str, Any] = {
        "cmd": singleuser_command(settings),
        "default_url": "/lab",
        "mem_limit": settings.limits.memory_bytes,
        "cpu_limit": settings.limits.cpus,
        "http_timeout": 60,
        "start_timeout": 120,
        "environment": {SITE_ENV: site, DATA_ENV: data},
        # the hub's own environment stays out of users' servers, except what they need
        "env_keep": ["PATH", "LANG", "LC_ALL", "SLURM_CONF"],
    }
    kind = settings.spawner.kind
    if kind == "local":
        return LOCAL, {"Spawner": common}
    if kind == "systemd":
        return SYSTEMD, {"Spawner": common, "SystemdSpawner": systemd_traits(hub, settings)}
    if kind == "slurm":
        return SLURM, {"Spawner": common, "SlurmSpawner": slurm_traits(settings)}
    # kubernetes: the hub runs in the cluster (helm); nothing starts here
    return "kubespawner.KubeSpawner", {"Spawner": common}


def systemd_traits(hub: HubDir, settings: HubSettings) -> dict[str, Any]:
    """One transient unit per user: memory and CPU capped, the shared trees read-only."""
    return {
        "unit_name_template": "neurodesk-hub-{USERNAME}",
        "readonly_paths": [str(hub.site), str(hub.data(settings))],
        "readwrite_paths": [],
        "isolate_tmp": True,
        "isolate_devices": True,
        "disable_user_sudo": True,
        "dynamic_users": False,
        "slice": "neurodesk-hub.slice",
        "unit_extra_properties": {
            "MemorySwapMax": "0",
            "TasksMax": "512",
            "ProtectSystem": "full",
            "InaccessiblePaths": str(hub.state),
        },
    }


def slurm_traits(settings: HubSettings) -> dict[str, Any]:
    slurm = settings.spawner.slurm
    cpus = slurm.cpus or max(1, math.ceil(settings.limits.cpus))
    # a server on a compute node must be reachable from the hub; on one machine, loopback
    loopback = ipaddress.ip_address(settings.hub_connect_ip or "127.0.0.1").is_loopback
    return {
        "ip": "127.0.0.1" if loopback else "0.0.0.0",
        "batch_script": SLURM_SCRIPT,
        "req_partition": slurm.partition,
        "req_runtime": slurm.time,
        "req_memory": slurm_memory(settings),
        "req_nprocs": str(cpus),
        "req_options": "\n".join(f"#SBATCH {option}" for option in slurm.extra),
        # the hub runs as root: submit, query and cancel as the user, never with sudo
        "exec_prefix": "runuser -u {username} --",
        "batchspawner_singleuser_cmd": f"{server_python(settings)} -m batchspawner.singleuser",
        "cmd": [_script(settings, SINGLEUSER_SCRIPT)],
        "start_timeout": 300,
    }
