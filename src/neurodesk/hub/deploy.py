"""``hub init``: the files of a new deployment, written whole or not at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from neurodesk.errors import NeurodeskError
from neurodesk.hub.helm import helm_values
from neurodesk.hub.layout import HubDir
from neurodesk.hub.settings import HubSettings, parse_settings
from neurodesk.hub.spawners import slurm_traits, systemd_traits
from neurodesk.store.atomic import write_text

CONFIG_PY = """\
# JupyterHub configuration written by 'neurodesk hub init'.
# The settings an organiser edits are in neurodesk-hub.yaml beside this file; configure() reads
# it at every 'neurodesk hub start'. Lines added below the call override any JupyterHub option,
# e.g.  c.Spawner.start_timeout = 300
from pathlib import Path

from neurodesk.hub.jhconfig import configure

configure(c, Path(__file__).resolve().parent)  # noqa: F821  (c is JupyterHub's config object)
"""

OAUTH_EXAMPLE = """\
# oauth:
#   provider: generic          # github, gitlab, google or generic
#   client_id: my-client
#   client_secret_file: state/oauth-secret   # a file only root can read
#   callback_url: https://hub.example.org/hub/oauth_callback
#   authorize_url: https://id.example.org/authorize
#   token_url: https://id.example.org/token
#   userdata_url: https://id.example.org/userinfo
"""

SETTINGS_YAML = """\
# neurodesk-hub.yaml: what a course organiser edits. After a change: neurodesk hub stop DIR,
# then neurodesk hub start DIR. Relative paths are relative to this file's directory.

title: {title}
# The Python users' servers run with: neurodesk[hub] installed, runnable by every account
# (e.g. /opt/neurodesk/venv/bin/python). Empty: the one running the hub.
python: {python}
# The address and port people open in their browser (0.0.0.0:8000 for every interface; put
# TLS in front with a reverse proxy for anything beyond a closed room network).
bind: {bind}
# For spawner slurm: the address compute nodes reach this machine at.
hub_connect_ip: {hub_connect_ip}

# Who gets in. firstuse: each listed user sets a password at first login (workshops).
# native: a sign-up page, an admin approves accounts. pam: this machine's accounts and
# passwords. oauth: an identity provider (fill in the oauth: block below).
authenticator: {authenticator}
users: {users}
admins: {admins}
{oauth}
# Tools installed once into the shared read-only site tree by 'neurodesk hub prepare'
# (NAME or NAME/VERSION, as for 'neurodesk install'); source: where to fetch them from
# (empty: the sources of site/config.yaml).
tools: {tools}
source: {source}

# Shared data everyone reads (read-only for users) and the root of per-user scratch.
shared_data: {shared_data}
scratch: {scratch}

limits:
  memory: {memory}       # per user's server (systemd, slurm and kubernetes enforce it)
  cpus: {cpus}
  max_servers: {max_servers}      # 0: no limit on servers running at once

# A server with no activity for this long is stopped (its files stay). 0: never.
idle_timeout: {idle_timeout}

spawner:
  kind: {spawner}        # local, systemd, slurm or kubernetes (helm values in generated/)
  slurm:
    partition: {partition}
    time: {slurm_time}
    memory: {slurm_memory}        # empty: limits.memory
    cpus: {slurm_cpus}           # 0: limits.cpus rounded up
    extra: {slurm_extra}         # more sbatch options, e.g. ["--gres=gpu:1"]
  kubernetes:         # for generated/z2jh-values.yaml
    image: {kube_image}   # an image with neurodesk[hub] installed
    storage_class: {kube_storage_class}
    site_claim: {kube_site_claim}    # a read-only volume holding the prepared site tree
    data_claim: {kube_data_claim}    # a read-only volume holding the shared data
"""


def _flow(values: list[str]) -> str:
    return json.dumps(values)


def _oauth(settings: HubSettings) -> str:
    if settings.oauth is None:
        return OAUTH_EXAMPLE
    return yaml.safe_dump({"oauth": settings.oauth.model_dump()}, sort_keys=False)


def render_settings(settings: HubSettings) -> str:
    """The commented YAML for ``settings`` (parsing it back gives the same settings)."""
    return SETTINGS_YAML.format(
        title=json.dumps(settings.title),
        python=json.dumps(settings.python),
        bind=settings.bind,
        hub_connect_ip=json.dumps(settings.hub_connect_ip),
        authenticator=settings.authenticator,
        users=_flow(settings.users),
        admins=_flow(settings.admins),
        oauth=_oauth(settings),
        tools=_flow(settings.tools),
        source=json.dumps(settings.source),
        shared_data=json.dumps(settings.shared_data),
        scratch=json.dumps(settings.scratch),
        memory=settings.limits.memory,
        cpus=settings.limits.cpus,
        max_servers=settings.limits.max_servers,
        idle_timeout=json.dumps(settings.idle_timeout),
        spawner=settings.spawner.kind,
        partition=json.dumps(settings.spawner.slurm.partition),
        slurm_time=json.dumps(settings.spawner.slurm.time),
        slurm_memory=json.dumps(settings.spawner.slurm.memory),
        slurm_cpus=settings.spawner.slurm.cpus,
        slurm_extra=_flow(settings.spawner.slurm.extra),
        kube_image=json.dumps(settings.spawner.kubernetes.image),
        kube_storage_class=json.dumps(settings.spawner.kubernetes.storage_class),
        kube_site_claim=json.dumps(settings.spawner.kubernetes.site_claim),
        kube_data_claim=json.dumps(settings.spawner.kubernetes.data_claim),
    )


def init_deployment(directory: Path, values: dict[str, Any], force: bool = False) -> HubDir:
    """Write ``neurodesk-hub.yaml`` and ``jupyterhub_config.py`` (validated first)."""
    hub = HubDir.of(directory)
    settings = parse_settings(values, "settings")
    text = render_settings(settings)
    if parse_settings(yaml.safe_load(text), "settings") != settings:  # our template's own check
        raise NeurodeskError("internal error: the settings template does not round-trip")
    if hub.settings.exists() and not force:
        raise NeurodeskError(
            f"{hub.settings} exists already",
            hint="edit it, or pass --force to write a new one over it",
        )
    if hub.root.exists() and not hub.root.is_dir():
        raise NeurodeskError(f"{hub.root} exists and is not a directory")
    hub.root.mkdir(parents=True, exist_ok=True)
    write_text(hub.config, CONFIG_PY)
    write_text(hub.settings, text)
    for path in (hub.site, hub.data(settings)):
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
    hub.state.mkdir(mode=0o700, exist_ok=True)
    write_generated(hub, settings)
    return hub


def write_generated(hub: HubDir, settings: HubSettings) -> list[Path]:
    """Files for other ways to run the same deployment, for review: Helm values, systemd, SLURM."""
    out = hub.generated
    files = {
        out / "z2jh-values.yaml": "# Zero-to-JupyterHub values written by 'neurodesk hub'.\n"
        "# helm upgrade --install neurodesk jupyterhub/jupyterhub --values z2jh-values.yaml\n"
        + yaml.safe_dump(helm_values(hub, settings), sort_keys=False),
        out / "systemd-spawner.json": json.dumps(systemd_traits(hub, settings), indent=2) + "\n",
        out / "slurm-spawner.json": json.dumps(slurm_traits(settings), indent=2) + "\n",
    }
    staging = out.with_name(".generated.new")
    shutil.rmtree(staging, ignore_errors=True)
    for path, text in files.items():
        write_text(staging / path.name, text)
    shutil.rmtree(out, ignore_errors=True)
    staging.replace(out)
    return sorted(files)
