"""What every registry-backed source holds: its registries (one per mirror) and their order.

The image source (``registry``) and the SIF-artifact source (``sif-registry``) differ in what
they ask a registry for, not in how mirrors are opened, probed and closed: that is here, once.
"""

from __future__ import annotations

from neurodesk.sources.http import HttpSettings
from neurodesk.sources.mirrors import MirrorSet
from neurodesk.sources.registry import Registry, RegistryAddress


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

    def close(self) -> None:
        for registry in self.registries:
            registry.close()
