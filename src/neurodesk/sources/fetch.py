"""Getting an image into the local store from the configured sources, in order.

Order: the local store, CVMFS-layout trees (used in place), OCI registries, HTTP file servers
(see :mod:`neurodesk.sources.config`). ``source=`` names one source explicitly: a configured
source's name, or a location — a directory (a CVMFS-layout tree or an OCI layout), an OCI
archive (``.tar``), an ``http(s)://`` URL of a layout, or a registry ``HOST[:PORT]/NS``
(``docker://`` optional). Several mirrors of one location are separated by commas.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, cast

from neurodesk.errors import NeurodeskError, NotFoundError
from neurodesk.paths import Paths
from neurodesk.sources.config import Config, Kind, SourceConfig, load_config
from neurodesk.sources.layout_source import LayoutSource, unpack_archive
from neurodesk.sources.naming import Available, Spec, newest
from neurodesk.sources.progress import NullProgress, TransferProgress
from neurodesk.sources.registry_source import RegistrySource
from neurodesk.sources.transfer import SourceError
from neurodesk.sources.tree_source import TreeSource
from neurodesk.store import ImageRecord, Store


class Source(Protocol):
    kind: str
    label: str

    def find(self, spec: Spec) -> Available | None: ...

    def available(self) -> list[Available]: ...

    def fetch(
        self, found: Available, paths: Paths, progress: TransferProgress | None = None
    ) -> ImageRecord: ...

    def close(self) -> None: ...


def _tree(config: SourceConfig, settings: Config, paths: Paths) -> Source:
    return TreeSource(config.name, config.mirrors)


def _registry(config: SourceConfig, settings: Config, paths: Paths) -> Source:
    return RegistrySource.from_config(config, settings, paths)


def _layout(config: SourceConfig, settings: Config, paths: Paths) -> Source:
    return LayoutSource(
        config.name,
        config.mirrors,
        config.insecure,
        settings.timeout,
        settings.retries,
        settings.http_settings(),
    )


def _lazy(module: str) -> Callable[[SourceConfig, Config, Paths], Source]:
    """A kind whose module is imported only when a source of that kind is opened."""

    def factory(config: SourceConfig, settings: Config, paths: Paths) -> Source:
        made = importlib.import_module(f"neurodesk.sources.{module}").from_config
        return cast(Source, made(config, settings, paths))

    return factory


# One line per kind of source: the registration (see config.Kind and config.BUILTIN).
KINDS: dict[str, Callable[[SourceConfig, Config, Paths], Source]] = {
    "tree": _tree,
    "registry": _registry,
    "http": _layout,
    "sif-registry": _lazy("sif_registry_source"),
    "sif-http": _lazy("sif_http_source"),
    "sif-file": _lazy("sif_file_source"),
}


def make_source(config: SourceConfig, settings: Config, paths: Paths | None = None) -> Source:
    return KINDS[config.kind](config, settings, paths or Paths.from_env())


def needs_exact_id(config: SourceConfig) -> bool:
    """Upstream's channels are asked for exact container ids, completed from the catalog."""
    if config.kind in ("tree", "sif-file"):
        return False  # a tree is looked through; a file is one image
    return config.builtin or config.naming == "upstream" or config.kind == "sif-http"


def complete_from_catalog(paths: Paths, spec: Spec) -> Spec | None:
    """``fsl`` → ``fsl/6.0.7.4/20231025`` (the newest matching container upstream's catalog
    lists), or None when the catalog is not here or does not list it."""
    if spec.version and spec.builddate:
        return spec
    from neurodesk.catalog.upstream import load_cached

    catalog = load_cached(paths.home)
    if catalog is None:
        return None
    options = [Available(c.name, c.version, c.builddate, c.id) for c in catalog.by_name(spec.name)]
    best = newest(options, spec)
    return Spec(best.name, best.version, best.builddate) if best else None


