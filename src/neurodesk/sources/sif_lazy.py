"""Choosing and making a lazy install: a SIF on an HTTP(S) server, mounted over the network.

The one place that decides whether ``install`` goes lazy: ``--lazy``/``--no-lazy``, else
``lazy:`` in config.yaml; only for an HTTP(S) ``--from`` source (a SIF URL, a registry blob URL
or a tree with SIFs). An explicit ``--lazy`` with any other source is an error; the config
default quietly applies only where it can.
"""

from __future__ import annotations

from collections.abc import Callable

from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from neurodesk.sources.config import load_config
from neurodesk.sources.sif_source import find_remote_sif, is_http
from neurodesk.store import ImageRecord, Store, sifprefetch
from neurodesk.store.sifmount import fuse_problem
from neurodesk.store.sifstore import add_lazy

Progress = Callable[[str], None]


def lazy_image(
    spec: str,
    paths: Paths,
    source: str | None,
    lazy: bool | None,
    prefetch: bool,
    progress: Progress | None = None,
) -> ImageRecord | None:
    """The image installed lazily, or None when this install is not a lazy one."""
    settings = load_config(paths.config_file)
    wanted = settings.lazy if lazy is None else lazy
    if prefetch and not wanted:
        raise NeurodeskError("--prefetch goes with --lazy", hint="add --lazy")
    if not wanted:
        return None
    if source is None or not is_http(source):
        if lazy:  # asked for on the command line: say why it cannot be
            raise NeurodeskError(
                "--lazy needs an HTTP(S) SIF source",
                hint="add --from https://.../NAME_VERSION_DATE.sif (or a tree with SIFs)",
            )
        return None
    why = fuse_problem()
    if why is not None:
        if lazy:
            raise NeurodeskError(
                f"cannot mount over the network: FUSE is not usable here ({why})",
                hint="install without --lazy",
            )
        return None
    remote = find_remote_sif(spec, source, settings.timeout)
    store = Store(paths.store)
    record = add_lazy(
        store,
        remote.url,
        remote.digest,
        (remote.name, remote.version, remote.builddate),
        settings.timeout,
        progress,
        paths.cache if settings.lazy_cache else None,
    )
    if prefetch:
        sifprefetch.start(record, paths)
    return record
