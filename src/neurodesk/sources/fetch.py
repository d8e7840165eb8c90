"""Getting an image into the local store from the configured sources, in order.

Order: the local store, CVMFS-layout trees (used in place), OCI registries, HTTP file servers
(see :mod:`neurodesk.sources.config`). ``source=`` names one source explicitly: a configured
source's name, or a location — a directory (a CVMFS-layout tree or an OCI layout), an OCI
archive (``.tar``), an ``http(s)://`` URL of a layout, or a registry ``HOST[:PORT]/NS``
(``docker://`` optional). Several mirrors of one location are separated by commas.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from neurodesk.errors import NotFoundError
from neurodesk.paths import Paths
from neurodesk.sources.config import Config, Kind, SourceConfig, load_config
from neurodesk.sources.layout_source import LayoutSource, unpack_archive
from neurodesk.sources.naming import Available, Spec
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


def make_source(config: SourceConfig, settings: Config) -> Source:
    if config.kind == "tree":
        return TreeSource(config.name, config.mirrors)
    if config.kind == "registry":
        return RegistrySource(
            config.name,
            config.mirrors,
            config.insecure,
            settings.timeout,
            settings.retries,
            settings.http_settings(),
        )
    return LayoutSource(
        config.name,
        config.mirrors,
        config.insecure,
        settings.timeout,
        settings.retries,
        settings.http_settings(),
    )


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
        return make_source(configured, settings)
    mirrors = [m.strip() for m in text.split(",") if m.strip()]
    first = mirrors[0] if mirrors else ""
    kind: Kind
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
    return make_source(config, settings)


@contextmanager
def open_sources(
    paths: Paths,
    source: str | None = None,
    insecure: bool = False,
    progress: TransferProgress | None = None,
) -> Iterator[list[Source]]:
    settings = load_config(paths.config_file)
    if source is not None:
        sources = [source_from_location(source, settings, paths, insecure, progress)]
    else:
        sources = [make_source(c, settings) for c in settings.ordered()]
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
    with open_sources(paths, source, insecure, progress) as sources:
        for candidate in sources:
            try:
                found = candidate.find(spec)
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
        f"no image '{spec}' in the store or any source ({where})",
        hint="add a source to $NEURODESK_HOME/config.yaml, name one with --from, "
        f"or build it with 'neurodesk build {spec.name}'",
    )
