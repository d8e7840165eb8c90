"""The JupyterHub configuration a deployment produces: auth, spawners, culler, Helm values.

``configure`` fills a real traitlets ``Config`` (what JupyterHub hands the config file); the
spawner settings are checked against the real spawner classes, so a misspelt trait fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from neurodesk.hub.deploy import init_deployment
from neurodesk.hub.jhconfig import CULLER_SERVICE, STATUS_SERVICE, configure
from neurodesk.hub.layout import HubDir
from neurodesk.hub.prepare import read_only_for_others
from neurodesk.hub.settings import parse_settings
from neurodesk.hub.spawners import SLURM_SCRIPT, slurm_traits, systemd_traits, unusable_by_others

traitlets = pytest.importorskip("traitlets.config")
pytest.importorskip("jupyterhub")

USERS = {"users": ["alice", "bob"], "admins": ["alice"]}


def deployment(tmp_path: Path, **values: Any) -> tuple[HubDir, Any]:
    hub = init_deployment(tmp_path / "hub", {**USERS, **values})
    c = traitlets.Config()
    configure(c, hub.root)
    return hub, c


def test_local_firstuse_workshop(tmp_path: Path) -> None:
    hub, c = deployment(tmp_path, idle_timeout="20m", limits={"memory": "2G", "cpus": 2})
    assert c.JupyterHub.authenticator_class == "firstuseauthenticator.FirstUseAuthenticator"
    assert c.Authenticator.allowed_users == {"alice", "bob"}
    assert c.Authenticator.admin_users == {"alice"}
    assert c.Authenticator.allow_all is False
    assert c.FirstUseAuthenticator.create_users is False  # unknown names cannot sign up
    assert c.JupyterHub.spawner_class == "jupyterhub.spawner.LocalProcessSpawner"
    assert c.Spawner.cmd[1:] == ["-m", "neurodesk.hub.singleuser"]
    assert c.Spawner.environment["NEURODESK_HUB_SITE"] == str(hub.site)
    assert c.Spawner.mem_limit == 2 * 1024**3 and c.Spawner.cpu_limit == 2
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000/"
    assert c.JupyterHub.hub_bind_url.startswith("http://127.0.0.1:")
    assert c.JupyterHub.db_url == f"sqlite:///{hub.state / 'jupyterhub.sqlite'}"
    services = {s["name"]: s for s in c.JupyterHub.services}
    culler = services[CULLER_SERVICE]["command"]
    assert "--timeout=1200" in culler and "--cull-every=300" in culler
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert "delete:servers" in roles[CULLER_SERVICE]["scopes"]
    assert "delete:servers" not in roles[STATUS_SERVICE]["scopes"]  # status only reads
    token = hub.status_token
    assert services[STATUS_SERVICE]["api_token"] == token.read_text().strip()
    assert stat.S_IMODE(token.stat().st_mode) == 0o600


def test_no_culler_when_idle_timeout_is_zero(tmp_path: Path) -> None:
    _hub, c = deployment(tmp_path, idle_timeout=0)
    assert [s["name"] for s in c.JupyterHub.services] == [STATUS_SERVICE]


def test_pam_and_native(tmp_path: Path) -> None:
    _hub, c = deployment(tmp_path, authenticator="pam")
    assert c.JupyterHub.authenticator_class == "jupyterhub.auth.PAMAuthenticator"
    assert c.PAMAuthenticator.open_sessions is False
    _hub, c = deployment(tmp_path / "n", authenticator="native", users=[], admins=["boss"])
    assert c.JupyterHub.authenticator_class == "nativeauthenticator.NativeAuthenticator"
    assert c.NativeAuthenticator.open_signup is False  # an admin approves each account


def test_oauth_reads_the_secret_from_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "hub" / "state" / "oauth-secret"
    secret.parent.mkdir(parents=True)
    secret.write_text("s3cr3t\n")
    oauth = {
        "client_id": "neuro",
        "client_secret_file": "state/oauth-secret",
        "callback_url": "https://hub.example.org/hub/oauth_callback",
        "token_url": "https://id.example.org/token",
    }
    _hub, c = deployment(tmp_path, authenticator="oauth", oauth=oauth)
    assert c.JupyterHub.authenticator_class == "oauthenticator.generic.GenericOAuthenticator"
    assert c.OAuthenticator.client_secret == "s3cr3t"
    assert c.OAuthenticator.token_url == "https://id.example.org/token"


def _check_traits(cls: Any, traits: dict[str, Any]) -> None:
    """Every setting is a configurable trait of the real spawner class, of the right type."""
    known = cls.class_traits(config=True)
    for name, value in traits.items():
        assert name in known, f"{cls.__name__} has no configurable trait {name}"
        known[name].validate(cls.__new__(cls), value)


def test_systemd_units_cap_memory_and_cpu_and_keep_shared_trees_read_only(
    tmp_path: Path,
) -> None:
    systemdspawner = pytest.importorskip("systemdspawner")
    hub, c = deployment(tmp_path, spawner={"kind": "systemd"}, limits={"memory": "3G", "cpus": 1.5})
    assert c.JupyterHub.spawner_class == "systemdspawner.SystemdSpawner"
    settings = parse_settings({**USERS, "limits": {"memory": "3G", "cpus": 1.5}})
    traits = systemd_traits(hub, settings)
    _check_traits(systemdspawner.SystemdSpawner, traits)
    assert traits["readonly_paths"] == [str(hub.site), str(hub.root / "data")]
    assert traits["disable_user_sudo"] and traits["isolate_tmp"] and traits["isolate_devices"]
    assert str(hub.state) in traits["unit_extra_properties"]["InaccessiblePaths"]
    # systemdspawner turns these into MemoryMax= and CPUQuota= of the user's unit
    assert c.Spawner.mem_limit == 3 * 1024**3 and c.Spawner.cpu_limit == 1.5
    for section, values in c.SystemdSpawner.items():
        assert traits[section] == values
    written = json.loads((hub.generated / "systemd-spawner.json").read_text())
    assert written["readonly_paths"] == traits["readonly_paths"]


def test_slurm_job_script_has_partition_time_memory(tmp_path: Path) -> None:
    batchspawner = pytest.importorskip("batchspawner")
    values = {
        "hub_connect_ip": "10.1.2.3",
        "limits": {"memory": "6G", "cpus": 1.5},
        "spawner": {
            "kind": "slurm",
            "slurm": {"partition": "teach", "time": "03:00:00", "extra": ["--gres=gpu:1"]},
        },
    }
    _hub, c = deployment(tmp_path, **values)
    assert c.JupyterHub.spawner_class == "batchspawner.SlurmSpawner"
    assert c.JupyterHub.hub_connect_url.startswith("http://10.1.2.3:")
    traits = slurm_traits(parse_settings({**USERS, **values}))
    _check_traits(batchspawner.SlurmSpawner, traits)
    script = batchspawner.format_template(
        SLURM_SCRIPT,
        username="alice",
        homedir="/home/alice",
        keepvars="PATH,JUPYTERHUB_API_TOKEN",
        partition=traits["req_partition"],
        runtime=traits["req_runtime"],
        memory=traits["req_memory"],
        nprocs=traits["req_nprocs"],
        options=traits["req_options"],
        cmd="batchspawner-singleuser neurodesk-hub-singleuser",
    )
    assert "#SBATCH --partition=teach\n" in script
    assert "#SBATCH --time=03:00:00\n" in script
    assert "#SBATCH --mem=6144M\n" in script
    assert "#SBATCH --cpus-per-task=2\n" in script
    assert "#SBATCH --gres=gpu:1\n" in script
    assert traits["exec_prefix"] == "runuser -u {username} --"  # never sudo, never as root


def test_helm_values_carry_the_same_settings(tmp_path: Path) -> None:
    values = {
        "authenticator": "pam",
        "idle_timeout": "45m",
        "limits": {"memory": "2G", "cpus": 1, "max_servers": 120},
        "spawner": {"kind": "kubernetes", "kubernetes": {"image": "reg.example.org/nd:1.0"}},
    }
    hub = init_deployment(tmp_path / "hub", {**USERS, **values})
    helm = yaml.safe_load((hub.generated / "z2jh-values.yaml").read_text())
    config = helm["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"].startswith("firstuseauthenticator")
    assert config["Authenticator"]["allowed_users"] == ["alice", "bob"]
    assert config["JupyterHub"]["active_server_limit"] == 120
    single = helm["singleuser"]
    assert single["image"] == {"name": "reg.example.org/nd", "tag": "1.0"}
    assert single["memory"]["limit"] == "2048M"
    assert single["cmd"] == ["neurodesk-hub-singleuser"]
    mounts = {m["name"]: m for m in single["storage"]["extraVolumeMounts"]}
    assert mounts["neurodesk-site"]["readOnly"] and mounts["neurodesk-data"]["readOnly"]
    volumes = {v["name"]: v for v in single["storage"]["extraVolumes"]}
    assert volumes["neurodesk-data"]["persistentVolumeClaim"]["readOnly"] is True
    assert helm["cull"] == {"enabled": True, "timeout": 2700, "every": 300}


def test_site_tree_made_read_only_for_others(tmp_path: Path) -> None:
    tree = tmp_path / "site"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "tool").write_text("#!/bin/sh\n")
    (tree / "bin" / "tool").chmod(0o770)
    (tree / "notes").write_text("x")
    (tree / "notes").chmod(0o666)
    (tree / "link").symlink_to("/etc/passwd")
    read_only_for_others(tree)
    assert stat.S_IMODE((tree / "bin" / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((tree / "notes").stat().st_mode) == 0o644
    assert stat.S_IMODE((tree / "bin").stat().st_mode) & 0o022 == 0
    assert stat.S_IMODE(os.stat("/etc/passwd").st_mode) == 0o644  # the link was not followed


def test_a_python_under_a_private_directory_is_named() -> None:
    root = Path(tempfile.mkdtemp(dir="/var/tmp"))  # pytest's tmp_path is private itself
    try:
        root.chmod(0o755)
        private = root / "private"
        private.mkdir()
        python = private / "python"
        python.write_text("")
        python.chmod(0o755)
        private.chmod(0o700)
        assert unusable_by_others(str(python)) == str(private)
        private.chmod(0o755)
        assert unusable_by_others(str(python)) is None
        python.chmod(0o750)
        assert unusable_by_others(str(python)) == str(python)
        assert unusable_by_others(str(root / "missing")) == str(root / "missing")
    finally:
        shutil.rmtree(root)
