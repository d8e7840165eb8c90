"""Where a hub deployment keeps its files, computed in one place from its directory.

::

    DIR/neurodesk-hub.yaml        the organiser's settings
    DIR/jupyterhub_config.py      JupyterHub's configuration (reads the YAML)
    DIR/site/                     the shared, read-only tool tree (store + wrappers + modules)
    DIR/data/                     shared data (default; read-only for users)
    DIR/scratch/<user>/           each user's scratch (only they can enter it)
    DIR/state/                    hub database, cookie secret, service tokens, pid (root only)
    DIR/logs/                     jupyterhub.log
    DIR/proxy/                    configurable-http-proxy, installed from npm by 'hub start'
    DIR/generated/                systemd, SLURM and Zero-to-JupyterHub files for review
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neurodesk.hub.settings import SETTINGS_FILE, HubSettings


@dataclass(frozen=True)
class HubDir:
    root: Path

    @classmethod
    def of(cls, directory: Path) -> HubDir:
        return cls(directory.expanduser().absolute())

    @property
    def settings(self) -> Path:
        return self.root / SETTINGS_FILE

    @property
    def config(self) -> Path:
        return self.root / "jupyterhub_config.py"

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def log(self) -> Path:
        return self.logs / "jupyterhub.log"

    @property
    def pid_file(self) -> Path:
        return self.state / "jupyterhub.pid"

    @property
    def status_token(self) -> Path:
        return self.state / "status-token"

    @property
    def proxy(self) -> Path:
        return self.root / "proxy"

    @property
    def generated(self) -> Path:
        return self.root / "generated"

    def data(self, settings: HubSettings) -> Path:
        return self._resolve(settings.shared_data)

    def scratch(self, settings: HubSettings) -> Path:
        return self._resolve(settings.scratch)

    def _resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path
