"""The catalog: every tool we know of, from the local store, the recipes and the sources.

Each place contributes :class:`Offer` rows (one image version there); :func:`build_catalog`
merges them into one :class:`Tool` per name. Remote sources that cannot be reached are noted
in ``Catalog.unreachable`` and skipped, so the catalog works offline from what is local.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from neurodesk.store.version import version_key

# The heavy parts (pydantic models, Jinja, HTTP clients) are imported where they are used:
# 'neurodesk search' over upstream's ~400 containers has a budget of 100 ms.
if TYPE_CHECKING:
    from neurodesk.catalog.imageinfo import ImageInfo
    from neurodesk.sources.tree_source import TreeSource
    from neurodesk.store import ImageRecord, Store


@dataclass
class Offer:
    """One version of a tool in one place (``source``: "store", "recipes" or a source name)."""

    name: str
    version: str
    builddate: str
    source: str
    categories: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    description: str = ""
    readme: str = ""
    licenses: list[str] = field(default_factory=list)
    size: int | None = None  # bytes, when known cheaply
    digest: str = ""
    gui_apps: list[tuple[str, str]] = field(default_factory=list)  # (menu label, command)


@dataclass
class Tool:
    name: str
    offers: list[Offer]

    def _newest(self) -> list[Offer]:
        """Offers newest first; sorted once (search asks for several attributes per tool)."""
        key = (len(self.offers), id(self.offers[-1]) if self.offers else 0)
        cached = self.__dict__.get("_sorted")
        if cached is None or cached[0] != key:
            cached = (key, sorted(self.offers, key=_newest_first))
            self.__dict__["_sorted"] = cached
        return list(cached[1])

    def _first(self, attr: str) -> Any:
        for offer in self._newest():
            value = getattr(offer, attr)
            if value:
                return value
        return type(getattr(self.offers[0], attr))()

    @property
    def versions(self) -> list[str]:
        return sorted({o.version for o in self.offers}, key=version_key)

    @property
    def categories(self) -> list[str]:
        return sorted({c for o in self.offers for c in o.categories})

    @property
    def sources(self) -> list[str]:
        return sorted({o.source for o in self.offers})

    @property
    def commands(self) -> list[str]:
        return list(self._first("commands"))

    @property
    def description(self) -> str:
        return str(self._first("description"))

    @property
    def readme(self) -> str:
        return str(self._first("readme"))

    @property
    def licenses(self) -> list[str]:
        return list(self._first("licenses"))

    @property
    def gui_apps(self) -> list[tuple[str, str]]:
        return sorted({g for o in self.offers for g in o.gui_apps})

    @property
    def releases(self) -> list[tuple[str, str]]:
        """``(version, build date)`` pairs that can be installed, oldest first."""
        dated = {(o.version, o.builddate) for o in self.offers if o.builddate}
        return sorted(dated, key=lambda r: (version_key(r[0]), r[1]))

    def to_json(self, full: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "versions": self.versions,
            "categories": self.categories,
            "description": self.description,
            "sources": self.sources,
            "releases": [f"{v}/{d}" for v, d in self.releases],
            "gui_apps": [{"name": g, "exec": e} for g, e in self.gui_apps],
        }
        if full:
            data.update(
                commands=self.commands,
                licenses=self.licenses,
                readme=self.readme,
                offers=[
                    {
                        "version": o.version,
                        "builddate": o.builddate,
                        "source": o.source,
                        "size": o.size,
                        "digest": o.digest,
                    }
                    for o in sorted(self.offers, key=_newest_first)
                ],
            )
        return data


def _newest_first(offer: Offer) -> tuple[Any, ...]:
    rank = {"store": 0, "recipes": 2}.get(offer.source, 1)
    return (_negate(version_key(offer.version)), _negate_str(offer.builddate), rank)


def _negate(key: tuple[tuple[int, int | str], ...]) -> tuple[Any, ...]:
    return tuple((-a, -b if isinstance(b, int) else _negate_str(b)) for a, b in key)


def _negate_str(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


@dataclass
class Catalog:
    tools: dict[str, Tool]
    unreachable: list[str] = field(default_factory=list)
    upstream_missing: bool = False  # 'neurodesk update' never ran in this home


UPSTREAM = "upstream"  # the source name of offers from upstream's catalog


def upstream_offers(paths: Paths) -> list[Offer] | None:
    """One offer per container of upstream's cached catalog; None when it was never fetched."""
    from neurodesk.catalog.upstream import load_cached

    catalog = load_cached(paths.home)
    if catalog is None:
        return None
    return [
        Offer(
            c.name,
            c.version,
            c.builddate,
            UPSTREAM,
            list(c.categories),
            commands=[command.split()[0] for _gui, command in c.gui_apps if command.split()],
            gui_apps=list(c.gui_apps),
        )
        for c in catalog.containers
    ]


