"""What every registry-backed source holds: its registries (one per mirror) and their order.

The image source (``registry``) and the SIF-artifact source (``sif-registry``) differ in what
they ask a registry for, not in how mirrors are opened, probed and closed: that is here, once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from neurodesk.sources.http import HttpSettings
from neurodesk.sources.mirrors import MirrorSet
from neurodesk.sources.registry import Registry, RegistryAddress

if TYPE_CHECKING:
    from neurodesk.paths import Paths
    from neurodesk.sources.config import Config, SourceConfig


class RegistryMirrors:
    """Registries of one source, tried fastest first (``/v2/`` answers), closed together.

    ``naming`` is ``neurodesk`` (``<ns>/<name>_<version>:<date>``) or ``upstream``
    (``<ns>/<name>:<version>_<date>``); each kind of source has its own default.
    """

    default_naming = "neurodesk"

    def __init__(
        self,
        label: str,
        mirrors: list[str],
        insecure: bool,
        timeout: float,
        retries: int,
        settings: HttpSettings | None = None,
        naming: str | None = None,
    ) -> None:
        self.label = label
        self.naming = naming or self.default_naming
        self.registries = [
            Registry(RegistryAddress.parse(m, insecure), timeout, settings) for m in mirrors
        ]
        self.mirrors: MirrorSet[Registry] = MirrorSet(
            self.registries, lambda r: r.ping(), retries=retries
        )

    @classmethod
    def from_config(cls, config: SourceConfig, settings: Config, paths: Paths) -> Self:
        """The source a ``config.yaml`` entry describes, with the HTTP settings of ``settings``."""
        return cls(
            config.name,
            config.mirrors,
            config.insecure,
            settings.timeout,
            settings.retries,
            settings.http_settings(),
            naming=config.naming,
        )

    def close(self) -> None:
        for registry in self.registries:
            registry.close()