def source_from_location(
    text: str,
    settings: Config,
    paths: Paths,
    insecure: bool = False,
    progress: TransferProgress | None = None,
) -> Source:
    """A configured source by name, or an ad-hoc one from a location (see the module doc)."""
    configured = settings.named(text)
    if configured is not None:
        if insecure:
            configured = configured.model_copy(update={"insecure": True})
        return make_source(configured, settings, paths)
    mirrors = [m.strip() for m in text.split(",") if m.strip()]
    first = mirrors[0] if mirrors else ""
    kind: Kind
    if first.endswith((".sif", ".simg")) and len(mirrors) == 1:
        return make_source(
            SourceConfig(name=text, kind="sif-file", mirrors=mirrors), settings, paths
        )
    if first.endswith(".tar"):
        layout = unpack_archive(
            first,
            paths,
            settings.timeout,
            insecure,
            progress or NullProgress(),
            settings.http_settings(),
        )
        mirrors, kind = [str(layout)], "http"
    elif first.startswith(("http://", "https://")):
        kind = "http"
    elif first.startswith(("/", ".", "file://")) or Path(first).is_dir():
        local = Path(first.removeprefix("file://"))
        if (local / "containers").is_dir():
            kind = "tree"
        elif (local / "index.json").is_file():
            kind = "http"
        else:
            raise NotFoundError(
                f"{local} is neither a CVMFS-layout tree (containers/) nor an OCI layout",
                hint="give a tree, an OCI layout directory, a .tar archive, a URL or a registry",
            )
    else:
        kind = "registry"
    config = SourceConfig(name=text, kind=kind, mirrors=mirrors, insecure=insecure)
    return make_source(config, settings, paths)


def spec_for(source: Source, settings: Config, spec: Spec, exact: Spec | None) -> Spec | None:
    """What to ask ``source`` for: ``spec`` itself, or for upstream's channels the exact id the
    catalog gave (``exact``); None when such a channel cannot be asked (no catalog entry)."""
    config = settings.named(source.label)
    if config is not None and needs_exact_id(config):
        return exact
    return spec


@contextmanager
def open_sources(
    paths: Paths,
    source: str | None = None,
    insecure: bool = False,
    progress: TransferProgress | None = None,
    builtin: bool = True,
) -> Iterator[list[Source]]:
    """The sources to try, opened; ``builtin=False`` leaves out the built-in channels (they
    serve upstream's catalog and cannot be listed)."""
    settings = load_config(paths.config_file)
    if source is not None:
        sources = [source_from_location(source, settings, paths, insecure, progress)]
    else:
        configs = settings.channels() if builtin else settings.ordered()
        sources = [make_source(c, settings, paths) for c in configs]
    try:
        yield sources
    finally:
        for opened in sources:
            opened.close()


def fetch_image(
    spec_text: str,
    paths: Paths,
    source: str | None = None,
    insecure: bool = False,
    progress: TransferProgress | None = None,
) -> ImageRecord:
    """The image ``spec_text`` in the local store, fetched from the sources if it is not there.

    With ``source`` the image is taken from that source (blobs the store has are reused).
    Without, the store answers first, so everything works offline from what is already here.
    """
    spec = Spec.parse(spec_text)
    store = Store(paths.store)
    if source in (None, "store"):
        try:
            return store.resolve(spec_text)
        except NotFoundError:
            if source == "store":
                raise
    problems: list[str] = []
    settings = load_config(paths.config_file)
    exact = complete_from_catalog(paths, spec)
    with open_sources(paths, source, insecure, progress) as sources:
        for candidate in sources:
            asked = spec_for(candidate, settings, spec, exact)
            if asked is None:
                problems.append(f"{candidate.label}: not in upstream's catalog")
                continue
            try:
                found = candidate.find(asked)
                if found is None:
                    problems.append(f"{candidate.label}: not there")
                    continue
                return candidate.fetch(found, paths, progress)
            except SourceError as exc:
                if source is not None:
                    raise
                problems.append(f"{candidate.label}: {exc.message}")
    where = "; ".join(problems) if problems else "no sources are configured"
    raise NotFoundError(
        f"no image '{spec}' in the store or any source ({where})", hint=_not_found_hint(paths, spec)
    )


def _not_found_hint(paths: Paths, spec: Spec) -> str:
    from neurodesk.catalog.upstream import HINT, load_cached

    try:
        catalog = load_cached(paths.home)
    except NeurodeskError:
        catalog = None
    if catalog is None:
        return f"{HINT}, add a source to config.yaml, or build it: 'neurodesk build {spec.name}'"
    close = difflib.get_close_matches(spec.name, catalog.names(), n=3, cutoff=0.6)
    if close and spec.name not in catalog.names():
        return f"did you mean {', '.join(close)}? ('neurodesk search {spec.name}')"
    return (
        "the channels holding it are down or unreachable; try again later, or name one with "
        "--from (see 'neurodesk sources --probe')"
    )
