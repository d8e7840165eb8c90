"""A Zero-to-JupyterHub Helm values file with the same settings as the local deployment.

The site tree and shared data become read-only volumes (persistent volume claims the cluster
administrator fills, e.g. from the output of ``neurodesk hub prepare``), scratch an ``emptyDir``
per user, limits the pod's memory and CPU, the idle timeout Z2JH's culler. PAM has no meaning in
a cluster: it becomes the first-use authenticator with the same users.
"""

from __future__ import annotations

import math
from typing import Any

from neurodesk.hub.auth import MIN_PASSWORD, OAUTH_CLASSES
from neurodesk.hub.layout import HubDir
from neurodesk.hub.settings import HubSettings
from neurodesk.hub.spawners import DATA_ENV, SCRATCH_ENV, SINGLEUSER_SCRIPT, SITE_ENV

SITE_MOUNT = "/opt/neurodesk-site"
DATA_MOUNT = "/srv/neurodesk-data"
SCRATCH_MOUNT = "/scratch"


def _authenticator(settings: HubSettings) -> dict[str, Any]:
    users = {
        "Authenticator": {
            "allowed_users": sorted(settings.users),
            "admin_users": sorted(settings.admins),
        }
    }
    if settings.authenticator in ("firstuse", "pam"):
        return {
            "JupyterHub": {"authenticator_class": "firstuseauthenticator.FirstUseAuthenticator"},
            "FirstUseAuthenticator": {
                "create_users": False,
                "min_password_length": MIN_PASSWORD,
            },
            **users,
        }
    if settings.authenticator == "native":
        return {
            "JupyterHub": {"authenticator_class": "nativeauthenticator.NativeAuthenticator"},
            "NativeAuthenticator": {"open_signup": False, "check_common_password": True},
            **users,
        }
    assert settings.oauth is not None
    oauth = settings.oauth
    section: dict[str, Any] = {
        "client_id": oauth.client_id,
        "client_secret": "<put the client secret here or in a Kubernetes secret>",
        "oauth_callback_url": oauth.callback_url,
    }
    if oauth.provider == "generic":
        section.update(
            authorize_url=oauth.authorize_url,
            token_url=oauth.token_url,
            userdata_url=oauth.userdata_url,
            username_claim=oauth.username_claim,
        )
    return {
        "JupyterHub": {"authenticator_class": OAUTH_CLASSES[oauth.provider]},
        OAUTH_CLASSES[oauth.provider].rpartition(".")[2]: section,
        **users,
    }


def _image(reference: str) -> dict[str, str]:
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:
        return {"name": reference, "tag": "latest"}
    return {"name": name, "tag": tag}


def helm_values(hub: HubDir, settings: HubSettings) -> dict[str, Any]:
    kube = settings.spawner.kubernetes
    memory = settings.limits.memory_bytes
    cpus = settings.limits.cpus
    storage: dict[str, Any] = {
        "type": "dynamic",
        "capacity": "10Gi",
        "extraVolumes": [
            {
                "name": "neurodesk-site",
                "persistentVolumeClaim": {"claimName": kube.site_claim, "readOnly": True},
            },
            {
                "name": "neurodesk-data",
                "persistentVolumeClaim": {"claimName": kube.data_claim, "readOnly": True},
            },
            {"name": "neurodesk-scratch", "emptyDir": {}},
        ],
        "extraVolumeMounts": [
            {"name": "neurodesk-site", "mountPath": SITE_MOUNT, "readOnly": True},
            {"name": "neurodesk-data", "mountPath": DATA_MOUNT, "readOnly": True},
            {"name": "neurodesk-scratch", "mountPath": SCRATCH_MOUNT},
        ],
    }
    if kube.storage_class:
        storage["dynamic"] = {"storageClass": kube.storage_class}
    values: dict[str, Any] = {
        "hub": {"config": _authenticator(settings)},
        "singleuser": {
            "image": _image(kube.image),
            "cmd": [SINGLEUSER_SCRIPT],
            "defaultUrl": "/lab",
            "memory": {
                "limit": f"{math.ceil(memory / 1024**2)}M",
                "guarantee": f"{math.ceil(memory / 4 / 1024**2)}M",
            },
            "cpu": {"limit": cpus, "guarantee": round(cpus / 4, 3)},
            "extraEnv": {
                SITE_ENV: SITE_MOUNT,
                DATA_ENV: DATA_MOUNT,
                SCRATCH_ENV: SCRATCH_MOUNT,
            },
            "storage": storage,
        },
        "cull": {
            "enabled": settings.idle_seconds > 0,
            "timeout": settings.idle_seconds or 3600,
            "every": settings.cull_every,
        },
        # the autoscaler and the user scheduler pack users and free idle nodes
        "scheduling": {"userScheduler": {"enabled": True}, "podPriority": {"enabled": True}},
    }
    if settings.limits.max_servers:
        values["hub"]["config"]["JupyterHub"]["active_server_limit"] = settings.limits.max_servers
    return values
