"""Which JupyterHub authenticator a deployment uses, and its settings.

There is no unauthenticated path: every choice here checks a password or an OAuth identity, and
only listed users (or, for ``native``, users an admin approved) get in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neurodesk.errors import NeurodeskError
from neurodesk.hub.layout import HubDir
from neurodesk.hub.settings import HubSettings

MIN_PASSWORD = 8
OAUTH_CLASSES = {
    "github": "oauthenticator.github.GitHubOAuthenticator",
    "gitlab": "oauthenticator.gitlab.GitLabOAuthenticator",
    "google": "oauthenticator.google.GoogleOAuthenticator",
    "generic": "oauthenticator.generic.GenericOAuthenticator",
}

Sections = dict[str, dict[str, Any]]


def authenticator_config(hub: HubDir, settings: HubSettings) -> tuple[str, Sections]:
    """(authenticator class, {config section: {trait: value}})."""
    common: dict[str, Any] = {
        "admin_users": set(settings.admins),
        "allowed_users": set(settings.users),
        "allow_all": False,
        "allow_existing_users": False,
    }
    kind = settings.authenticator
    if kind == "pam":
        # no PAM sessions: the single-user server is started by the spawner, not by a login
        return "jupyterhub.auth.PAMAuthenticator", {
            "Authenticator": common,
            "PAMAuthenticator": {"open_sessions": False, "check_account": True},
        }
    if kind == "firstuse":
        # each listed user chooses a password at their first login; nobody else can get in
        return "firstuseauthenticator.FirstUseAuthenticator", {
            "Authenticator": common,
            "FirstUseAuthenticator": {
                "dbm_path": str(hub.state / "passwords.dbm"),
                "create_users": False,
                "min_password_length": MIN_PASSWORD,
            },
        }
    if kind == "native":
        # sign-up page; an admin approves each account (or the listed users are pre-approved)
        native: dict[str, Any] = {
            "open_signup": False,
            "minimum_password_length": MIN_PASSWORD,
            "check_common_password": True,
            "allowed_failed_logins": 5,
            "seconds_before_next_try": 60,
        }
        return "nativeauthenticator.NativeAuthenticator", {
            "Authenticator": {**common, "allow_all": not settings.users},
            "NativeAuthenticator": native,
        }
    assert kind == "oauth" and settings.oauth is not None  # checked by the settings
    oauth = settings.oauth
    section: dict[str, Any] = {
        "client_id": oauth.client_id,
        "client_secret": read_secret(Path(oauth.client_secret_file), hub),
        "oauth_callback_url": oauth.callback_url,
    }
    if oauth.provider == "generic":
        section.update(
            authorize_url=oauth.authorize_url,
            token_url=oauth.token_url,
            userdata_url=oauth.userdata_url,
            username_claim=oauth.username_claim,
        )
    return OAUTH_CLASSES[oauth.provider], {
        "Authenticator": common,
        "OAuthenticator": section,
    }


def read_secret(path: Path, hub: HubDir) -> str:
    path = path if path.is_absolute() else hub.root / path
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise NeurodeskError(
            f"oauth.client_secret_file: cannot read {path}: {exc.strerror}",
            hint="put the OAuth client secret in that file (chmod 600)",
        ) from None
    if not secret:
        raise NeurodeskError(f"oauth.client_secret_file: {path} is empty")
    return secret