def tree_size(root: Path) -> int:
    """Bytes of the files under ``root``, each inode once (the store shares files)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def _manifest_size(store: Store, record: ImageRecord) -> int | None:
    path = store.blob_path(record.digest)
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_bytes())
        return sum(int(d["size"]) for d in [manifest["config"], *manifest["layers"]])
    except (ValueError, KeyError, TypeError):
        return None


def _offer(record: ImageRecord, source: str, info: ImageInfo, commands: list[str]) -> Offer:
    return Offer(
        record.name,
        record.version,
        record.builddate,
        source,
        info.categories,
        commands,
        info.description,
        info.readme,
        info.licenses,
        digest=record.digest,
    )


# What the store contributes is kept in cache/store-offers.json, so that 'neurodesk search' does
# not import the store's machinery nor parse each image's /build.yaml on every call. An entry is
# used while its ref file and the files it was read from (the rootfs, /build.yaml, /README.md,
# the DEPLOY_PATH directories) are unchanged; images used in place (CVMFS) can change under us.
STORE_CACHE_VERSION = 1
# The code that reads an image: an upgrade that changes it makes the cache stale.
_READERS = [str(Path(__file__).with_name(name)) for name in ("collect.py", "imageinfo.py")] + [
    str(Path(__file__).parent.parent / "install" / "commands.py")
]


def file_stamp(path: str | Path, follow_symlinks: bool = False) -> list[int] | None:
    """What changes when a file is written or replaced (mtime, size, inode); None if absent.
    The caches of the catalog are keyed by such stamps."""
    try:
        info = os.stat(path, follow_symlinks=follow_symlinks)
    except OSError:
        return None
    return [info.st_mtime_ns, info.st_size, info.st_ino]


def _ref_files(refs: Path) -> list[str]:
    """``refs/<name>/<version>/<builddate>.json``, sorted, as Store.images() reads them."""
    return sorted(str(p) for p in refs.glob("*/*/*.json"))


def _read_entries(entries: list[dict[str, Any]]) -> list[tuple[Offer | None, str]]:
    """(offer, rootfs) per entry; raises KeyError/TypeError/ValueError on a malformed entry."""
    out: list[tuple[Offer | None, str]] = []
    for entry in entries:
        offer = entry["offer"]
        out.append((None if offer is None else _offer_from_json(dict(offer)), str(entry["rootfs"])))
    return out


def _cached_store_entries(cache: Path, refs: list[str]) -> list[dict[str, Any]] | None:
    try:
        data = json.loads(cache.read_text())
        if (
            data["version"] != STORE_CACHE_VERSION
            or data["code"] != [file_stamp(path) for path in _READERS]
            or [e["ref"] for e in data["entries"]] != refs
        ):
            return None
        entries: list[dict[str, Any]] = data["entries"]
        for entry in entries:
            if any(file_stamp(path) != stamp for path, stamp in entry["watch"]):
                return None
        _read_entries(entries)  # each entry is well formed
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, stale, or not ours: read the store again
    return entries


def _write_store_cache(cache: Path, entries: list[dict[str, Any]]) -> None:
    try:
        from neurodesk.store.atomic import write_text

        code = [file_stamp(path) for path in _READERS]
        write_text(
            cache, json.dumps({"version": STORE_CACHE_VERSION, "code": code, "entries": entries})
        )
    except OSError:
        pass  # a read-only home: no cache, only slower


def _store_entries(paths: Paths, refs_dir: Path) -> list[dict[str, Any]]:
    """One entry per ref: its offer (None when the image is not unpacked) and what it watched."""
    from neurodesk.catalog.imageinfo import read_image_info
    from neurodesk.image.layers import RootFS
    from neurodesk.install.commands import discover_commands
    from neurodesk.store import Store

    store = Store(paths.store)
    entries = []
    for record in store.images():
        ref = str(refs_dir / record.name / record.version / f"{record.builddate}.json")
        rootfs = str(record.rootfs)
        watched = [
            ref,
            rootfs,
            os.path.join(rootfs, "build.yaml"),
            os.path.join(rootfs, "README.md"),
        ]
        for directory in record.deploy_env("DEPLOY_PATH"):
            try:
                parts = [p for p in directory.split("/") if p]
                watched.append(str(RootFS(record.rootfs).resolve_dir(parts, create=False)))
            except (OSError, ValueError):
                continue
        # stamps taken before reading: a change while we read is seen by the next call
        watch = [[path, file_stamp(path)] for path in watched]
        offer = None
        if record.rootfs.is_dir():
            found = _offer(
                record,
                "store",
                read_image_info(record.rootfs, record.labels),
                discover_commands(record),
            )
            found.size = _manifest_size(store, record)
            offer = asdict(found)
        entries.append({"ref": ref, "rootfs": rootfs, "watch": watch, "offer": offer})
    return entries


def store_offers(paths: Paths, detail: bool = False, only: str | None = None) -> list[Offer]:
    """The store's images as offers (only tool ``only`` when given); sizes from the manifests,
    or (``detail``) measured on disk."""
    refs_dir = paths.store / "refs"
    if not refs_dir.is_dir():
        return []
    refs = _ref_files(refs_dir)
    cache = paths.cache / "store-offers.json"
    entries = _cached_store_entries(cache, refs)
    changed = entries is None
    if entries is None:
        entries = _store_entries(paths, refs_dir)
    offers = []
    for entry, (offer, rootfs) in zip(entries, _read_entries(entries), strict=True):
        if offer is None or (only is not None and offer.name != only):
            continue
        if detail:  # walking a big image takes a while: once per image, then from the cache
            if not isinstance(entry.get("tree_size"), int):
                entry["tree_size"] = tree_size(Path(rootfs))
                changed = True
            offer.size = int(entry["tree_size"])
        offers.append(offer)
    if changed:
        _write_store_cache(cache, entries)
    return offers


def _deploy_bins(directives: list[Any], top: list[str]) -> list[str]:
    """Commands a recipe names in ``deploy: bins`` (top level, in directives and groups); the
    ``deploy: path`` directories are only known once the image is built."""
    bins = list(top)
    for directive in directives:
        if not isinstance(directive, dict):
            continue
        deploy = directive.get("deploy")
        if isinstance(deploy, dict):
            bins += [str(b) for b in deploy.get("bins") or [] if isinstance(b, str)]
        group = directive.get("group")
        if isinstance(group, list):
            bins += _deploy_bins(group, [])
    return sorted({b.rsplit("/", 1)[-1] for b in bins if "{{" not in b})


def _stamp(folder: Path) -> list[Any]:
    files = sorted(folder.glob("*/build.yaml"))
    return [[str(p), p.stat().st_mtime_ns, p.stat().st_size] for p in files]


def recipe_offers(cache: Path | None = None) -> list[Offer]:
    """Offers of the shipped recipes; kept in ``cache`` (a JSON file) until a recipe changes.

    A hit costs a directory listing and no import of the recipe machinery: the cache records
    the recipes folder and the ``NEURODESK_RECIPES`` it was made under.
    """
    env = os.environ.get("NEURODESK_RECIPES", "")
    if cache is not None:
        try:
            data = json.loads(cache.read_text())
            if data["env"] == env and data["stamp"] == _stamp(Path(data["dir"])):
                return [_offer_from_json(o) for o in data["offers"]]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    from neurodesk.recipe.load import recipes_dir, shipped_recipes

    folder = recipes_dir()
    stamp = _stamp(folder)
    offers = _load_recipe_offers(shipped_recipes())
    if cache is not None:
        from neurodesk.store.atomic import write_text

        try:
            payload = {"env": env, "dir": str(folder), "stamp": stamp}
            payload["offers"] = [asdict(o) for o in offers]
            write_text(cache, json.dumps(payload))
        except OSError:
            pass  # a read-only home: no cache, only slower
    return offers


def _offer_from_json(data: dict[str, Any]) -> Offer:
    data["gui_apps"] = [tuple(g) for g in data.get("gui_apps") or []]
    return Offer(**data)


def _load_recipe_offers(files: list[Path]) -> list[Offer]:
    from neurodesk.catalog.imageinfo import first_sentence
    from neurodesk.recipe.context import RenderContext
    from neurodesk.recipe.load import load_recipe

    offers = []
    for path in files:
        try:
            recipe = load_recipe(path)
        except NeurodeskError:
            continue  # 'neurodesk recipe check' reports broken recipes; the catalog skips them
        try:
            readme = RenderContext(recipe).render(recipe.readme, "readme")
        except NeurodeskError:
            readme = recipe.readme
        structured = recipe.structured_readme
        description = structured.description if structured else ""
        offers.append(
            Offer(
                recipe.name,
                recipe.version,
                "",
                "recipes",
                list(recipe.categories),
                _deploy_bins(recipe.build.directives, recipe.deploy.bins),
                description or first_sentence(readme),
                readme,
                [c.license or c.name or "" for c in recipe.copyright if c.license or c.name],
            )
        )
    return offers


def _tree_offers(source: TreeSource, detail: bool) -> list[Offer]:
    from neurodesk.catalog.appsjson import CatalogFiles
    from neurodesk.catalog.imageinfo import read_image_info

    offers = []
    for tree in source.trees:
        if not tree.is_tree():
            continue
        categories: dict[str, list[str]] = {}
        log = CatalogFiles(tree.root).log_txt
        if log.is_file():
            for line in log.read_text().splitlines():
                head, _, cats = line.partition(" categories:")
                categories[head.strip()] = [c for c in cats.split(",") if c]
        for item in tree.available():
            meta = tree.metadata(item.where)
            commands_txt = tree.container_dir(item.where) / "commands.txt"
            info = read_image_info(tree.sandbox(item.where), dict(meta.get("labels") or {}))
            offers.append(
                Offer(
                    item.name,
                    item.version,
                    item.builddate,
                    source.label,
                    info.categories or categories.get(item.where, []),
                    commands_txt.read_text().split() if commands_txt.is_file() else [],
                    info.description,
                    info.readme,
                    info.licenses,
                    size=tree_size(tree.sandbox(item.where)) if detail else None,
                    digest=str(meta.get("digest") or ""),
                )
            )
        break  # mirrors hold the same content: one is enough
    return offers


def source_offers(paths: Paths, unreachable: list[str], detail: bool = False) -> list[Offer]:
    offers: list[Offer] = []
    try:
        text = paths.config_file.read_text(errors="replace")
    except OSError:
        return offers  # no config.yaml: only the built-in channels, listed by the catalog
    if "sources" not in text:
        return offers  # no 'sources:' list (cheap check: the full parse costs ~0.1 s)
    from neurodesk.sources.fetch import open_sources
    from neurodesk.sources.tree_source import TreeSource

    with open_sources(paths, builtin=False) as sources:
        for source in sources:
            try:
                if isinstance(source, TreeSource):
                    offers += _tree_offers(source, detail)
                    continue
                offers += [
                    Offer(a.name, a.version, a.builddate, source.label) for a in source.available()
                ]
            except NeurodeskError as exc:
                unreachable.append(f"{source.label}: {exc.message}")
    return offers


def build_catalog(
    paths: Paths, remote: bool = True, detail: bool = False, only: str | None = None
) -> Catalog:
    unreachable: list[str] = []
    recipes = recipe_offers(paths.cache / "recipe-offers.json")
    offers: list[Offer] = [*store_offers(paths, detail, only), *recipes]
    upstream = upstream_offers(paths)
    offers += upstream or []
    if remote:
        offers += source_offers(paths, unreachable, detail)
    return Catalog(
        merge(o for o in offers if only is None or o.name == only), unreachable, upstream is None
    )


def merge(offers: Iterable[Offer]) -> dict[str, Tool]:
    tools: dict[str, Tool] = {}
    for offer in offers:
        tools.setdefault(offer.name, Tool(offer.name, [])).offers.append(offer)
    return dict(sorted(tools.items()))
